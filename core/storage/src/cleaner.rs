//! Log compaction: closed segments keep only the latest record per key.
//!
//! A pass maps every key of the cleanable range (closed segments wholly below the high
//! watermark) to its latest offset, then rewrites each segment of that range keeping a record
//! only if it is the latest for its key — and, for a tombstone (null value), only while it is
//! younger than `delete.retention.ms`. Offsets keep their gaps: a kept record is copied byte for
//! byte under its batch's original header, so its offset and timestamp do not change. Records
//! without a key, control batches and compressed batches are kept as they are.
//!
//! The key map holds a 128-bit hash of each key (xxh3), so its memory does not depend on key
//! sizes; two keys colliding (odds about 2^-64 at billions of keys) would merge their histories.
//!
//! A rewritten segment replaces the old one crash-safely: it is written to `<base>.log.cleaned`
//! and fsynced, renamed to `.log.swap` (the decision), then its indexes are removed and it is
//! renamed over the `.log`. Open deletes `.cleaned` files and finishes `.swap` renames. Readers
//! that hold the old segment keep reading its unlinked file.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::sync::Arc;

use sluice_record::{Batch, Batches, HEADER_LEN, retain_records};
use xxhash_rust::xxh3::xxh3_128;

use crate::checkpoint::sync_dir;
use crate::config::LogConfig;
use crate::error::{Result, StorageError};
use crate::log::Log;
use crate::segment::{self, Segment};

/// What [`Log::compact`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Segments in the cleanable range.
    pub segments_scanned: usize,
    /// Segments rewritten.
    pub segments_rewritten: usize,
    /// Distinct keys seen.
    pub keys: usize,
    /// Records dropped (superseded or expired tombstones).
    pub records_removed: u64,
    /// Bytes of the rewritten segments before and after.
    pub bytes_before: u64,
    /// See `bytes_before`.
    pub bytes_after: u64,
}

/// Calls `f` for each whole batch of `seg` below `end`, reading in large chunks.
pub(crate) fn for_each_batch(
    seg: &Segment,
    end: u64,
    mut f: impl FnMut(u64, Batch<'_>) -> Result<()>,
) -> Result<()> {
    const CHUNK: usize = 1 << 20;
    let mut buf = vec![0u8; 0];
    let mut pos = 0u64;
    while pos < end {
        let want = CHUNK
            .min((end - pos) as usize)
            .max(HEADER_LEN.min((end - pos) as usize));
        buf.resize(want, 0);
        seg.read_exact_at(&mut buf, pos)?;
        let mut batches = Batches::new(&buf);
        let mut consumed = 0usize;
        for b in batches.by_ref() {
            let b = b.map_err(|e| StorageError::Corrupt {
                path: seg.log_path.clone(),
                position: pos + consumed as u64,
                reason: e.to_string(),
            })?;
            let len = b.as_bytes().len();
            f(pos + consumed as u64, b)?;
            consumed += len;
        }
        if consumed == 0 {
            // One batch larger than the chunk: read it whole.
            let h = seg.header_at(pos, end)?;
            buf.resize(h.total_len(), 0);
            seg.read_exact_at(&mut buf, pos)?;
            let b = Batch::new(&buf).map_err(|e| StorageError::Corrupt {
                path: seg.log_path.clone(),
                position: pos,
                reason: e.to_string(),
            })?;
            f(pos, b)?;
            consumed = h.total_len();
        }
        pos += consumed as u64;
    }
    Ok(())
}

impl Log {
    /// Whether enough of the closed log was written since the last pass, or tombstones may
    /// have expired since.
    pub(crate) fn compaction_due(&self, now_ms: u64, config: &LogConfig) -> bool {
        let upkeep = self.upkeep.lock();
        let segs = self.segment_list();
        let closed = &segs[..segs.len().saturating_sub(1)];
        if closed.is_empty() {
            return false;
        }
        let total: u64 = closed.iter().map(|s| s.size()).sum();
        let dirty: u64 = closed
            .iter()
            .filter(|s| s.base_offset >= upkeep.cleaned_upto)
            .map(|s| s.size())
            .sum();
        (total > 0 && dirty as f64 / total as f64 >= config.min_cleanable_dirty_ratio && dirty > 0)
            || now_ms.saturating_sub(upkeep.last_compaction_ms) >= config.delete_retention_ms
    }

    /// Compacts the closed segments below the high watermark now (a no-op unless
    /// `cleanup.policy` includes `compact`).
    pub fn compact(&self, now_ms: u64) -> Result<CompactionReport> {
        let mut upkeep = self.upkeep.lock();
        let config = self.config();
        let mut report = CompactionReport::default();
        if !config.cleanup_policy.compact || self.is_retired() {
            return Ok(report);
        }
        let segs = self.segment_list();
        let hw = self.high_watermark();
        // Closed segments wholly below the high watermark.
        let mut cleanable: Vec<Arc<Segment>> = segs
            .windows(2)
            .take_while(|pair| pair[1].base_offset <= hw)
            .map(|pair| pair[0].clone())
            .collect();
        if cleanable.is_empty() {
            return Ok(report);
        }

        // Pass 1: latest offset per key.
        let mut latest: HashMap<u128, u64> = HashMap::new();
        let limit = config.compaction_map_keys as usize;
        let mut mapped = 0usize;
        'segments: for seg in &cleanable {
            let mut full = false;
            for_each_batch(seg, seg.size(), |position, batch| {
                let h = *batch.header();
                if h.is_control() {
                    return Ok(());
                }
                let Ok(records) = batch.records() else {
                    return Ok(()); // compressed: kept as is
                };
                for r in records {
                    let r = r.map_err(|e| StorageError::Corrupt {
                        path: seg.log_path.clone(),
                        position,
                        reason: e.to_string(),
                    })?;
                    if let Some(key) = r.key {
                        let offset = r.offset(h.base_offset) as u64;
                        let slot = latest.entry(xxh3_128(key)).or_insert(offset);
                        *slot = (*slot).max(offset);
                        if latest.len() > limit {
                            full = true;
                        }
                    }
                }
                Ok(())
            })?;
            if full {
                // This segment did not fit: clean only the segments mapped before it. The
                // offsets of this segment already in the map are newer than anything before
                // it, and the records they point at stay, so using them loses nothing.
                break 'segments;
            }
            mapped += 1;
        }
        if mapped == 0 {
            tracing::warn!(dir = %self.dir().display(), limit,
                "compaction.map.keys is too small to hold the keys of one segment; raise it");
            return Ok(report);
        }
        cleanable.truncate(mapped);
        report.segments_scanned = mapped;
        report.keys = latest.len();

        // Pass 2: rewrite each segment that loses records.
        let tombstone_horizon = now_ms as i64 - config.delete_retention_ms as i64;
        for seg in &cleanable {
            self.rewrite_segment(seg, &latest, tombstone_horizon, &config, &mut report)?;
        }
        upkeep.cleaned_upto = cleanable.last().map_or(0, |s| s.next_offset());
        upkeep.last_compaction_ms = now_ms;
        tracing::info!(dir = %self.dir().display(), ?report, "compaction pass done");
        Ok(report)
    }

    fn rewrite_segment(
        &self,
        seg: &Arc<Segment>,
        latest: &HashMap<u128, u64>,
        tombstone_horizon: i64,
        config: &LogConfig,
        report: &mut CompactionReport,
    ) -> Result<()> {
        let dir = self.dir();
        let cleaned_path = dir.join(segment::file_name(seg.base_offset, "log.cleaned"));
        let file = File::create(&cleaned_path)
            .map_err(|e| StorageError::io("create cleaned segment", &cleaned_path, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut scratch = Vec::new();
        let mut removed = 0u64;
        let mut written = 0u64;
        let write_err = |e| StorageError::io("write cleaned segment", &cleaned_path, e);
        for_each_batch(seg, seg.size(), |position, batch| {
            let h = *batch.header();
            let records = match batch.records() {
                Ok(r) if !h.is_control() => r,
                _ => {
                    out.write_all(batch.as_bytes()).map_err(write_err)?;
                    written += batch.as_bytes().len() as u64;
                    return Ok(());
                }
            };
            let count = records.count() as u64;
            scratch.clear();
            let kept_any = retain_records(&batch, &mut scratch, |_, r| {
                let Some(key) = r.key else { return true };
                let offset = r.offset(h.base_offset) as u64;
                if latest.get(&xxh3_128(key)).is_some_and(|&l| l != offset) {
                    return false;
                }
                !(r.value.is_none() && r.timestamp(h.base_timestamp) < tombstone_horizon)
            })
            .map_err(|e| StorageError::Corrupt {
                path: seg.log_path.clone(),
                position,
                reason: e.to_string(),
            })?;
            if !kept_any {
                removed += count;
                return Ok(());
            }
            let kept = Batch::new(&scratch)
                .map(|b| b.header().record_count as u64)
                .unwrap_or(count);
            removed += count - kept;
            out.write_all(&scratch).map_err(write_err)?;
            written += scratch.len() as u64;
            Ok(())
        })?;
        if removed == 0 {
            drop(out);
            let _ = fs::remove_file(&cleaned_path);
            return Ok(());
        }
        let file = out.into_inner().map_err(|e| {
            StorageError::io("flush cleaned segment", &cleaned_path, e.into_error())
        })?;
        file.sync_all()
            .map_err(|e| StorageError::io("fsync cleaned segment", &cleaned_path, e))?;
        drop(file);

        // Swap: the rename to `.swap` is the commit point; open finishes what follows.
        let swap_path = dir.join(segment::file_name(seg.base_offset, "log.swap"));
        fs::rename(&cleaned_path, &swap_path)
            .map_err(|e| StorageError::io("rename cleaned segment", &swap_path, e))?;
        sync_dir(dir)?;
        for p in [&seg.offset_index_path, &seg.time_index_path] {
            match fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io("remove old index", p, e)),
            }
        }
        fs::rename(&swap_path, &seg.log_path)
            .map_err(|e| StorageError::io("swap cleaned segment", &seg.log_path, e))?;
        sync_dir(dir)?;
        let fresh = Arc::new(Segment::open_closed(dir, seg.base_offset, config)?);
        self.segments.write().insert(seg.base_offset, fresh);

        report.segments_rewritten += 1;
        report.records_removed += removed;
        report.bytes_before += seg.size();
        report.bytes_after += written;
        Ok(())
    }
}
