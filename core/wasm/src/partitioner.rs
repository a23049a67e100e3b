//! Partitioners: choose the partition of each record a producer sends without one.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_record::Batches;

use crate::error::PluginError;
use crate::plugin::Plugin;
use crate::pool::{Lease, Pool};

/// One record to route, for callers that do not hold it as a RecordBatch (an HTTP produce
/// request, for instance).
#[derive(Debug, Clone, Copy)]
pub struct RecordInput<'a> {
    /// The record's offset; before the log assigns one, its index in the request (0, 1, ...).
    /// Errors name it.
    pub offset: i64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The key, `None` if null.
    pub key: Option<&'a [u8]>,
    /// The value, `None` if null.
    pub value: Option<&'a [u8]>,
    /// The headers, `(name, value)`, value `None` if null: the shape
    /// [`sluice_record::BatchBuilder::push`] takes.
    pub headers: &'a [(&'a [u8], Option<&'a [u8]>)],
}

/// A partitioner attached with its params (one per topic): a pool of initialised instances.
/// Cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct Partitioner {
    pool: Arc<Pool>,
}

impl std::fmt::Debug for Partitioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partitioner")
            .field("plugin", &self.pool.shared().info.name)
            .field("params", self.pool.params())
            .finish_non_exhaustive()
    }
}

impl Partitioner {
    pub(crate) fn new(pool: Arc<Pool>) -> Self {
        Partitioner { pool }
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
    pub fn instance(&self) -> Result<PartitionerInstance, PluginError> {
        Ok(PartitionerInstance {
            lease: self.pool.checkout()?,
        })
    }

    /// [`PartitionerInstance::route_batches`] on a pooled instance.
    pub fn route_batches(
        &self,
        batches: &[u8],
        partitions: u32,
        routes: &mut Vec<u32>,
    ) -> Result<(), PluginError> {
        self.instance()?.route_batches(batches, partitions, routes)
    }

    /// (idle, live) instances, for metrics.
    pub fn instance_counts(&self) -> (usize, usize) {
        self.pool.counts()
    }
}

/// One checked-out partitioner instance. Not `Clone`; returns to its pool on drop.
pub struct PartitionerInstance {
    lease: Lease,
}

impl PartitionerInstance {
    /// Routes every record of `batches` (concatenated RecordBatch v2) among `partitions`
    /// partitions; replaces the contents of `routes` with one partition per record, in order,
    /// each checked to be below `partitions`. Control batches get no answers.
    pub fn route_batches(
        &mut self,
        batches: &[u8],
        partitions: u32,
        routes: &mut Vec<u32>,
    ) -> Result<(), PluginError> {
        let mut routing = self.routing(partitions)?;
        let result = (|| {
            let mut walker = Batches::new(batches);
            loop {
                let position = walker.position();
                match walker.next() {
                    None => return Ok(()),
                    Some(Err(source)) => {
                        return Err(PluginError::InvalidBatch {
                            plugin: routing.plugin_name(),
                            position,
                            source,
                        });
                    }
                    Some(Ok(batch)) if batch.header().is_control() => {}
                    Some(Ok(batch)) => {
                        routing.lease.instance().push_batch(&batch, position)?;
                    }
                }
            }
        })();
        match result {
            Ok(()) => routing.finish(routes),
            Err(e) => Err(routing.fail(e)),
        }
    }

    /// Routes `records`; like [`route_batches`](Self::route_batches).
    pub fn route_records<'r>(
        &mut self,
        records: impl IntoIterator<Item = RecordInput<'r>>,
        partitions: u32,
        routes: &mut Vec<u32>,
    ) -> Result<(), PluginError> {
        let mut routing = self.routing(partitions)?;
        for record in records {
            routing.push(&record)?;
        }
        routing.finish(routes)
    }

    /// Starts routing records pushed one at a time, for a caller that builds each record's
    /// headers in a reused buffer. Records are written straight into the guest's memory; the
    /// guest runs when a chunk fills and at [`Routing::finish`].
    pub fn routing(&mut self, partitions: u32) -> Result<Routing<'_>, PluginError> {
        let instance = self.lease.instance();
        if partitions == 0 || partitions > i32::MAX as u32 {
            let e = PluginError::InvalidInput {
                plugin: instance.shared().info.name.clone(),
                reason: format!("cannot route among {partitions} partitions"),
            };
            return Err(e);
        }
        instance.reset(partitions);
        Ok(Routing {
            lease: &mut self.lease,
        })
    }
}

/// Records being routed; see [`PartitionerInstance::routing`].
#[must_use = "routes are only computed by `finish`"]
pub struct Routing<'i> {
    lease: &'i mut Lease,
}

impl Routing<'_> {
    /// Adds a record; runs the plugin over the records so far if the chunk is full.
    pub fn push(&mut self, record: &RecordInput<'_>) -> Result<(), PluginError> {
        let result = self.lease.instance().push_input(record);
        result.map_err(|e| self.fail(e))
    }

    /// Runs the plugin over the remaining records and replaces the contents of `routes` with
    /// one partition per record pushed.
    pub fn finish(self, routes: &mut Vec<u32>) -> Result<(), PluginError> {
        let instance = self.lease.instance();
        match instance.flush() {
            Ok(()) => {
                routes.clear();
                std::mem::swap(&mut instance.routes, routes);
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    fn plugin_name(&mut self) -> String {
        self.lease.instance().shared().info.name.clone()
    }

    fn fail(&self, e: PluginError) -> PluginError {
        self.lease.pool().shared().stats.record_error(&e);
        e
    }
}
