//! Maps: rewrite each record's key, value and headers, in the broker, before it leaves
//! (plugin ABI version 2).

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_record::{BatchBuilder, Batches, RecordError};

use crate::abi::{self, EntryView};
use crate::error::PluginError;
use crate::instance::Instance;
use crate::plugin::Plugin;
use crate::pool::{Lease, Pool};

/// A map attached with its params (one per subscription): a pool of initialised instances.
/// Cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct Map {
    pool: Arc<Pool>,
}

impl std::fmt::Debug for Map {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Map")
            .field("plugin", &self.pool.shared().info.name)
            .field("params", self.pool.params())
            .finish_non_exhaustive()
    }
}

/// What a map call saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapSummary {
    /// Batches in the input (control batches included).
    pub batches: usize,
    /// Records rewritten (records of control batches are not shown to the plugin).
    pub records: usize,
    /// The offset after the last input batch. `None` for an empty input.
    pub next_offset: Option<i64>,
}

impl Map {
    pub(crate) fn new(pool: Arc<Pool>) -> Self {
        Map { pool }
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
    pub fn instance(&self) -> Result<MapInstance, PluginError> {
        Ok(MapInstance {
            lease: self.pool.checkout()?,
        })
    }

    /// [`MapInstance::map_batches`] on a pooled instance.
    pub fn map_batches(
        &self,
        batches: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<MapSummary, PluginError> {
        self.instance()?.map_batches(batches, out)
    }
}

/// One checked-out map instance. Not `Clone`; returns to its pool on drop.
pub struct MapInstance {
    lease: Lease,
}

impl MapInstance {
    /// Runs the map over `batches` (concatenated RecordBatch v2, as stored in a log segment
    /// or sent in a fetch response) and appends to `out` the same batches with each record's
    /// key, value and headers as the plugin answered.
    ///
    /// Every batch keeps its base offset and base timestamp, and every record its offset and
    /// timestamp (a batch using log-append time is rewritten with its records' timestamps as
    /// create times); the rewritten batches are uncompressed, with fresh CRCs. Control
    /// batches are copied unchanged. The records of all the batches go to the plugin in as
    /// few calls as [`crate::Limits::max_call_bytes`] allows. The plugin's output is checked
    /// entry by entry (one per record, same offsets, lengths inside its output, at most
    /// [`crate::MAX_MAP_OUTPUT_BYTES`] in all): anything else is
    /// [`PluginError::BadMapAnswer`], and nothing is appended to `out`.
    pub fn map_batches(
        &mut self,
        batches: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<MapSummary, PluginError> {
        let instance = self.lease.instance();
        instance.reset(0);
        let start = out.len();
        let result = run(instance, batches).and_then(|summary| {
            write_mapped(instance, batches, out)?;
            Ok(summary)
        });
        if let Err(e) = &result {
            out.truncate(start);
            self.lease.pool().shared().stats.record_error(e);
        }
        result
    }
}

/// Feeds every record to the plugin; answers land in `instance.mapped`.
fn run(instance: &mut Instance, batches: &[u8]) -> Result<MapSummary, PluginError> {
    let mut summary = MapSummary::default();
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
    Ok(summary)
}

/// Rebuilds `batches` with the records in `instance.mapped` (one checked entry per record, in
/// order).
fn write_mapped(
    instance: &mut Instance,
    batches: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), PluginError> {
    let mapped = std::mem::take(&mut instance.mapped);
    let result = rebuild(instance, batches, &mapped, out);
    instance.mapped = mapped;
    result
}

fn rebuild(
    instance: &Instance,
    batches: &[u8],
    mapped: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), PluginError> {
    let name = &instance.shared().info.name;
    let bad = |view: &EntryView, reason: String| PluginError::BadMapAnswer {
        plugin: name.clone(),
        first_offset: view.offset,
        last_offset: view.offset,
        reason,
    };
    let mut walker = Batches::new(batches);
    let mut pos = 0;
    let mut headers: Vec<(&[u8], Option<&[u8]>)> = Vec::new();
    loop {
        let position = walker.position();
        let batch = match walker.next() {
            None => return Ok(()),
            Some(Err(source)) => return Err(invalid(instance, position, source)),
            Some(Ok(batch)) => batch,
        };
        let header = *batch.header();
        if header.is_control() {
            out.extend_from_slice(batch.as_bytes());
            continue;
        }
        let records = batch
            .records()
            .map_err(|source| invalid(instance, position, source))?;
        let append_time = header.is_log_append_time().then_some(header.max_timestamp);
        let mut builder = BatchBuilder::new(out, header.base_offset, header.base_timestamp);
        let mut last_delta: Option<i32> = None;
        for record in records {
            let record = record.map_err(|source| invalid(instance, position, source))?;
            let offset = record.offset(header.base_offset);
            let timestamp = append_time.unwrap_or_else(|| record.timestamp(header.base_timestamp));
            // `run` checked every entry, one per record, with the records' offsets.
            let view =
                abi::read_entry(mapped, pos).map_err(|reason| PluginError::BadMapAnswer {
                    plugin: name.clone(),
                    first_offset: offset,
                    last_offset: offset,
                    reason,
                })?;
            pos = view.next;
            if view.offset != offset {
                return Err(bad(
                    &view,
                    format!("an entry for offset {} where {offset} was due", view.offset),
                ));
            }
            let delta = record.offset_delta;
            if delta < 0 || last_delta.is_some_and(|l| delta <= l) {
                return Err(invalid(
                    instance,
                    position,
                    RecordError::Malformed {
                        position: 0,
                        reason: "record offset deltas do not increase",
                    },
                ));
            }
            last_delta = Some(delta);
            let part = |span: Option<(usize, usize)>| span.map(|(a, b)| &mapped[a..b]);
            let (key, value) = (part(view.key), part(view.value));
            let too_long = |b: Option<&[u8]>| b.is_some_and(|b| b.len() > i32::MAX as usize);
            if too_long(key) || too_long(value) || view.headers_count > i32::MAX as usize {
                return Err(bad(&view, "a field longer than i32::MAX bytes".into()));
            }
            headers.clear();
            headers.extend(abi::entry_headers(mapped, &view));
            builder.push_with_delta(delta, timestamp, key, value, &headers);
        }
        let _range = builder.finish();
    }
}

fn invalid(instance: &Instance, position: usize, source: RecordError) -> PluginError {
    PluginError::InvalidBatch {
        plugin: instance.shared().info.name.clone(),
        position,
        source,
    }
}
