//! A compiled, validated plugin, and attaching it with params.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use wasmtime::InstancePre;

use crate::abi::{self, PluginKind};
use crate::error::PluginError;
use crate::filter::Filter;
use crate::host::HostInner;
use crate::instance::State;
use crate::limits::{Limits, MAX_PARAMS_BYTES};
use crate::map::Map;
use crate::partitioner::Partitioner;
use crate::pool::Pool;

/// What the registry shows about a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// The name it was uploaded under.
    pub name: String,
    /// Filter or partitioner, from its `sluice_kind` export.
    pub kind: PluginKind,
    /// From its `sluice_abi_version` export (always [`crate::ABI_VERSION`] once compiled).
    pub abi_version: i32,
    /// Bytes of the uploaded module.
    pub size_bytes: usize,
    /// sha256 of the uploaded module.
    pub sha256: [u8; 32],
    /// Whether the compiled artifact came from the cache rather than Cranelift.
    pub from_cache: bool,
}

impl PluginInfo {
    /// sha256 of the module, lower-case hex.
    pub fn sha256_hex(&self) -> String {
        crate::cache::hex(&self.sha256)
    }
}

/// Counters of one plugin, across all its attachments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginStats {
    /// Calls into `sluice_filter`/`sluice_partition`.
    pub calls: u64,
    /// Records handed to those calls.
    pub records: u64,
    /// Errors that were the plugin's fault (traps, timeouts, memory, bad answers).
    pub errors: u64,
    /// Of those, timeouts.
    pub timeouts: u64,
    /// The last such error, for a health report.
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    calls: AtomicU64,
    records: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Stats {
    pub fn record_call(&self, records: usize) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.records.fetch_add(records as u64, Ordering::Relaxed);
    }

    pub fn record_error(&self, e: &PluginError) {
        if !e.is_plugin_fault() {
            return;
        }
        self.errors.fetch_add(1, Ordering::Relaxed);
        if matches!(e, PluginError::Timeout { .. }) {
            self.timeouts.fetch_add(1, Ordering::Relaxed);
        }
        *self.last_error.lock() = Some(e.to_string());
    }

    fn snapshot(&self) -> PluginStats {
        PluginStats {
            calls: self.calls.load(Ordering::Relaxed),
            records: self.records.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            last_error: self.last_error.lock().clone(),
        }
    }
}

pub(crate) struct PluginShared {
    pub host: Arc<HostInner>,
    pub info: PluginInfo,
    pub limits: Limits,
    pub instance_pre: InstancePre<State>,
    /// Epoch ticks of one call's deadline: ceil(timeout / tick) + 1, so a call gets at least
    /// its timeout and at most one tick more.
    pub deadline_ticks: u64,
    pub stats: Stats,
}

impl PluginShared {
    pub fn new(
        host: Arc<HostInner>,
        info: PluginInfo,
        limits: Limits,
        instance_pre: InstancePre<State>,
    ) -> Self {
        let tick_ms = host.config.epoch_tick_ms.max(1);
        let deadline_ticks = limits.call_timeout_ms.div_ceil(tick_ms) + 1;
        PluginShared {
            host,
            info,
            limits,
            instance_pre,
            deadline_ticks,
            stats: Stats::default(),
        }
    }
}

/// A compiled plugin that passed upload validation. Cheap to clone.
///
/// Attach it with params to get a pool of initialised instances: [`Plugin::filter`] or
/// [`Plugin::partitioner`]. One plugin can be attached many times with different params
/// (one filter per subscription, for instance).
#[derive(Clone)]
pub struct Plugin {
    shared: Arc<PluginShared>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("info", &self.shared.info)
            .field("limits", &self.shared.limits)
            .finish_non_exhaustive()
    }
}

impl Plugin {
    pub(crate) fn new(shared: Arc<PluginShared>) -> Self {
        Plugin { shared }
    }

    /// Name, kind, ABI version, size and hash.
    pub fn info(&self) -> &PluginInfo {
        &self.shared.info
    }

    /// The plugin's kind.
    pub fn kind(&self) -> PluginKind {
        self.shared.info.kind
    }

    /// Its sandbox limits.
    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// Calls, records and errors so far.
    pub fn stats(&self) -> PluginStats {
        self.shared.stats.snapshot()
    }

    /// Attaches a filter with `params`: creates [`Limits::warm_instances`] instances and runs
    /// `sluice_init(params)` in each, so a plugin that refuses its params fails here, at
    /// subscribe time, not on the first fetch.
    pub fn filter(&self, params: &BTreeMap<String, String>) -> Result<Filter, PluginError> {
        Ok(Filter::new(self.attach(PluginKind::Filter, params)?))
    }

    /// Attaches a partitioner with `params`; like [`Plugin::filter`].
    pub fn partitioner(
        &self,
        params: &BTreeMap<String, String>,
    ) -> Result<Partitioner, PluginError> {
        Ok(Partitioner::new(
            self.attach(PluginKind::Partitioner, params)?,
        ))
    }

    /// Attaches a map with `params`; like [`Plugin::filter`].
    pub fn map(&self, params: &BTreeMap<String, String>) -> Result<Map, PluginError> {
        Ok(Map::new(self.attach(PluginKind::Map, params)?))
    }

    fn attach(
        &self,
        expected: PluginKind,
        params: &BTreeMap<String, String>,
    ) -> Result<Arc<Pool>, PluginError> {
        let info = &self.shared.info;
        if info.kind != expected {
            return Err(PluginError::WrongKind {
                plugin: info.name.clone(),
                expected,
                found: info.kind,
            });
        }
        let encoded = abi::encode_params(params);
        if encoded.len() > MAX_PARAMS_BYTES {
            return Err(PluginError::ParamsTooLarge {
                plugin: info.name.clone(),
                bytes: encoded.len(),
                limit_bytes: MAX_PARAMS_BYTES,
            });
        }
        Pool::new(self.shared.clone(), params.clone(), encoded)
    }
}
