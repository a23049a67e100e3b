//! The leader epoch cache: for each leader epoch that wrote into the log, the first offset it
//! wrote. A follower that comes back after a leader change asks the leader where its own
//! latest epoch ends and truncates its log there, so divergent tails (records a dead leader
//! wrote but never replicated) are cut before it fetches (Kafka's KIP-101).
//!
//! File `leader-epoch-checkpoint` in the log directory, format version 1, text:
//! ```text
//! 1
//! <entry count>
//! <epoch> <start offset>
//! ...
//! ```
//! Rewritten whole (temp file, fsync, rename) whenever an epoch is added or entries are
//! truncated, which happens once per leader change, never per append.

use std::path::{Path, PathBuf};

use crate::error::{Result, StorageError};

const FILE: &str = "leader-epoch-checkpoint";

#[derive(Debug)]
pub(crate) struct EpochCache {
    path: PathBuf,
    /// (epoch, start offset), both strictly increasing.
    entries: Vec<(i32, u64)>,
}

impl EpochCache {
    /// Loads the cache of the log in `dir`; entries at or above `log_end` (a tail recovery cut
    /// off) are dropped. A missing or unreadable file starts empty.
    pub(crate) fn open(dir: &Path, log_end: u64) -> Result<EpochCache> {
        let path = dir.join(FILE);
        let mut entries = Vec::new();
        if let Ok(text) = std::fs::read_to_string(&path) {
            let mut lines = text.lines();
            if lines.next() == Some("1") {
                let _count = lines.next();
                for l in lines {
                    let mut it = l.split_whitespace();
                    if let (Some(Ok(e)), Some(Ok(s))) =
                        (it.next().map(str::parse), it.next().map(str::parse))
                    {
                        entries.push((e, s));
                    }
                }
            } else {
                tracing::warn!(file = %path.display(), "unreadable leader epoch checkpoint; starting empty");
            }
        }
        let mut cache = EpochCache { path, entries };
        let before = cache.entries.len();
        cache.entries.retain(|&(_, s)| s < log_end);
        if cache.entries.len() != before {
            cache.persist()?;
        }
        Ok(cache)
    }

    fn persist(&self) -> Result<()> {
        let mut text = format!("1\n{}\n", self.entries.len());
        for (e, s) in &self.entries {
            text.push_str(&format!("{e} {s}\n"));
        }
        let tmp = self.path.with_extension("tmp");
        let io = |what, e| StorageError::io(what, &self.path, e);
        std::fs::write(&tmp, text).map_err(|e| io("write leader epoch checkpoint", e))?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| io("sync leader epoch checkpoint", e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| io("rename leader epoch checkpoint", e))
    }

    /// The latest epoch, if any.
    pub(crate) fn latest(&self) -> Option<i32> {
        self.entries.last().map(|&(e, _)| e)
    }

    /// Records that `epoch` starts at `start` if it is newer than the latest.
    pub(crate) fn assign(&mut self, epoch: i32, start: u64) -> Result<()> {
        if epoch < 0 || self.latest().is_some_and(|l| l >= epoch) {
            return Ok(());
        }
        self.entries.push((epoch, start));
        self.persist()
    }

    /// Forgets epochs that start at or after `end` (the log was truncated there).
    pub(crate) fn truncate_from(&mut self, end: u64) -> Result<()> {
        let before = self.entries.len();
        self.entries.retain(|&(_, s)| s < end);
        if self.entries.len() != before {
            self.persist()?;
        }
        Ok(())
    }

    /// Forgets everything (the log was emptied and restarts at a new offset).
    pub(crate) fn clear(&mut self) -> Result<()> {
        self.entries.clear();
        self.persist()
    }

    /// Where `epoch` ends in this log: the largest known epoch ≤ `epoch` and the start offset
    /// of the epoch after it (or `log_end` when it is the latest). `None` when `epoch` is older
    /// than every known epoch.
    pub(crate) fn end_offset_for(&self, epoch: i32, log_end: u64) -> Option<(i32, u64)> {
        let i = self.entries.iter().rposition(|&(e, _)| e <= epoch)?;
        let end = self.entries.get(i + 1).map_or(log_end, |&(_, s)| s);
        Some((self.entries[i].0, end))
    }

    /// The entries, for inspection.
    pub(crate) fn entries(&self) -> &[(i32, u64)] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_offsets_truncation_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = EpochCache::open(dir.path(), 0).unwrap();
        c.assign(0, 0).unwrap();
        c.assign(0, 5).unwrap(); // not newer: ignored
        c.assign(2, 10).unwrap();
        c.assign(5, 20).unwrap();
        assert_eq!(c.end_offset_for(0, 30), Some((0, 10)));
        assert_eq!(c.end_offset_for(1, 30), Some((0, 10)));
        assert_eq!(c.end_offset_for(2, 30), Some((2, 20)));
        assert_eq!(c.end_offset_for(9, 30), Some((5, 30)));
        assert_eq!(c.end_offset_for(-1, 30), None);
        c.truncate_from(15).unwrap();
        assert_eq!(c.entries(), &[(0, 0), (2, 10)]);
        let again = EpochCache::open(dir.path(), 12).unwrap();
        assert_eq!(again.entries(), &[(0, 0), (2, 10)]);
        let cut = EpochCache::open(dir.path(), 10).unwrap();
        assert_eq!(cut.entries(), &[(0, 0)]);
    }
}
