//! [`Log`]: one partition's log, a directory of segments.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex, RwLock};
use sluice_record::{Batch, BatchHeader, Batches, set_base_offset, set_partition_leader_epoch};

use crate::checkpoint::{Checkpoint, sync_dir};
use crate::config::{Durability, LogConfig};
use crate::epochs::EpochCache;
use crate::error::{Result, StorageError};
use crate::segment::{self, NO_TIMESTAMP, Segment};

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub first_offset: u64,
    /// Offset of the last record appended.
    pub last_offset: u64,
    /// The log end offset after the append (`last_offset + 1`).
    pub log_end_offset: u64,
    /// Largest batch max-timestamp among the appended batches.
    pub max_timestamp: i64,
    /// Number of batches appended.
    pub batches: usize,
    /// Bytes appended.
    pub bytes: usize,
}

/// How far a read may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBound {
    /// Only records below the high watermark (what consumers may see).
    HighWatermark,
    /// Everything appended (what a replica fetching from the leader sees).
    LogEnd,
}

/// What a read returned into the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadInfo {
    /// Base offset of the first batch returned (may be below the offset asked for: reads
    /// return whole batches and clients skip the records before their position).
    pub first_batch_offset: Option<u64>,
    /// Offset after the last returned batch; the position to read from next. Equal to the
    /// offset asked for when nothing was returned.
    pub next_offset: u64,
    /// Bytes returned.
    pub bytes: usize,
    /// Log start offset at the time of the read.
    pub log_start_offset: u64,
    /// High watermark at the time of the read.
    pub high_watermark: u64,
    /// Log end offset at the time of the read.
    pub log_end_offset: u64,
}

/// Description of one segment, for tools and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Base offset (the number in the file name).
    pub base_offset: u64,
    /// Offset after its last batch.
    pub next_offset: u64,
    /// Bytes in its `.log` file.
    pub size_bytes: u64,
    /// Largest record timestamp, or -1.
    pub max_timestamp: i64,
    /// Entries in its offset index.
    pub index_entries: usize,
    /// Whether it is the active segment.
    pub active: bool,
    /// Path of the `.log` file.
    pub path: PathBuf,
}

/// What [`Log::apply_retention`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Segments deleted.
    pub segments_deleted: usize,
    /// Bytes deleted.
    pub bytes_deleted: u64,
    /// Log start offset afterwards.
    pub log_start_offset: u64,
}

/// What [`Log::open`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments opened.
    pub segments: usize,
    /// Bytes scanned batch by batch (the tail after the recovery checkpoint).
    pub bytes_scanned: u64,
    /// Bytes cut off a torn or corrupt tail.
    pub bytes_truncated: u64,
    /// Segments after a torn one that were deleted (they were never acknowledged).
    pub segments_discarded: usize,
}

/// Writer state, behind the writer mutex.
struct Writer {
    active: Arc<Segment>,
    /// Rolled segments not fsynced yet.
    pending_sync: Vec<Arc<Segment>>,
    /// Set after a write error that could not be rolled back.
    failed: Option<String>,
}

/// Group commit state.
struct SyncState {
    /// Offsets below this are durable.
    durable_offset: u64,
    syncing: bool,
    /// Bytes appended since the last sync started.
    unsynced_bytes: u64,
    last_sync: Instant,
    failed: Option<String>,
}

/// State of the background work (retention, compaction); its mutex serializes them.
pub(crate) struct Upkeep {
    /// Segments with a base offset below this were compacted and not written since.
    pub(crate) cleaned_upto: u64,
    pub(crate) last_compaction_ms: u64,
}

/// One partition's log: a directory of segments, appended by one writer at a time and read by
/// any number of readers concurrently. See the crate docs for the layout and guarantees.
pub struct Log {
    dir: PathBuf,
    config: RwLock<LogConfig>,
    pub(crate) segments: RwLock<BTreeMap<u64, Arc<Segment>>>,
    writer: Mutex<Writer>,
    log_start: AtomicU64,
    log_end: AtomicU64,
    high_watermark: AtomicU64,
    sync: Mutex<SyncState>,
    synced: Condvar,
    pub(crate) upkeep: Mutex<Upkeep>,
    /// Leader epochs and where each starts (replication); changed under the writer lock.
    epochs: Mutex<EpochCache>,
    recovery: RecoveryReport,
    /// Set by [`Log::retire`]: the directory is being deleted; nothing may be written to it.
    retired: std::sync::atomic::AtomicBool,
    _lock: File,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join(".lock");
    let f = File::create(&path).map_err(|e| StorageError::io("create lock file", &path, e))?;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(StorageError::Locked {
            path: dir.to_path_buf(),
        });
    }
    Ok(f)
}

/// Reads `len` bytes at `position` of `seg` into the end of `buf` without zero-filling first.
fn read_append(seg: &Segment, buf: &mut Vec<u8>, len: usize, position: u64) -> Result<()> {
    buf.reserve(len);
    let start = buf.len();
    let spare = &mut buf.spare_capacity_mut()[..len];
    // SAFETY: `spare` is `len` bytes of allocated (uninitialized) memory. The read fills all of
    // it or fails; on failure the length is not changed, so no uninitialized byte is exposed.
    // `u8` has no invalid bit patterns.
    let slice = unsafe { std::slice::from_raw_parts_mut(spare.as_mut_ptr().cast::<u8>(), len) };
    seg.read_exact_at(slice, position)?;
    // SAFETY: the `len` bytes after `start` were written by the read above.
    unsafe { buf.set_len(start + len) };
    Ok(())
}

impl Log {
    /// Opens the log in `dir`, creating it if needed, and recovers from an unclean shutdown:
    /// segments and index entries vouched for by the recovery checkpoint are trusted, the rest
    /// is scanned batch by batch and a torn or corrupt tail is cut off.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Log> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| StorageError::io("create log directory", &dir, e))?;
        let lock = lock_dir(&dir)?;
        let bases = Self::tidy_directory(&dir)?;
        let checkpoint = Checkpoint::read(&dir);
        let mut report = RecoveryReport::default();
        let mut segments = BTreeMap::new();

        if bases.is_empty() {
            let seg = Segment::create(&dir, 0, &config)?;
            segments.insert(0, Arc::new(seg));
        } else {
            let last = *bases.last().expect("not empty");
            // Segments before the checkpoint's are durable; later ones may have torn tails.
            let trusted_below = checkpoint.map_or(0, |c| c.segment);
            let mut discard_from = None;
            for &base in &bases {
                if base == last {
                    let trusted = checkpoint.filter(|c| c.segment == base).map(|c| c.prefix);
                    let from = trusted.map_or(0, |t| t.position);
                    let (seg, cut) = Segment::open_active(&dir, base, &config, trusted)?;
                    report.bytes_scanned += seg.size() + cut - from.min(seg.size() + cut);
                    report.bytes_truncated += cut;
                    segments.insert(base, Arc::new(seg));
                } else if base < trusted_below {
                    segments.insert(base, Arc::new(Segment::open_closed(&dir, base, &config)?));
                } else {
                    // Rolled after the last checkpoint: check it whole, as if it were active.
                    let (seg, cut) = Segment::open_active(&dir, base, &config, None)?;
                    report.bytes_scanned += seg.size() + cut;
                    report.bytes_truncated += cut;
                    seg.close_indexes()?;
                    segments.insert(base, Arc::new(seg));
                    if cut > 0 {
                        discard_from = Some(base);
                        break;
                    }
                }
            }
            if let Some(torn) = discard_from {
                // Everything after a torn segment was written after it and never synced.
                for &base in bases.iter().filter(|&&b| b > torn) {
                    segment::delete_files_of(&dir, base)?;
                    report.segments_discarded += 1;
                }
                // The torn segment becomes the active one again.
                let seg = segments.remove(&torn).expect("inserted above");
                drop(seg);
                let (seg, _) = Segment::open_active(&dir, torn, &config, None)?;
                segments.insert(torn, Arc::new(seg));
            }
        }
        report.segments = segments.len();

        let active = segments
            .values()
            .next_back()
            .expect("at least one segment")
            .clone();
        let log_start = *segments.keys().next().expect("at least one segment");
        let log_end = active.next_offset();
        let mut epochs = EpochCache::open(&dir, log_end)?;
        if epochs.latest().is_none() && log_end > log_start {
            // Logs written before epochs were tracked hold epoch 0 (a single broker's).
            epochs.assign(0, log_start)?;
        }
        let log = Log {
            dir,
            config: RwLock::new(config),
            segments: RwLock::new(segments),
            writer: Mutex::new(Writer {
                active,
                pending_sync: Vec::new(),
                failed: None,
            }),
            log_start: AtomicU64::new(log_start),
            log_end: AtomicU64::new(log_end),
            high_watermark: AtomicU64::new(log_end),
            sync: Mutex::new(SyncState {
                durable_offset: 0,
                syncing: false,
                unsynced_bytes: 0,
                last_sync: Instant::now(),
                failed: None,
            }),
            synced: Condvar::new(),
            upkeep: Mutex::new(Upkeep {
                cleaned_upto: 0,
                last_compaction_ms: 0,
            }),
            epochs: Mutex::new(epochs),
            recovery: report,
            retired: std::sync::atomic::AtomicBool::new(false),
            _lock: lock,
        };
        if report.bytes_scanned > 0 || report.bytes_truncated > 0 || checkpoint.is_none() {
            // Make what recovery found durable and vouch for it, so the next open is quick.
            log.flush()?;
        } else {
            log.sync.lock().durable_offset = log_end;
        }
        tracing::debug!(dir = %log.dir.display(), ?report, log_start, log_end, "log opened");
        Ok(log)
    }

    /// Finishes or undoes interrupted compaction swaps and deletions; returns the segment base
    /// offsets present, in order.
    fn tidy_directory(dir: &Path) -> Result<Vec<u64>> {
        let entries =
            fs::read_dir(dir).map_err(|e| StorageError::io("list log directory", dir, e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io("list log directory", dir, e))?;
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
        let remove = |name: &str| -> Result<()> {
            let p = dir.join(name);
            fs::remove_file(&p).map_err(|e| StorageError::io("remove leftover file", &p, e))
        };
        // A `.swap` file is a compacted segment whose swap was decided: finish it.
        for name in &names {
            if let Some(base) = segment::parse_file_name(name, "log.swap") {
                for ext in ["index", "timeindex"] {
                    let p = dir.join(segment::file_name(base, ext));
                    if p.exists() {
                        fs::remove_file(&p)
                            .map_err(|e| StorageError::io("remove stale index", &p, e))?;
                    }
                }
                let to = dir.join(segment::file_name(base, "log"));
                fs::rename(dir.join(name), &to)
                    .map_err(|e| StorageError::io("finish compaction swap", &to, e))?;
            }
        }
        for name in &names {
            if name.ends_with(".cleaned") || name.ends_with(".deleted") || name.ends_with(".tmp") {
                remove(name)?;
            }
        }
        let mut bases: Vec<u64> = fs::read_dir(dir)
            .map_err(|e| StorageError::io("list log directory", dir, e))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|n| segment::parse_file_name(&n, "log"))
            .collect();
        bases.sort_unstable();
        // Index files without a log are leftovers of a deleted segment.
        for name in &names {
            let base = segment::parse_file_name(name, "index")
                .or_else(|| segment::parse_file_name(name, "timeindex"));
            if let Some(base) = base
                && bases.binary_search(&base).is_err()
                && dir.join(name).exists()
            {
                remove(name)?;
            }
        }
        sync_dir(dir)?;
        Ok(bases)
    }

    /// The directory of this log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the last open found and repaired.
    pub fn recovery_report(&self) -> RecoveryReport {
        self.recovery
    }

    /// A copy of the current settings.
    pub fn config(&self) -> LogConfig {
        self.config.read().clone()
    }

    /// Changes settings; they apply from the next append or maintenance pass.
    pub fn set_config(&self, config: LogConfig) -> Result<()> {
        config.validate()?;
        *self.config.write() = config;
        Ok(())
    }

    /// First offset still in the log.
    pub fn log_start_offset(&self) -> u64 {
        self.log_start.load(Ordering::Acquire)
    }

    /// Offset the next appended record gets (LEO).
    pub fn log_end_offset(&self) -> u64 {
        self.log_end.load(Ordering::Acquire)
    }

    /// Offsets below this are visible to consumers. Set by the broker (replication).
    pub fn high_watermark(&self) -> u64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    /// Sets the high watermark, clamped to `[log start, log end]`. Returns the value set.
    pub fn set_high_watermark(&self, offset: u64) -> u64 {
        let hw = offset.clamp(self.log_start_offset(), self.log_end_offset());
        self.high_watermark.store(hw, Ordering::Release);
        hw
    }

    /// Offsets below this are on disk (fsynced).
    pub fn durable_offset(&self) -> u64 {
        self.sync.lock().durable_offset
    }

    /// Total bytes of all segment files.
    pub fn size_bytes(&self) -> u64 {
        self.segments.read().values().map(|s| s.size()).sum()
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let segs = self.segments.read();
        let last = segs.keys().next_back().copied();
        segs.values()
            .map(|s| SegmentInfo {
                base_offset: s.base_offset,
                next_offset: s.next_offset(),
                size_bytes: s.size(),
                max_timestamp: s.max_timestamp(),
                index_entries: s.offsets.len(),
                active: Some(s.base_offset) == last,
                path: s.log_path.clone(),
            })
            .collect()
    }

    pub(crate) fn segment_list(&self) -> Vec<Arc<Segment>> {
        self.segments.read().values().cloned().collect()
    }

    /// Appends one or more whole record batches (Kafka RecordBatch v2), assigning offsets from
    /// the log end by rewriting each batch's base offset and leader epoch in `batches` (the CRC
    /// does not cover those fields, so records are not touched). Every batch is validated first
    /// (length, magic, CRC, record count and structure) and a bad one fails the whole append
    /// before anything is written.
    ///
    /// Returns after the write; with [`Durability::Always`] after the fsync too.
    pub fn append(&self, batches: &mut [u8], leader_epoch: i32) -> Result<AppendInfo> {
        self.append_batches(batches, Some(leader_epoch))
    }

    /// Appends batches a follower copied from its partition leader, as they are: their base
    /// offsets and leader epochs are kept (offsets may have gaps where the leader compacted),
    /// so the follower's log is byte for byte the leader's. The first batch must start at or
    /// after the log end, and each batch after the previous one.
    pub fn append_replicated(&self, batches: &mut [u8]) -> Result<AppendInfo> {
        self.append_batches(batches, None)
    }

    fn append_batches(&self, batches: &mut [u8], leader_epoch: Option<i32>) -> Result<AppendInfo> {
        let config = self.config.read().clone();
        if batches.len() as u64 > config.max_append_bytes {
            return Err(StorageError::AppendTooLarge {
                size: batches.len(),
                max: config.max_append_bytes,
            });
        }
        // Validate before taking the writer lock, so concurrent producers validate in parallel.
        let mut count = 0usize;
        let mut max_timestamp = NO_TIMESTAMP;
        let mut records_span = 0u64;
        // Replicated batches: (first base offset, next offset after the last).
        let mut replica_span: Option<(u64, u64)> = None;
        {
            let mut iter = Batches::new(batches);
            while let Some(batch) = iter.next() {
                let position = iter.position();
                let batch =
                    batch.map_err(|source| StorageError::InvalidBatch { position, source })?;
                let position = position - batch.as_bytes().len();
                batch
                    .validate()
                    .map_err(|source| StorageError::InvalidBatch { position, source })?;
                if config.cleanup_policy.compact {
                    Self::check_keys(&batch, position)?;
                }
                let h = batch.header();
                if leader_epoch.is_none() {
                    let base = h.base_offset as u64;
                    if let Some((_, next)) = replica_span
                        && base < next
                    {
                        return Err(StorageError::IncompleteAppend {
                            reason: format!(
                                "replicated batch at offset {base} overlaps the one before (which ends before {next})"
                            ),
                        });
                    }
                    let first = replica_span.map_or(base, |(f, _)| f);
                    replica_span = Some((first, h.next_offset() as u64));
                } else if h.last_offset_delta != h.record_count - 1 {
                    // An appended batch gets offsets base..base+count-1: it may not claim more
                    // (compaction's gaps only ever exist in batches the log itself rewrote).
                    return Err(StorageError::InvalidBatch {
                        position,
                        source: sluice_record::RecordError::BadOffsetDelta {
                            last_offset_delta: h.last_offset_delta,
                            record_count: h.record_count,
                        },
                    });
                }
                count += 1;
                max_timestamp = max_timestamp.max(h.max_timestamp);
                records_span += h.last_offset_delta as u64 + 1;
            }
            if !iter.remainder().is_empty() {
                return Err(StorageError::IncompleteAppend {
                    reason: format!(
                        "{} bytes after the last whole batch at byte {}",
                        iter.remainder().len(),
                        iter.position()
                    ),
                });
            }
        }
        if count == 0 {
            return Err(StorageError::IncompleteAppend {
                reason: "no batch in the append".into(),
            });
        }

        let len = batches.len() as u64;
        let mut w = self.writer.lock();
        if self.is_retired() {
            return Err(StorageError::Failed {
                path: self.dir.clone(),
                reason: "the log was deleted".into(),
            });
        }
        if let Some(reason) = &w.failed {
            return Err(StorageError::Failed {
                path: self.dir.clone(),
                reason: reason.clone(),
            });
        }
        let log_end = self.log_end_offset();
        let (first_offset, last_offset) = match replica_span {
            Some((first, _)) if first < log_end => {
                return Err(StorageError::IncompleteAppend {
                    reason: format!(
                        "replicated batches start at offset {first}, below the log end {log_end}; truncate first"
                    ),
                });
            }
            Some((first, next)) => (first, next - 1),
            None => (log_end, log_end + records_span - 1),
        };
        let mut rolled = false;
        if !w.active.fits(len, last_offset, &config) || self.roll_due(&w.active, &config) {
            self.roll_locked(&mut w, log_end, &config)?;
            rolled = true;
        }

        let mut next = first_offset;
        if let Some(epoch) = leader_epoch {
            // Assign offsets.
            let mut at = 0usize;
            while at < batches.len() {
                let total = Segment::batch_len(&batches[at..]).expect("validated above");
                let b = &mut batches[at..at + total];
                set_base_offset(b, next as i64);
                set_partition_leader_epoch(b, epoch);
                let h = BatchHeader::parse(b).expect("validated above");
                next = h.next_offset() as u64;
                at += total;
            }
            self.epochs.lock().assign(epoch, first_offset)?;
        } else {
            // Keep the leader's offsets and epochs; note each new epoch where it starts.
            let mut epochs = self.epochs.lock();
            let mut at = 0usize;
            while at < batches.len() {
                let h = BatchHeader::parse(&batches[at..]).expect("validated above");
                epochs.assign(h.partition_leader_epoch, h.base_offset as u64)?;
                next = h.next_offset() as u64;
                at += h.total_len();
            }
        }
        debug_assert_eq!(next, last_offset + 1);

        let active = w.active.clone();
        if let Err(e) = active.write(batches) {
            if let Err(undo) = active.undo_write() {
                let reason = format!("{e}; and undoing the partial write failed: {undo}");
                tracing::error!(dir = %self.dir.display(), %reason, "log is failed");
                w.failed = Some(reason);
            }
            return Err(e);
        }
        let start = active.size();
        let now = now_ms() as i64;
        let mut pos = 0usize;
        while pos < batches.len() {
            let h = BatchHeader::parse(&batches[pos..]).expect("validated above");
            active.track(start + pos as u64, &h, now);
            pos += h.total_len();
        }
        active.publish(start + len, next);
        self.log_end.store(next, Ordering::Release);
        drop(w);

        let info = AppendInfo {
            first_offset,
            last_offset,
            log_end_offset: next,
            max_timestamp,
            batches: count,
            bytes: batches.len(),
        };
        let sync_now = {
            let mut s = self.sync.lock();
            s.unsynced_bytes += len;
            match config.durability {
                Durability::Always => true,
                Durability::Interval { interval_bytes, .. } => s.unsynced_bytes >= interval_bytes,
                Durability::Never => false,
            }
        };
        if sync_now || rolled {
            self.sync_to(next, false)?;
        }
        Ok(info)
    }

    fn check_keys(batch: &Batch<'_>, position: usize) -> Result<()> {
        let records = batch
            .records()
            .map_err(|source| StorageError::InvalidBatch { position, source })?;
        for r in records {
            let r = r.map_err(|source| StorageError::InvalidBatch { position, source })?;
            if r.key.is_none() {
                return Err(StorageError::KeyRequired {
                    offset_delta: r.offset_delta,
                });
            }
        }
        Ok(())
    }

    fn roll_due(&self, active: &Segment, config: &LogConfig) -> bool {
        let first = active.first_batch_timestamp();
        !active.is_empty()
            && first != NO_TIMESTAMP
            && (now_ms() as i64).saturating_sub(first) >= config.segment_ms as i64
    }

    /// Closes the active segment and starts a new one at `base`. Writer lock held.
    fn roll_locked(&self, w: &mut Writer, base: u64, config: &LogConfig) -> Result<()> {
        if w.active.is_empty() {
            return Ok(());
        }
        debug_assert_eq!(base, w.active.next_offset());
        w.active.close_indexes()?;
        let seg = Arc::new(Segment::create(&self.dir, base, config)?);
        self.segments.write().insert(base, seg.clone());
        let old = std::mem::replace(&mut w.active, seg);
        w.pending_sync.push(old);
        tracing::debug!(dir = %self.dir.display(), base, "rolled segment");
        Ok(())
    }

    /// Closes the active segment now (if it has data) and starts a new one.
    pub fn roll(&self) -> Result<()> {
        let config = self.config();
        {
            let mut w = self.writer.lock();
            let base = self.log_end_offset();
            self.roll_locked(&mut w, base, &config)?;
        }
        self.flush()
    }

    /// Waits until offsets below `offset` are durable, syncing if nobody else is (group
    /// commit: one fsync covers every append that finished before it started).
    /// With `force`, performs a sync that starts after the call even if `offset` is durable.
    fn sync_to(&self, offset: u64, force: bool) -> Result<()> {
        let mut s = self.sync.lock();
        loop {
            if let Some(reason) = &s.failed {
                return Err(StorageError::Failed {
                    path: self.dir.clone(),
                    reason: reason.clone(),
                });
            }
            if !force && s.durable_offset >= offset {
                return Ok(());
            }
            if s.syncing {
                self.synced.wait(&mut s);
                continue;
            }
            s.syncing = true;
            s.unsynced_bytes = 0;
            s.last_sync = Instant::now();
            drop(s);
            let result = self.sync_now();
            s = self.sync.lock();
            s.syncing = false;
            match result {
                Ok(durable) => {
                    s.durable_offset = s.durable_offset.max(durable);
                    if force {
                        self.synced.notify_all();
                        return Ok(());
                    }
                }
                Err(e) => {
                    // After a failed fsync the page cache state is unknown (fsyncgate): stop.
                    let reason = e.to_string();
                    tracing::error!(dir = %self.dir.display(), %reason, "fsync failed; log is failed");
                    s.failed = Some(reason.clone());
                    self.writer.lock().failed = Some(reason);
                    self.synced.notify_all();
                    return Err(e);
                }
            }
            self.synced.notify_all();
        }
    }

    /// fsyncs rolled segments and the active one, then writes a checkpoint vouching for them.
    /// Returns the offset up to which everything is durable.
    fn sync_now(&self) -> Result<u64> {
        if self.is_retired() {
            // Its directory may already hold another log: write nothing there.
            return Ok(self.log_end_offset());
        }
        let (active, prefix, pending) = {
            let mut w = self.writer.lock();
            (
                w.active.clone(),
                w.active.trusted_prefix(),
                std::mem::take(&mut w.pending_sync),
            )
        };
        for seg in &pending {
            seg.sync()?;
        }
        active.sync()?;
        if !pending.is_empty() {
            sync_dir(&self.dir)?;
        }
        Checkpoint {
            segment: active.base_offset,
            prefix,
        }
        .write(&self.dir, false)?;
        Ok(prefix.next_offset)
    }

    /// Makes everything appended so far durable.
    pub fn flush(&self) -> Result<()> {
        self.sync_to(self.log_end_offset(), true)
    }

    /// For [`Durability::Interval`]: fsyncs if unsynced bytes waited `interval_ms`.
    pub fn flush_if_due(&self) -> Result<bool> {
        let Durability::Interval { interval_ms, .. } = self.config.read().durability else {
            return Ok(false);
        };
        let due = {
            let s = self.sync.lock();
            s.unsynced_bytes > 0 && s.last_sync.elapsed().as_millis() as u64 >= interval_ms
        };
        if due {
            self.sync_to(self.log_end_offset(), false)?;
        }
        Ok(due)
    }

    /// Reads whole batches starting with the one that contains `from_offset`, up to `max_bytes`
    /// (at least one batch, even a larger one, so a reader always makes progress), from one
    /// segment, into `buf` (cleared first). Clients skip records below `from_offset` in the
    /// first batch. Never blocks the writer.
    pub fn read_into(
        &self,
        from_offset: u64,
        max_bytes: usize,
        bound: ReadBound,
        buf: &mut Vec<u8>,
    ) -> Result<ReadInfo> {
        buf.clear();
        let log_end = self.log_end_offset();
        let hw = self.high_watermark();
        let log_start = self.log_start_offset();
        let end = match bound {
            ReadBound::HighWatermark => hw,
            ReadBound::LogEnd => log_end,
        };
        let mut info = ReadInfo {
            first_batch_offset: None,
            next_offset: from_offset,
            bytes: 0,
            log_start_offset: log_start,
            high_watermark: hw,
            log_end_offset: log_end,
        };
        if from_offset < log_start || from_offset > log_end {
            return Err(StorageError::OffsetOutOfRange {
                requested: from_offset,
                log_start,
                log_end,
            });
        }
        if from_offset >= end {
            return Ok(info);
        }
        let verify = self.config.read().verify_crc_on_read;
        let mut seg = {
            let segs = self.segments.read();
            segs.range(..=from_offset)
                .next_back()
                .or_else(|| segs.iter().next())
                .map(|(_, s)| s.clone())
                .expect("a log has at least one segment")
        };
        loop {
            let seg_end = seg.size();
            let mut pos = seg.offsets.lookup(from_offset) as u64;
            let mut found = None;
            while pos < seg_end {
                let h = seg.header_at(pos, seg_end)?;
                if h.next_offset() as u64 > from_offset {
                    found = Some(h);
                    break;
                }
                pos += h.total_len() as u64;
            }
            let Some(first) = found else {
                // Nothing at or after `from_offset` here (compaction may have emptied the
                // rest): continue in the next segment.
                let next = self
                    .segments
                    .read()
                    .range(seg.base_offset + 1..)
                    .next()
                    .map(|(_, s)| s.clone());
                match next {
                    Some(s) => {
                        seg = s;
                        continue;
                    }
                    None => return Ok(info),
                }
            };
            if first.base_offset as u64 >= end {
                return Ok(info);
            }
            let first_len = first.total_len();
            let want = first_len.max(max_bytes.min((seg_end - pos) as usize));
            read_append(&seg, buf, want, pos)?;
            // Keep whole batches below the bound.
            let mut kept = 0usize;
            let mut next_offset = first.base_offset as u64;
            let mut iter = Batches::new(buf);
            for batch in iter.by_ref() {
                let at = pos + kept as u64;
                let checked = batch.and_then(|b| {
                    if verify {
                        b.verify_crc()?;
                    }
                    Ok(b)
                });
                let b = match checked {
                    Ok(b) => b,
                    Err(e) if kept == 0 => {
                        return Err(StorageError::Corrupt {
                            path: seg.log_path.clone(),
                            position: at,
                            reason: e.to_string(),
                        });
                    }
                    Err(_) => break, // served up to the bad batch; the next read reports it
                };
                let h = b.header();
                if h.base_offset as u64 >= end {
                    break;
                }
                if (h.base_offset as u64) < next_offset {
                    if kept == 0 {
                        return Err(StorageError::Corrupt {
                            path: seg.log_path.clone(),
                            position: at,
                            reason: "batch offsets go backwards".into(),
                        });
                    }
                    break;
                }
                next_offset = h.next_offset() as u64;
                kept += h.total_len();
            }
            buf.truncate(kept);
            info.first_batch_offset = Some(first.base_offset as u64);
            info.next_offset = next_offset;
            info.bytes = kept;
            return Ok(info);
        }
    }

    /// Like [`Log::read_into`] with a new buffer.
    pub fn read(
        &self,
        from_offset: u64,
        max_bytes: usize,
        bound: ReadBound,
    ) -> Result<(Vec<u8>, ReadInfo)> {
        let mut buf = Vec::new();
        let info = self.read_into(from_offset, max_bytes, bound, &mut buf)?;
        Ok((buf, info))
    }

    /// Offset of the first record whose timestamp is `>= timestamp`, below the bound; `None`
    /// when there is none.
    pub fn offset_for_timestamp(&self, timestamp: i64, bound: ReadBound) -> Result<Option<u64>> {
        let end = match bound {
            ReadBound::HighWatermark => self.high_watermark(),
            ReadBound::LogEnd => self.log_end_offset(),
        };
        let log_start = self.log_start_offset();
        let mut buf = Vec::new();
        for seg in self.segment_list() {
            if seg.max_timestamp() < timestamp {
                continue;
            }
            let seg_end = seg.size();
            let mut pos = seg.offsets.lookup(seg.times.lookup(timestamp)) as u64;
            while pos < seg_end {
                let h = seg.header_at(pos, seg_end)?;
                if h.base_offset as u64 >= end {
                    return Ok(None);
                }
                if h.max_timestamp >= timestamp && h.next_offset() as u64 > log_start {
                    buf.clear();
                    read_append(&seg, &mut buf, h.total_len(), pos)?;
                    let corrupt = |reason: String| StorageError::Corrupt {
                        path: seg.log_path.clone(),
                        position: pos,
                        reason,
                    };
                    let batch = Batch::new(&buf).map_err(|e| corrupt(e.to_string()))?;
                    let log_append_time = h.attributes & 0x08 != 0;
                    let records = match batch.records() {
                        Ok(r) if !log_append_time => r,
                        // Compressed or log-append-time batches: the batch is the answer.
                        _ => return Ok(Some((h.base_offset as u64).max(log_start))),
                    };
                    for r in records {
                        let r = r.map_err(|e| corrupt(e.to_string()))?;
                        let offset = r.offset(h.base_offset) as u64;
                        if offset >= log_start
                            && offset < end
                            && r.timestamp(h.base_timestamp) >= timestamp
                        {
                            return Ok(Some(offset));
                        }
                    }
                }
                pos += h.total_len() as u64;
            }
        }
        Ok(None)
    }

    /// Deletes closed segments past `retention.ms` (by their newest record) or beyond
    /// `retention.bytes` (oldest first), only below the high watermark, never the active
    /// segment, and advances the log start offset.
    pub fn apply_retention(&self, now_ms: u64) -> Result<RetentionReport> {
        let _upkeep = self.upkeep.lock();
        let config = self.config();
        let mut report = RetentionReport {
            log_start_offset: self.log_start_offset(),
            ..Default::default()
        };
        if !config.cleanup_policy.delete || self.is_retired() {
            return Ok(report);
        }
        let segs = self.segment_list();
        let hw = self.high_watermark();
        let mut total: u64 = segs.iter().map(|s| s.size()).sum();
        let mut doomed = Vec::new();
        for pair in segs.windows(2) {
            let (seg, next) = (&pair[0], &pair[1]);
            if next.base_offset > hw {
                break;
            }
            let newest = match seg.max_timestamp() {
                NO_TIMESTAMP => file_mtime_ms(&seg.log_path),
                ts => ts,
            };
            let by_time = config
                .retention_ms
                .is_some_and(|r| newest < now_ms as i64 - r as i64);
            let by_size = config
                .retention_bytes
                .is_some_and(|r| total - seg.size() >= r);
            if !(by_time || by_size) {
                break;
            }
            total -= seg.size();
            doomed.push(seg.clone());
        }
        if doomed.is_empty() {
            return Ok(report);
        }
        {
            let mut map = self.segments.write();
            for seg in &doomed {
                map.remove(&seg.base_offset);
            }
            let first = *map.keys().next().expect("the active segment stays");
            self.log_start.fetch_max(first, Ordering::AcqRel);
        }
        // Readers holding a segment keep reading its open file after the unlink.
        for seg in &doomed {
            seg.delete_files()?;
            report.segments_deleted += 1;
            report.bytes_deleted += seg.size();
        }
        report.log_start_offset = self.log_start_offset();
        self.set_high_watermark(self.high_watermark());
        tracing::info!(dir = %self.dir.display(), ?report, "retention deleted segments");
        Ok(report)
    }

    /// Runs what is due: the interval flush, retention, and compaction when enough of the log
    /// is dirty. Called by [`crate::Maintainer`] or on demand.
    pub fn maintain(&self, now_ms: u64) -> Result<()> {
        if self.is_retired() {
            return Ok(());
        }
        self.flush_if_due()?;
        let config = self.config();
        if config.cleanup_policy.delete {
            self.apply_retention(now_ms)?;
        }
        if config.cleanup_policy.compact && self.compaction_due(now_ms, &config) {
            self.compact(now_ms)?;
        }
        Ok(())
    }

    /// The latest leader epoch that wrote into this log, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.lock().latest()
    }

    /// Where `epoch` ends in this log: the largest epoch ≤ `epoch` this log knows and the
    /// first offset after it (the log end when it is the latest). `None` when `epoch` is older
    /// than any this log knows. A follower truncates its log there before fetching.
    pub fn epoch_end_offset(&self, epoch: i32) -> Option<(i32, u64)> {
        let _w = self.writer.lock();
        self.epochs
            .lock()
            .end_offset_for(epoch, self.log_end_offset())
    }

    /// The leader epoch cache: (epoch, first offset) pairs.
    pub fn epoch_entries(&self) -> Vec<(i32, u64)> {
        self.epochs.lock().entries().to_vec()
    }

    /// Cuts the log back so that it ends at or before `offset`: segments starting at or after
    /// it are deleted and the segment holding it is cut at the start of the batch that holds
    /// `offset` (batches are never split, so the new log end may be a little lower). With
    /// `offset` below the first segment, the log restarts empty at `offset`. The high
    /// watermark and the leader epoch cache follow. Returns the new log end.
    ///
    /// A follower does this when its tail diverged from the leader's.
    pub fn truncate_to(&self, offset: u64) -> Result<u64> {
        let config = self.config();
        let mut w = self.writer.lock();
        if self.is_retired() {
            return Err(StorageError::Failed {
                path: self.dir.clone(),
                reason: "the log was deleted".into(),
            });
        }
        if let Some(reason) = &w.failed {
            return Err(StorageError::Failed {
                path: self.dir.clone(),
                reason: reason.clone(),
            });
        }
        let log_end = self.log_end_offset();
        if offset >= log_end {
            return Ok(log_end);
        }
        let keep = {
            let segs = self.segments.read();
            segs.range(..offset).next_back().map(|(_, s)| s.clone())
        };
        let doomed: Vec<Arc<Segment>> = {
            let mut segs = self.segments.write();
            let bases: Vec<u64> = segs
                .keys()
                .copied()
                .filter(|&b| keep.as_ref().is_none_or(|k| b >= k.base_offset))
                .collect();
            bases.iter().filter_map(|b| segs.remove(b)).collect()
        };
        w.pending_sync
            .retain(|s| !doomed.iter().any(|d| d.base_offset == s.base_offset));
        let new_active = match &keep {
            Some(seg) => {
                // Find the batch holding `offset` and cut the file at its start.
                let size = seg.size();
                let mut pos = seg.offsets.lookup(offset) as u64;
                while pos < size {
                    let h = seg.header_at(pos, size)?;
                    if h.next_offset() as u64 > offset {
                        break;
                    }
                    pos += h.total_len() as u64;
                }
                for d in doomed.iter().filter(|d| d.base_offset != seg.base_offset) {
                    d.delete_files()?;
                }
                let file = fs::OpenOptions::new()
                    .write(true)
                    .open(&seg.log_path)
                    .map_err(|e| StorageError::io("open segment to truncate", &seg.log_path, e))?;
                file.set_len(pos)
                    .map_err(|e| StorageError::io("truncate segment", &seg.log_path, e))?;
                file.sync_all()
                    .map_err(|e| StorageError::io("sync truncated segment", &seg.log_path, e))?;
                let (reopened, _) =
                    Segment::open_active(&self.dir, seg.base_offset, &config, None)?;
                reopened
            }
            None => {
                for d in &doomed {
                    d.delete_files()?;
                }
                self.log_start.store(offset, Ordering::Release);
                Segment::create(&self.dir, offset, &config)?
            }
        };
        sync_dir(&self.dir)?;
        let new_active = Arc::new(new_active);
        let new_end = new_active.next_offset();
        self.segments
            .write()
            .insert(new_active.base_offset, new_active.clone());
        w.active = new_active.clone();
        self.log_end.store(new_end, Ordering::Release);
        if self.high_watermark() > new_end {
            self.high_watermark.store(new_end, Ordering::Release);
        }
        {
            let mut epochs = self.epochs.lock();
            if keep.is_none() {
                epochs.clear()?;
            } else {
                epochs.truncate_from(new_end)?;
            }
        }
        {
            let mut s = self.sync.lock();
            s.durable_offset = s.durable_offset.min(new_end);
        }
        // The old checkpoint vouched for bytes that are gone: vouch for the new tail instead.
        new_active.sync()?;
        Checkpoint {
            segment: new_active.base_offset,
            prefix: new_active.trusted_prefix(),
        }
        .write(&self.dir, true)?;
        tracing::info!(dir = %self.dir.display(), from = log_end, to = new_end, "log truncated");
        Ok(new_end)
    }

    /// Empties the log and restarts it at `offset` (above its log end): a follower that fell
    /// behind the leader's retention starts over from the leader's log start.
    pub fn restart_at(&self, offset: u64) -> Result<()> {
        let log_end = self.log_end_offset();
        if offset <= log_end {
            self.truncate_to(offset)?;
            return Ok(());
        }
        let config = self.config();
        let mut w = self.writer.lock();
        if self.is_retired() || w.failed.is_some() {
            return Err(StorageError::Failed {
                path: self.dir.clone(),
                reason: "the log cannot be written".into(),
            });
        }
        let doomed: Vec<Arc<Segment>> = std::mem::take(&mut *self.segments.write())
            .into_values()
            .collect();
        w.pending_sync.clear();
        for d in &doomed {
            d.delete_files()?;
        }
        let fresh = Arc::new(Segment::create(&self.dir, offset, &config)?);
        sync_dir(&self.dir)?;
        self.segments.write().insert(offset, fresh.clone());
        w.active = fresh.clone();
        self.log_start.store(offset, Ordering::Release);
        self.log_end.store(offset, Ordering::Release);
        self.high_watermark.store(offset, Ordering::Release);
        self.epochs.lock().clear()?;
        {
            let mut s = self.sync.lock();
            s.durable_offset = offset;
        }
        fresh.sync()?;
        Checkpoint {
            segment: offset,
            prefix: fresh.trusted_prefix(),
        }
        .write(&self.dir, true)?;
        tracing::info!(dir = %self.dir.display(), from = log_end, to = offset, "log restarted");
        Ok(())
    }

    /// Marks the log as about to be deleted while other holders may still use it: appends fail,
    /// and flushes and maintenance write nothing more into its directory (which may soon
    /// belong to a new log of the same name). Reads keep working on the open files.
    pub fn retire(&self) {
        let _w = self.writer.lock();
        self.retired.store(true, Ordering::Release);
    }

    /// Whether [`Log::retire`] was called.
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Removes the whole log from disk.
    pub fn delete(self) -> Result<()> {
        let dir = self.dir.clone();
        drop(self);
        fs::remove_dir_all(&dir).map_err(|e| StorageError::io("delete log directory", &dir, e))
    }

    /// Clean shutdown: flushes everything, closes the active segment's indexes and writes a
    /// checkpoint covering the whole log, so the next open scans nothing.
    pub fn close(self) -> Result<()> {
        let w = self.writer.lock();
        if w.failed.is_some() || self.is_retired() {
            return Ok(()); // the next open recovers
        }
        drop(w);
        self.flush()?;
        let w = self.writer.lock();
        let prefix = w.active.trusted_prefix();
        w.active.offsets.sync()?;
        w.active.times.sync()?;
        Checkpoint {
            segment: w.active.base_offset,
            prefix,
        }
        .write(&self.dir, true)?;
        Ok(())
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("log_start", &self.log_start_offset())
            .field("high_watermark", &self.high_watermark())
            .field("log_end", &self.log_end_offset())
            .finish()
    }
}

fn file_mtime_ms(path: &Path) -> i64 {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}
