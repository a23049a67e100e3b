//! Filters: keep or drop each record of a fetch, in the broker, before it leaves.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_record::{Batches, retain_records};

use crate::error::PluginError;
use crate::instance::Instance;
use crate::plugin::Plugin;
use crate::pool::{Lease, Pool};

/// A filter attached with its params (one per subscription): a pool of initialised instances.
/// Cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct Filter {
    pool: Arc<Pool>,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("plugin", &self.pool.shared().info.name)
            .field("params", self.pool.params())
            .finish_non_exhaustive()
    }
}

/// What a filter call saw and kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterSummary {
    /// Batches in the input (control batches included).
    pub batches: usize,
    /// Records shown to the plugin (records of control batches are not).
    pub records: usize,
    /// Of those, records kept.
    pub kept: usize,
    /// The offset after the last input batch: where the consumer resumes even if every record
    /// was dropped. `None` for an empty input.
    pub next_offset: Option<i64>,
}

impl Filter {
    pub(crate) fn new(pool: Arc<Pool>) -> Self {
        Filter { pool }
    }

    /// The plugin.
    pub fn plugin(&self) -> Plugin {
        self.pool.plugin()
    }

    /// The params it was attached with.
    pub fn params(&self) -> &BTreeMap<String, String> {
        self.pool.params()
    }

    /// Checks out an instance, waiting up to [`crate::Limits::checkout_timeout_ms`] if all
    /// are busy. It goes back to the pool when dropped.
    pub fn instance(&self) -> Result<FilterInstance, PluginError> {
        Ok(FilterInstance {
            lease: self.pool.checkout()?,
        })
    }

    /// [`FilterInstance::filter_batches`] on a pooled instance.
    pub fn filter_batches(
        &self,
        batches: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<FilterSummary, PluginError> {
        self.instance()?.filter_batches(batches, out)
    }

    /// (idle, live) instances, for metrics.
    pub fn instance_counts(&self) -> (usize, usize) {
        self.pool.counts()
    }
}

/// One checked-out filter instance. Not `Clone`; returns to its pool on drop.
pub struct FilterInstance {
    lease: Lease,
}

impl FilterInstance {
    /// Runs the filter over `batches` (concatenated RecordBatch v2, as stored in a log
    /// segment or sent in a fetch response) and replaces the contents of `keep` with one answer
    /// per record, in order, `true` to keep.
    ///
    /// The records of all the batches go to the plugin in as few calls as
    /// [`crate::Limits::max_call_bytes`] allows, not one call per batch. Control batches
    /// (transaction markers) are not shown to it and get no answers. A trailing partial batch
    /// is ignored. Compressed batches are refused ([`PluginError::InvalidBatch`]).
    pub fn run(
        &mut self,
        batches: &[u8],
        keep: &mut Vec<bool>,
    ) -> Result<FilterSummary, PluginError> {
        let instance = self.lease.instance();
        instance.reset(0);
        keep.clear();
        std::mem::swap(&mut instance.keep, keep);
        let result = run(instance, batches);
        std::mem::swap(&mut instance.keep, keep);
        self.record(result)
    }

    /// Runs the filter over `batches` and appends to `out` the batches with only the kept
    /// records, ready to send to the consumer.
    ///
    /// A batch whose records are all kept is copied unchanged; one with none kept is left out;
    /// otherwise it is rewritten with [`sluice_record::retain_records`]: same base offset and
    /// `lastOffsetDelta`, so offsets keep their gaps and the consumer's position moves past
    /// dropped records. When every batch is dropped, [`FilterSummary::next_offset`] says where
    /// the consumer resumes. Control batches are copied unchanged.
    pub fn filter_batches(
        &mut self,
        batches: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<FilterSummary, PluginError> {
        let instance = self.lease.instance();
        instance.reset(0);
        let result = run(instance, batches).and_then(|summary| {
            write_kept(instance, batches, out)?;
            Ok(summary)
        });
        self.record(result)
    }

    fn record<T>(&mut self, result: Result<T, PluginError>) -> Result<T, PluginError> {
        if let Err(e) = &result {
            self.lease.pool().shared().stats.record_error(e);
        }
        result
    }
}

/// Feeds every record to the plugin; answers land in `instance.keep`.
fn run(instance: &mut Instance, batches: &[u8]) -> Result<FilterSummary, PluginError> {
    let mut summary = FilterSummary::default();
    let mut walker = Batches::new(batches);
    loop {
        let position = walker.position();
        match walker.next() {
            None => break,
            Some(Err(source)) => return Err(invalid(instance, position, source)),
            Some(Ok(batch)) => {
                summary.batches += 1;
                summary.next_offset = Some(batch.header().next_offset());
                if !batch.header().is_control() {
                    summary.records += instance.push_batch(&batch, position)?;
                }
            }
        }
    }
    instance.flush()?;
    debug_assert_eq!(instance.keep.len(), summary.records);
    summary.kept = instance.keep.iter().filter(|&&k| k).count();
    Ok(summary)
}

/// Writes the kept records of `batches`, given the answers in `instance.keep`.
fn write_kept(
    instance: &mut Instance,
    batches: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), PluginError> {
    let mut walker = Batches::new(batches);
    let mut next = 0;
    loop {
        let position = walker.position();
        let batch = match walker.next() {
            None => return Ok(()),
            Some(Err(source)) => return Err(invalid(instance, position, source)),
            Some(Ok(batch)) => batch,
        };
        if batch.header().is_control() {
            out.extend_from_slice(batch.as_bytes());
            continue;
        }
        // `run` walked this batch and found exactly `record_count` records.
        let count = batch.header().record_count.max(0) as usize;
        let flags = instance.keep.get(next..next + count).unwrap_or_default();
        next += count;
        if flags.iter().all(|&k| k) {
            out.extend_from_slice(batch.as_bytes());
        } else if flags.iter().any(|&k| k) {
            retain_records(&batch, out, |i, _| flags.get(i).copied().unwrap_or(false))
                .map_err(|source| invalid(instance, position, source))?;
        }
    }
}

fn invalid(
    instance: &Instance,
    position: usize,
    source: sluice_record::RecordError,
) -> PluginError {
    PluginError::InvalidBatch {
        plugin: instance.shared().info.name.clone(),
        position,
        source,
    }
}
