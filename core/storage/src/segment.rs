//! One segment: a `.log` file of whole record batches and its two sparse indexes.
//!
//! A segment is named by the base offset it was created at (`{base:020}.log`). Its batches are
//! stored exactly as appended (Kafka RecordBatch v2, offsets assigned), back to back. Only the
//! newest segment of a log (the active one) is written; the others are read-only.
//!
//! Readers use positional reads (`pread`) below the published size, so they never wait for the
//! writer and never see a batch that is being written.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use sluice_record::{Batch, BatchHeader, HEADER_LEN, LOG_OVERHEAD};

use crate::config::LogConfig;
use crate::error::{Result, StorageError};
use crate::index::{OffsetIndex, TimeIndex};

/// No timestamp seen yet.
pub(crate) const NO_TIMESTAMP: i64 = -1;

/// File names of a segment.
pub(crate) fn file_name(base_offset: u64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

/// The base offset a segment file name carries, if it is one (`00000000000000000042.log`).
pub(crate) fn parse_file_name(name: &str, ext: &str) -> Option<u64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Removes the files of segment `base` in `dir` (missing files are fine).
pub(crate) fn delete_files_of(dir: &Path, base: u64) -> Result<()> {
    for ext in ["log", "index", "timeindex"] {
        let p = dir.join(file_name(base, ext));
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io("delete segment file", &p, e)),
        }
    }
    Ok(())
}

/// How a scan treats a bad batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanMode {
    /// Active segment recovery: check CRCs and record structure; the first bad batch and all
    /// after it are cut off (a torn or corrupt tail).
    RecoverTail,
    /// Index rebuild of a closed segment: check headers only and stop indexing at a bad one,
    /// keeping the bytes (reads report the corruption with its position).
    IndexOnly,
}

/// What a scan found.
#[derive(Debug, Clone)]
pub(crate) struct ScanOutcome {
    /// Position after the last good batch.
    pub(crate) valid_end: u64,
    /// The first bad batch, if any: position and reason.
    pub(crate) corrupt: Option<(u64, String)>,
}

/// State a recovery checkpoint vouches for: the first `position` bytes of the active segment
/// and the index entries describing them reached the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TrustedPrefix {
    pub(crate) position: u64,
    pub(crate) offset_index_len: usize,
    pub(crate) time_index_len: usize,
    pub(crate) next_offset: u64,
    pub(crate) max_timestamp: i64,
    pub(crate) offset_of_max_timestamp: u64,
    pub(crate) first_batch_timestamp: i64,
    pub(crate) bytes_since_index: u64,
}

pub(crate) struct Segment {
    pub(crate) base_offset: u64,
    pub(crate) log_path: PathBuf,
    pub(crate) offset_index_path: PathBuf,
    pub(crate) time_index_path: PathBuf,
    file: File,
    /// Bytes of whole batches that readers may see.
    size: AtomicU64,
    /// Offset after the last batch (the base offset while empty).
    next_offset: AtomicU64,
    /// Largest batch max-timestamp, or NO_TIMESTAMP.
    max_timestamp: AtomicI64,
    /// Base offset of the batch that first reached `max_timestamp`.
    offset_of_max_timestamp: AtomicU64,
    /// When the segment got its first batch (wall clock, ms); drives `segment.ms` rolling.
    /// NO_TIMESTAMP while empty. After a restart without a checkpoint, the file's creation time
    /// (or, where the file system has none, the first batch's timestamp).
    first_batch_timestamp: AtomicI64,
    /// Writer bookkeeping: log bytes since the last index entry.
    bytes_since_index: AtomicU64,
    index_interval_bytes: u64,
    pub(crate) offsets: OffsetIndex,
    pub(crate) times: TimeIndex,
}

impl Segment {
    fn paths(dir: &Path, base: u64) -> (PathBuf, PathBuf, PathBuf) {
        (
            dir.join(file_name(base, "log")),
            dir.join(file_name(base, "index")),
            dir.join(file_name(base, "timeindex")),
        )
    }

    fn open_log_file(path: &Path, create_new: bool) -> Result<File> {
        let mut o = OpenOptions::new();
        o.read(true).write(true);
        if create_new {
            o.create_new(true);
        }
        o.open(path)
            .map_err(|e| StorageError::io("open segment", path, e))
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        base_offset: u64,
        paths: (PathBuf, PathBuf, PathBuf),
        file: File,
        size: u64,
        offsets: OffsetIndex,
        times: TimeIndex,
        config: &LogConfig,
    ) -> Segment {
        let (log_path, offset_index_path, time_index_path) = paths;
        Segment {
            base_offset,
            log_path,
            offset_index_path,
            time_index_path,
            file,
            size: AtomicU64::new(size),
            next_offset: AtomicU64::new(base_offset),
            max_timestamp: AtomicI64::new(NO_TIMESTAMP),
            offset_of_max_timestamp: AtomicU64::new(base_offset),
            first_batch_timestamp: AtomicI64::new(NO_TIMESTAMP),
            bytes_since_index: AtomicU64::new(0),
            index_interval_bytes: config.index_interval_bytes,
            offsets,
            times,
        }
    }

    /// Creates a new, empty active segment.
    pub(crate) fn create(dir: &Path, base_offset: u64, config: &LogConfig) -> Result<Segment> {
        let paths = Self::paths(dir, base_offset);
        // Leftover index files of a segment that never got a log file are stale.
        for p in [&paths.1, &paths.2] {
            match std::fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io("remove stale index", p, e)),
            }
        }
        let file = Self::open_log_file(&paths.0, true)?;
        let offsets = OffsetIndex::open(&paths.1, base_offset, 0, config.segment_index_bytes)?;
        let times = TimeIndex::open(&paths.2, base_offset, 0, config.segment_index_bytes)?;
        Ok(Self::assemble(
            base_offset,
            paths,
            file,
            0,
            offsets,
            times,
            config,
        ))
    }

    /// Opens a closed segment. Its indexes are trusted when their files look sane; otherwise
    /// they are rebuilt from the log. A corrupt batch does not cut the file: it is logged and
    /// reads report it.
    pub(crate) fn open_closed(dir: &Path, base_offset: u64, config: &LogConfig) -> Result<Segment> {
        let paths = Self::paths(dir, base_offset);
        let file = Self::open_log_file(&paths.0, false)?;
        let size = file
            .metadata()
            .map_err(|e| StorageError::io("stat segment", &paths.0, e))?
            .len();
        let index_len = |p: &Path, entry: usize| -> Option<usize> {
            let len = std::fs::metadata(p).ok()?.len() as usize;
            len.is_multiple_of(entry).then_some(len / entry)
        };
        let off_len = index_len(&paths.1, OffsetIndex::ENTRY_BYTES);
        let time_len = index_len(&paths.2, TimeIndex::ENTRY_BYTES);
        let offsets = OffsetIndex::open(&paths.1, base_offset, off_len.unwrap_or(0), 0)?;
        let times = TimeIndex::open(&paths.2, base_offset, time_len.unwrap_or(0), 0)?;
        let seg = Self::assemble(base_offset, paths, file, size, offsets, times, config);

        let mut ok = off_len.is_some() && time_len.is_some() && seg.offsets.sane(size);
        if ok {
            // Find the end of the log from the last indexed batch: a short walk.
            let start = seg.offsets.last().map_or(0, |(_, pos)| pos as u64);
            match seg.walk_headers(start, size) {
                Ok(next) => {
                    seg.next_offset
                        .store(next.max(base_offset), Ordering::Relaxed);
                    ok = seg.times.sane(seg.next_offset());
                }
                Err(_) => ok = false,
            }
        }
        if ok {
            if let Some((ts, off)) = seg.times.last() {
                seg.max_timestamp.store(ts, Ordering::Relaxed);
                seg.offset_of_max_timestamp.store(off, Ordering::Relaxed);
            }
            seg.load_first_batch_timestamp();
            return Ok(seg);
        }
        tracing::warn!(segment = %seg.log_path.display(), "index missing or inconsistent; rebuilding it from the log");
        seg.rebuild_closed(config)
    }

    /// Rebuilds a closed segment's indexes by walking its batches.
    fn rebuild_closed(self, config: &LogConfig) -> Result<Segment> {
        let size = self.size();
        let Segment {
            base_offset,
            log_path,
            offset_index_path,
            time_index_path,
            file,
            offsets,
            times,
            ..
        } = self;
        drop(offsets);
        drop(times);
        for p in [&offset_index_path, &time_index_path] {
            match std::fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io("remove bad index", p, e)),
            }
        }
        let offsets = OffsetIndex::open(
            &offset_index_path,
            base_offset,
            0,
            config.segment_index_bytes,
        )?;
        let times = TimeIndex::open(&time_index_path, base_offset, 0, config.segment_index_bytes)?;
        let paths = (log_path, offset_index_path, time_index_path);
        let seg = Self::assemble(base_offset, paths, file, 0, offsets, times, config);
        let outcome = seg.scan(0, ScanMode::IndexOnly)?;
        if let Some((pos, reason)) = &outcome.corrupt {
            tracing::error!(segment = %seg.log_path.display(), position = pos, %reason,
                "corrupt batch in a closed segment; batches before it are served, reads at it fail");
        }
        // The whole file stays visible: reads past the corruption report it.
        seg.size.store(size, Ordering::Release);
        seg.close_indexes()?;
        seg.load_first_batch_timestamp();
        Ok(seg)
    }

    /// Opens the active segment: trusts `trusted` (from the recovery checkpoint) and scans the
    /// rest, cutting a torn or corrupt tail. Returns the segment and the bytes cut.
    pub(crate) fn open_active(
        dir: &Path,
        base_offset: u64,
        config: &LogConfig,
        trusted: Option<TrustedPrefix>,
    ) -> Result<(Segment, u64)> {
        let paths = Self::paths(dir, base_offset);
        let file = Self::open_log_file(&paths.0, false)?;
        let file_len = file
            .metadata()
            .map_err(|e| StorageError::io("stat segment", &paths.0, e))?
            .len();
        let trusted = trusted.filter(|t| t.position <= file_len);
        let (off_len, time_len) =
            trusted.map_or((0, 0), |t| (t.offset_index_len, t.time_index_len));
        if trusted.is_none() {
            for p in [&paths.1, &paths.2] {
                let _ = std::fs::remove_file(p);
            }
        }
        let offsets =
            OffsetIndex::open(&paths.1, base_offset, off_len, config.segment_index_bytes)?;
        let times = TimeIndex::open(&paths.2, base_offset, time_len, config.segment_index_bytes)?;
        let seg = Self::assemble(base_offset, paths, file, 0, offsets, times, config);
        let start = match trusted {
            Some(t) => {
                seg.size.store(t.position, Ordering::Relaxed);
                seg.next_offset.store(t.next_offset, Ordering::Relaxed);
                seg.max_timestamp.store(t.max_timestamp, Ordering::Relaxed);
                seg.offset_of_max_timestamp
                    .store(t.offset_of_max_timestamp, Ordering::Relaxed);
                seg.first_batch_timestamp
                    .store(t.first_batch_timestamp, Ordering::Relaxed);
                seg.bytes_since_index
                    .store(t.bytes_since_index, Ordering::Relaxed);
                t.position
            }
            None => 0,
        };
        let outcome = if start < file_len {
            seg.scan(start, ScanMode::RecoverTail)?
        } else {
            ScanOutcome {
                valid_end: start,
                corrupt: None,
            }
        };
        // The scan set the roll clock from record timestamps; the file's creation time is a
        // better stand-in for when the segment got its first batch.
        if trusted.is_none_or(|t| t.position == 0)
            && let Ok(created) = seg.file.metadata().and_then(|m| m.created())
            && let Ok(since) = created.duration_since(std::time::UNIX_EPOCH)
            && !seg.is_empty()
        {
            seg.first_batch_timestamp
                .store(since.as_millis() as i64, Ordering::Release);
        }
        let cut = file_len - outcome.valid_end;
        if cut > 0 {
            tracing::warn!(segment = %seg.log_path.display(), position = outcome.valid_end, bytes = cut,
                reason = outcome.corrupt.as_ref().map(|c| c.1.as_str()).unwrap_or("torn write"),
                "truncating the unacknowledged tail of the active segment");
            seg.file
                .set_len(outcome.valid_end)
                .map_err(|e| StorageError::io("truncate torn tail", &seg.log_path, e))?;
            seg.file
                .sync_all()
                .map_err(|e| StorageError::io("sync truncated segment", &seg.log_path, e))?;
        }
        Ok((seg, cut))
    }

    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    pub(crate) fn next_offset(&self) -> u64 {
        self.next_offset.load(Ordering::Acquire)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.size() == 0
    }

    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_timestamp.load(Ordering::Acquire)
    }

    pub(crate) fn offset_of_max_timestamp(&self) -> u64 {
        self.offset_of_max_timestamp.load(Ordering::Acquire)
    }

    pub(crate) fn first_batch_timestamp(&self) -> i64 {
        self.first_batch_timestamp.load(Ordering::Acquire)
    }

    pub(crate) fn bytes_since_index(&self) -> u64 {
        self.bytes_since_index.load(Ordering::Relaxed)
    }

    fn load_first_batch_timestamp(&self) {
        let mut h = [0u8; HEADER_LEN];
        if self.size() >= HEADER_LEN as u64
            && self.file.read_exact_at(&mut h, 0).is_ok()
            && let Ok(header) = BatchHeader::parse(&h)
        {
            self.first_batch_timestamp
                .store(header.max_timestamp, Ordering::Relaxed);
        }
    }

    /// Whether a batch of `len` bytes with offsets up to `last_offset` still fits.
    pub(crate) fn fits(&self, len: u64, last_offset: u64, config: &LogConfig) -> bool {
        if self.is_empty() {
            return last_offset - self.base_offset <= u32::MAX as u64;
        }
        self.size() + len <= config.segment_bytes
            && last_offset - self.base_offset <= u32::MAX as u64
            && !self.offsets.is_full()
            && !self.times.is_full()
    }

    /// Writer: writes `bytes` (whole batches, offsets assigned) at the end of the file. Not yet
    /// visible to readers; call `track` per batch and then `publish`.
    pub(crate) fn write(&self, bytes: &[u8]) -> Result<()> {
        let pos = self.size();
        if let Err(e) = self.file.write_all_at(bytes, pos) {
            return Err(StorageError::io("append to segment", &self.log_path, e));
        }
        Ok(())
    }

    /// Cuts the file back to the published size after a failed write.
    pub(crate) fn undo_write(&self) -> std::io::Result<()> {
        self.file.set_len(self.size())
    }

    /// Writer: updates indexes and timestamps for a batch written at `position` at wall-clock
    /// time `now_ms`.
    pub(crate) fn track(&self, position: u64, header: &BatchHeader, now_ms: i64) {
        let base = header.base_offset as u64;
        let max_ts = header.max_timestamp;
        if self.first_batch_timestamp() == NO_TIMESTAMP && position == 0 {
            self.first_batch_timestamp.store(now_ms, Ordering::Release);
        }
        if max_ts > self.max_timestamp() {
            self.max_timestamp.store(max_ts, Ordering::Release);
            self.offset_of_max_timestamp.store(base, Ordering::Release);
        }
        let since = self.bytes_since_index.load(Ordering::Relaxed);
        if since >= self.index_interval_bytes {
            self.offsets.push(base, position as u32);
            self.times
                .maybe_push(self.max_timestamp(), self.offset_of_max_timestamp());
            self.bytes_since_index.store(0, Ordering::Relaxed);
        }
        self.bytes_since_index
            .fetch_add(header.total_len() as u64, Ordering::Relaxed);
    }

    /// Writer: makes bytes up to `size` and offsets up to `next_offset` visible to readers.
    pub(crate) fn publish(&self, size: u64, next_offset: u64) {
        debug_assert!(
            size >= self.size(),
            "segment size never shrinks while published"
        );
        debug_assert!(next_offset >= self.next_offset(), "offsets are monotonic");
        self.next_offset.store(next_offset, Ordering::Release);
        self.size.store(size, Ordering::Release);
    }

    /// The state a checkpoint taken now would vouch for (call with the writer lock held).
    pub(crate) fn trusted_prefix(&self) -> TrustedPrefix {
        TrustedPrefix {
            position: self.size(),
            offset_index_len: self.offsets.len(),
            time_index_len: self.times.len(),
            next_offset: self.next_offset(),
            max_timestamp: self.max_timestamp(),
            offset_of_max_timestamp: self.offset_of_max_timestamp(),
            first_batch_timestamp: self.first_batch_timestamp(),
            bytes_since_index: self.bytes_since_index(),
        }
    }

    /// fsyncs the log file and flushes the index mappings.
    pub(crate) fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| StorageError::io("fsync segment", &self.log_path, e))?;
        self.offsets.sync()?;
        self.times.sync()
    }

    /// Writes the closing time index entry and trims both indexes to their entries.
    pub(crate) fn close_indexes(&self) -> Result<()> {
        let max = self.max_timestamp();
        if max != NO_TIMESTAMP {
            self.times.push_final(max, self.offset_of_max_timestamp());
        }
        self.offsets.trim()?;
        self.times.trim()
    }

    /// Reads exactly `buf.len()` bytes at `position`.
    pub(crate) fn read_exact_at(&self, buf: &mut [u8], position: u64) -> Result<()> {
        self.file
            .read_exact_at(buf, position)
            .map_err(|e| StorageError::io("read segment", &self.log_path, e))
    }

    /// Reads the header of the batch at `position` (which must be below `end`).
    pub(crate) fn header_at(&self, position: u64, end: u64) -> Result<BatchHeader> {
        let corrupt = |reason: String| StorageError::Corrupt {
            path: self.log_path.clone(),
            position,
            reason,
        };
        if end - position < HEADER_LEN as u64 {
            return Err(corrupt(format!(
                "{} bytes left, too few for a batch header",
                end - position
            )));
        }
        let mut h = [0u8; HEADER_LEN];
        self.read_exact_at(&mut h, position)?;
        let header = BatchHeader::parse(&h).map_err(|e| corrupt(e.to_string()))?;
        if header.total_len() as u64 > end - position {
            return Err(corrupt(format!(
                "batch of {} bytes runs past the end of the data ({} bytes left)",
                header.total_len(),
                end - position
            )));
        }
        Ok(header)
    }

    /// Walks batch headers from `start` to `end` and returns the next offset after the last one.
    fn walk_headers(&self, start: u64, end: u64) -> Result<u64> {
        let mut pos = start;
        let mut next = self.base_offset;
        while pos < end {
            let h = self.header_at(pos, end)?;
            next = h.next_offset() as u64;
            pos += h.total_len() as u64;
        }
        Ok(next)
    }

    /// Walks batches from `start` to the end of the file, adding index entries and timestamps,
    /// and publishing them. See [`ScanMode`] for what a bad batch does.
    pub(crate) fn scan(&self, start: u64, mode: ScanMode) -> Result<ScanOutcome> {
        let file_len = self
            .file
            .metadata()
            .map_err(|e| StorageError::io("stat segment", &self.log_path, e))?
            .len();
        const CHUNK: usize = 1 << 20;
        let mut buf: Vec<u8> = Vec::new();
        let mut pos = start;
        let mut expected_min = self.next_offset();
        let mut corrupt = None;
        'outer: while pos < file_len {
            let want = CHUNK.min((file_len - pos) as usize);
            buf.resize(want, 0);
            self.read_exact_at(&mut buf, pos)?;
            let mut at = 0usize;
            loop {
                let rest = &buf[at..];
                if rest.is_empty() {
                    break;
                }
                if rest.len() < HEADER_LEN {
                    if (file_len - pos - at as u64) < HEADER_LEN as u64 {
                        corrupt = Some((pos + at as u64, "truncated batch header".to_string()));
                        break 'outer;
                    }
                    break; // header straddles the chunk: reread from here
                }
                let header = match BatchHeader::parse(rest) {
                    Ok(h) => h,
                    Err(e) => {
                        corrupt = Some((pos + at as u64, e.to_string()));
                        break 'outer;
                    }
                };
                let total = header.total_len();
                if rest.len() < total {
                    if (file_len - pos - at as u64) < total as u64 {
                        corrupt = Some((
                            pos + at as u64,
                            format!("batch of {total} bytes is cut off by the end of the file"),
                        ));
                        break 'outer;
                    }
                    if at == 0 {
                        // A batch larger than the chunk: read it whole.
                        buf.resize(total, 0);
                        self.read_exact_at(&mut buf, pos)?;
                        continue;
                    }
                    break;
                }
                if header.base_offset < 0 || (header.base_offset as u64) < expected_min {
                    corrupt = Some((
                        pos + at as u64,
                        format!(
                            "batch base offset {} goes backwards (expected at least {expected_min})",
                            header.base_offset
                        ),
                    ));
                    break 'outer;
                }
                if mode == ScanMode::RecoverTail {
                    let check = Batch::new(&rest[..total]).and_then(|b| b.validate());
                    if let Err(e) = check {
                        corrupt = Some((pos + at as u64, e.to_string()));
                        break 'outer;
                    }
                }
                let at_pos = pos + at as u64;
                if self.offsets.is_full() || self.times.is_full() {
                    // Only for a log written with a larger segment.index.bytes: the rest of the
                    // segment stays readable through the last entry.
                    tracing::warn!(segment = %self.log_path.display(), "index full during rebuild");
                } else {
                    self.track(at_pos, &header, header.max_timestamp);
                }
                expected_min = header.next_offset() as u64;
                self.publish(at_pos + total as u64, expected_min);
                at += total;
            }
            pos += at as u64;
            debug_assert!(at > 0 || pos >= file_len, "scan makes progress");
            if at == 0 {
                break;
            }
        }
        Ok(ScanOutcome {
            valid_end: self.size(),
            corrupt,
        })
    }

    /// Removes the segment's files.
    pub(crate) fn delete_files(&self) -> Result<()> {
        let dir = self.log_path.parent().unwrap_or(Path::new("."));
        delete_files_of(dir, self.base_offset)
    }

    /// Byte length of the batch starting at position 0 of `bytes`, if a whole header is there.
    pub(crate) fn batch_len(bytes: &[u8]) -> Option<usize> {
        let len = i32::from_be_bytes(bytes.get(8..12)?.try_into().ok()?);
        (len >= 0).then_some(len as usize + LOG_OVERHEAD)
    }
}
