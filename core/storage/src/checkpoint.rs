//! The recovery checkpoint: what an open may trust without scanning.
//!
//! # File format, version 1
//!
//! `recovery-checkpoint` in the log directory, text, one `key value` pair per line:
//!
//! ```text
//! sluice-recovery-checkpoint 1
//! segment 00000000000000001000
//! position 52428800
//! offset_index_entries 12800
//! time_index_entries 12800
//! next_offset 51200
//! max_timestamp 1764000000000
//! offset_of_max_timestamp 51100
//! first_batch_timestamp 1763990000000
//! bytes_since_index 1024
//! end
//! ```
//!
//! It says: every segment before `segment` is complete and durable, and so are the first
//! `position` bytes of `segment` and the first entries of its indexes. It is written only after
//! an fsync has made that true (the durability policy's syncs, a roll, a clean shutdown), by
//! write-to-temporary and rename, so a torn write leaves the previous checkpoint, which is older
//! and still true. Open trusts it and scans only what comes after: the unflushed tail. A clean
//! shutdown writes one that covers everything, so a clean restart scans nothing.
//!
//! Anything that shortens the log below a checkpoint must first write a new checkpoint at or
//! below the new end.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::error::{Result, StorageError};
use crate::segment::TrustedPrefix;

pub(crate) const FILE_NAME: &str = "recovery-checkpoint";
const TMP_NAME: &str = "recovery-checkpoint.tmp";
const MAGIC: &str = "sluice-recovery-checkpoint";
const VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub(crate) segment: u64,
    pub(crate) prefix: TrustedPrefix,
}

impl Checkpoint {
    fn encode(&self) -> String {
        let p = &self.prefix;
        format!(
            "{MAGIC} {VERSION}\nsegment {:020}\nposition {}\noffset_index_entries {}\ntime_index_entries {}\nnext_offset {}\nmax_timestamp {}\noffset_of_max_timestamp {}\nfirst_batch_timestamp {}\nbytes_since_index {}\nend\n",
            self.segment,
            p.position,
            p.offset_index_len,
            p.time_index_len,
            p.next_offset,
            p.max_timestamp,
            p.offset_of_max_timestamp,
            p.first_batch_timestamp,
            p.bytes_since_index,
        )
    }

    fn decode(text: &str) -> Option<Checkpoint> {
        let mut lines = text.lines();
        let mut head = lines.next()?.split_whitespace();
        if head.next()? != MAGIC || head.next()?.parse::<u32>().ok()? != VERSION {
            return None;
        }
        let mut field = |name: &str| -> Option<i128> {
            let line = lines.next()?;
            let (k, v) = line.split_once(' ')?;
            (k == name).then_some(())?;
            v.trim().parse::<i128>().ok()
        };
        let u = |v: i128| u64::try_from(v).ok();
        let segment = u(field("segment")?)?;
        let position = u(field("position")?)?;
        let offset_index_len = usize::try_from(field("offset_index_entries")?).ok()?;
        let time_index_len = usize::try_from(field("time_index_entries")?).ok()?;
        let next_offset = u(field("next_offset")?)?;
        let max_timestamp = i64::try_from(field("max_timestamp")?).ok()?;
        let offset_of_max_timestamp = u(field("offset_of_max_timestamp")?)?;
        let first_batch_timestamp = i64::try_from(field("first_batch_timestamp")?).ok()?;
        let bytes_since_index = u(field("bytes_since_index")?)?;
        // The last line proves the file is whole.
        (lines.next()? == "end").then_some(())?;
        Some(Checkpoint {
            segment,
            prefix: TrustedPrefix {
                position,
                offset_index_len,
                time_index_len,
                next_offset,
                max_timestamp,
                offset_of_max_timestamp,
                first_batch_timestamp,
                bytes_since_index,
            },
        })
    }

    /// Reads the checkpoint; a missing or unreadable one is `None` (open then scans more).
    pub(crate) fn read(dir: &Path) -> Option<Checkpoint> {
        let text = fs::read_to_string(dir.join(FILE_NAME)).ok()?;
        let cp = Self::decode(&text);
        if cp.is_none() {
            tracing::warn!(dir = %dir.display(), "unreadable recovery checkpoint; scanning the log instead");
        }
        cp
    }

    /// Replaces the checkpoint. With `durable`, the new file and the directory are fsynced
    /// (clean shutdown); otherwise the rename may be lost in a power failure, leaving the older,
    /// still true, checkpoint.
    pub(crate) fn write(&self, dir: &Path, durable: bool) -> Result<()> {
        let tmp = dir.join(TMP_NAME);
        let mut f =
            File::create(&tmp).map_err(|e| StorageError::io("create checkpoint", &tmp, e))?;
        f.write_all(self.encode().as_bytes())
            .map_err(|e| StorageError::io("write checkpoint", &tmp, e))?;
        if durable {
            f.sync_all()
                .map_err(|e| StorageError::io("fsync checkpoint", &tmp, e))?;
        }
        drop(f);
        let dst = dir.join(FILE_NAME);
        fs::rename(&tmp, &dst).map_err(|e| StorageError::io("rename checkpoint", &dst, e))?;
        if durable {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

/// fsyncs a directory, making renames and deletions in it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io("fsync directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_garbage() {
        let cp = Checkpoint {
            segment: 1000,
            prefix: TrustedPrefix {
                position: 52_428_800,
                offset_index_len: 12,
                time_index_len: 11,
                next_offset: 51_200,
                max_timestamp: 1_764_000_000_000,
                offset_of_max_timestamp: 51_100,
                first_batch_timestamp: -1,
                bytes_since_index: 1024,
            },
        };
        assert_eq!(Checkpoint::decode(&cp.encode()), Some(cp));
        assert_eq!(Checkpoint::decode(""), None);
        assert_eq!(Checkpoint::decode("sluice-recovery-checkpoint 9\n"), None);
        let text = cp.encode();
        for cut in 0..text.len() - 1 {
            // A torn file never decodes.
            assert_eq!(Checkpoint::decode(&text[..cut]), None, "cut at {cut}");
        }
        let dir = tempfile::tempdir().unwrap();
        cp.write(dir.path(), true).unwrap();
        assert_eq!(Checkpoint::read(dir.path()), Some(cp));
    }
}
