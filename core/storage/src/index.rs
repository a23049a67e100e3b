//! The sparse, memory-mapped indexes of a segment.
//!
//! # File format, version 1
//!
//! `<base offset, 20 digits>.index` — offset index, entries of 8 bytes, big-endian:
//! `relative offset: u32` (batch base offset minus the segment's base offset),
//! `position: u32` (byte position of that batch in the `.log` file).
//! Entries are strictly increasing in both fields.
//!
//! `<base offset, 20 digits>.timeindex` — time index, entries of 12 bytes, big-endian:
//! `timestamp: i64` (the largest record timestamp seen in the segment so far),
//! `relative offset: u32` (base offset of the batch that first reached that timestamp).
//! Timestamps are strictly increasing. Every batch before the entry's batch has only smaller
//! timestamps, so a lookup may start scanning at the entry with the largest timestamp not above
//! the target.
//!
//! An entry is written each time `index.interval.bytes` of log were appended since the last one.
//! The active segment's files are preallocated to `segment.index.bytes` and trimmed to their
//! entries when the segment closes; how many entries of an active index are valid after a crash
//! is recorded in the log's recovery checkpoint, never guessed from the file.
//!
//! # Concurrency
//!
//! One writer appends entries past the published length; readers only read entries below it.
//! The length is published with release ordering after the entry is written, so a reader never
//! sees a half-written entry and reader and writer never touch the same bytes.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use memmap2::{MmapOptions, MmapRaw};

use crate::error::{Result, StorageError};

/// One index file of fixed-size entries, shared by the offset and time indexes.
struct IndexFile<const N: usize> {
    path: PathBuf,
    file: File,
    /// Mapping of the whole file. `None` while the file is empty (a zero-length map is invalid).
    map: Option<MmapRaw>,
    /// Entries the mapping can hold.
    capacity: usize,
    /// Published entries.
    len: AtomicUsize,
}

impl<const N: usize> IndexFile<N> {
    /// Opens (creating if missing) with `len` valid entries and room for `capacity_bytes`.
    /// `capacity_bytes` of 0 maps the file at its own size (a closed segment).
    fn open(path: &Path, len: usize, capacity_bytes: u64) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| StorageError::io("open index", path, e))?;
        let file_len = file
            .metadata()
            .map_err(|e| StorageError::io("stat index", path, e))?
            .len();
        let want = if capacity_bytes == 0 {
            (len * N) as u64
        } else {
            (capacity_bytes / N as u64) * N as u64
        };
        if file_len != want {
            file.set_len(want)
                .map_err(|e| StorageError::io("resize index", path, e))?;
        }
        let capacity = want as usize / N;
        let map = if want == 0 {
            None
        } else {
            Some(
                MmapOptions::new()
                    .len(want as usize)
                    .map_raw(&file)
                    .map_err(|e| StorageError::io("map index", path, e))?,
            )
        };
        Ok(IndexFile {
            path: path.to_path_buf(),
            file,
            map,
            capacity,
            len: AtomicUsize::new(len.min(capacity)),
        })
    }

    fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    fn entry(&self, i: usize) -> [u8; N] {
        debug_assert!(i < self.capacity);
        let map = self.map.as_ref().expect("an index with entries is mapped");
        let mut out = [0u8; N];
        // SAFETY: `i < capacity`, so the N bytes lie inside the mapping. Entries below the
        // published length are never written again while readers may see them (the writer only
        // writes at `len`, and nothing shrinks an index while it is shared), so this
        // read does not race with a write.
        unsafe { std::ptr::copy_nonoverlapping(map.as_ptr().add(i * N), out.as_mut_ptr(), N) };
        out
    }

    /// Writer only. Returns false when the index is full.
    fn push(&self, entry: [u8; N]) -> bool {
        let len = self.len.load(Ordering::Relaxed);
        if len >= self.capacity {
            return false;
        }
        let map = self.map.as_ref().expect("capacity > 0 implies a mapping");
        // SAFETY: `len < capacity`, so the bytes are inside the mapping, and no reader reads
        // entry `len` until the store below publishes it.
        unsafe { std::ptr::copy_nonoverlapping(entry.as_ptr(), map.as_mut_ptr().add(len * N), N) };
        self.len.store(len + 1, Ordering::Release);
        true
    }

    /// Index (in entries) of the last entry whose key is `<= target`, by binary search.
    fn floor(&self, target: i128, key: impl Fn(&[u8; N]) -> i128) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.len());
        // invariant: entries below lo have key <= target; entries at or above hi have key > target
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if key(&self.entry(mid)) <= target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }

    /// Writes dirty pages of the mapping to disk.
    fn sync(&self) -> Result<()> {
        if let Some(map) = &self.map {
            let bytes = self.len() * N;
            if bytes > 0 {
                map.flush_range(0, bytes)
                    .map_err(|e| StorageError::io("sync index", &self.path, e))?;
            }
        }
        Ok(())
    }

    /// Shrinks the file to its entries (a segment becoming closed). Readers keep working: they
    /// never read past the length, which stays inside the file.
    fn trim(&self) -> Result<()> {
        let bytes = (self.len() * N) as u64;
        self.sync()?;
        self.file
            .set_len(bytes)
            .map_err(|e| StorageError::io("trim index", &self.path, e))
    }
}

/// Sparse map from batch base offset to file position.
pub(crate) struct OffsetIndex {
    inner: IndexFile<8>,
    base_offset: u64,
}

impl OffsetIndex {
    pub(crate) const ENTRY_BYTES: usize = 8;

    pub(crate) fn open(
        path: &Path,
        base_offset: u64,
        len: usize,
        capacity_bytes: u64,
    ) -> Result<Self> {
        Ok(OffsetIndex {
            inner: IndexFile::open(path, len, capacity_bytes)?,
            base_offset,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.len()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.inner.len() >= self.inner.capacity
    }

    /// The `i`th entry as (absolute offset, position).
    pub(crate) fn get(&self, i: usize) -> (u64, u32) {
        let e = self.inner.entry(i);
        let rel = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
        let pos = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
        (self.base_offset + rel as u64, pos)
    }

    pub(crate) fn last(&self) -> Option<(u64, u32)> {
        self.len().checked_sub(1).map(|i| self.get(i))
    }

    /// Appends an entry; false when full. Offsets and positions must grow.
    pub(crate) fn push(&self, offset: u64, position: u32) -> bool {
        debug_assert!(offset >= self.base_offset && offset - self.base_offset <= u32::MAX as u64);
        debug_assert!(self.last().is_none_or(|(o, p)| o < offset && p < position));
        let rel = (offset - self.base_offset) as u32;
        let mut e = [0u8; 8];
        e[..4].copy_from_slice(&rel.to_be_bytes());
        e[4..].copy_from_slice(&position.to_be_bytes());
        self.inner.push(e)
    }

    /// Position of the last indexed batch whose base offset is `<= offset` (0 when none).
    pub(crate) fn lookup(&self, offset: u64) -> u32 {
        let target = offset as i128 - self.base_offset as i128;
        self.inner
            .floor(target, |e| {
                u32::from_be_bytes([e[0], e[1], e[2], e[3]]) as i128
            })
            .map_or(0, |i| self.get(i).1)
    }

    /// Whether the entries are plausible for a log of `log_size` bytes: strictly increasing at
    /// the end and pointing inside the log.
    pub(crate) fn sane(&self, log_size: u64) -> bool {
        let n = self.len();
        if n == 0 {
            return true;
        }
        let (last_off, last_pos) = self.get(n - 1);
        if last_pos as u64 >= log_size || last_off < self.base_offset {
            return false;
        }
        if n >= 2 {
            let (prev_off, prev_pos) = self.get(n - 2);
            if prev_off >= last_off || prev_pos >= last_pos {
                return false;
            }
        }
        true
    }

    pub(crate) fn sync(&self) -> Result<()> {
        self.inner.sync()
    }

    pub(crate) fn trim(&self) -> Result<()> {
        self.inner.trim()
    }
}

/// Sparse map from the largest timestamp so far to the batch that reached it.
pub(crate) struct TimeIndex {
    inner: IndexFile<12>,
    base_offset: u64,
}

impl TimeIndex {
    pub(crate) const ENTRY_BYTES: usize = 12;

    pub(crate) fn open(
        path: &Path,
        base_offset: u64,
        len: usize,
        capacity_bytes: u64,
    ) -> Result<Self> {
        Ok(TimeIndex {
            inner: IndexFile::open(path, len, capacity_bytes)?,
            base_offset,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.len()
    }

    /// Full but for the one entry a closing segment may still add.
    pub(crate) fn is_full(&self) -> bool {
        self.inner.len() + 1 >= self.inner.capacity
    }

    /// Appends the closing entry (the segment's largest timestamp), even into the last slot.
    pub(crate) fn push_final(&self, timestamp: i64, offset: u64) {
        self.maybe_push(timestamp, offset);
    }

    /// The `i`th entry as (timestamp, absolute offset).
    pub(crate) fn get(&self, i: usize) -> (i64, u64) {
        let e = self.inner.entry(i);
        let ts = i64::from_be_bytes([e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]]);
        let rel = u32::from_be_bytes([e[8], e[9], e[10], e[11]]);
        (ts, self.base_offset + rel as u64)
    }

    pub(crate) fn last(&self) -> Option<(i64, u64)> {
        self.len().checked_sub(1).map(|i| self.get(i))
    }

    /// Appends an entry if `timestamp` is larger than the last one. False only when full.
    pub(crate) fn maybe_push(&self, timestamp: i64, offset: u64) -> bool {
        if self.last().is_some_and(|(ts, _)| ts >= timestamp) {
            return true;
        }
        debug_assert!(offset >= self.base_offset && offset - self.base_offset <= u32::MAX as u64);
        let mut e = [0u8; 12];
        e[..8].copy_from_slice(&timestamp.to_be_bytes());
        e[8..].copy_from_slice(&((offset - self.base_offset) as u32).to_be_bytes());
        self.inner.push(e)
    }

    /// Offset of the batch to start scanning at for the first record with a timestamp
    /// `>= timestamp`: the entry with the largest timestamp `<= timestamp`, or the segment start.
    pub(crate) fn lookup(&self, timestamp: i64) -> u64 {
        self.inner
            .floor(timestamp as i128, |e| {
                i64::from_be_bytes([e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]]) as i128
            })
            .map_or(self.base_offset, |i| self.get(i).1)
    }

    /// Timestamps strictly increasing at the end, offsets not decreasing, inside the segment.
    pub(crate) fn sane(&self, next_offset: u64) -> bool {
        let n = self.len();
        if n == 0 {
            return true;
        }
        let (last_ts, last_off) = self.get(n - 1);
        if last_off >= next_offset.max(self.base_offset + 1) {
            return false;
        }
        if n >= 2 {
            let (prev_ts, prev_off) = self.get(n - 2);
            if prev_ts >= last_ts || prev_off > last_off {
                return false;
            }
        }
        true
    }

    pub(crate) fn sync(&self) -> Result<()> {
        self.inner.sync()
    }

    pub(crate) fn trim(&self) -> Result<()> {
        self.inner.trim()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_lookup_finds_the_floor_entry() {
        let dir = tempfile::tempdir().unwrap();
        let idx = OffsetIndex::open(&dir.path().join("a.index"), 100, 0, 64).unwrap();
        assert_eq!(idx.lookup(150), 0);
        assert!(idx.push(110, 4096));
        assert!(idx.push(130, 8200));
        assert!(idx.push(170, 12300));
        assert_eq!(idx.lookup(100), 0);
        assert_eq!(idx.lookup(110), 4096);
        assert_eq!(idx.lookup(129), 4096);
        assert_eq!(idx.lookup(130), 8200);
        assert_eq!(idx.lookup(10_000), 12300);
        assert!(idx.sane(12301));
        assert!(!idx.sane(12300));
    }

    #[test]
    fn full_index_refuses_entries_and_trim_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.index");
        let idx = OffsetIndex::open(&path, 0, 0, 16).unwrap();
        assert!(idx.push(1, 10));
        assert!(idx.push(2, 20));
        assert!(idx.is_full());
        assert!(!idx.push(3, 30));
        idx.trim().unwrap();
        drop(idx);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 16);
        let idx = OffsetIndex::open(&path, 0, 2, 0).unwrap();
        assert_eq!(idx.get(1), (2, 20));
    }

    #[test]
    fn time_index_keeps_only_growing_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let idx = TimeIndex::open(&dir.path().join("c.timeindex"), 10, 0, 120).unwrap();
        assert_eq!(idx.lookup(5), 10);
        assert!(idx.maybe_push(1000, 12));
        assert!(idx.maybe_push(900, 14)); // not larger: skipped
        assert!(idx.maybe_push(2000, 20));
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.lookup(999), 10);
        assert_eq!(idx.lookup(1000), 12);
        assert_eq!(idx.lookup(1999), 12);
        assert_eq!(idx.lookup(i64::MAX), 20);
    }
}
