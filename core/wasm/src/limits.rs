//! The sandbox settings of one plugin, and the host-wide settings.

use std::path::PathBuf;

/// Encoded params (see [`crate::abi::encode_params`]) larger than this are refused at attach.
pub const MAX_PARAMS_BYTES: usize = 64 * 1024;

/// Sandbox limits of one plugin. Every field has a default; units are in the names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest module accepted at upload. Default 10 MiB.
    pub max_module_bytes: usize,
    /// Linear memory cap of one instance: `memory.grow` past it fails. Default 16 MiB.
    pub max_memory_bytes: usize,
    /// CPU deadline of one call into the plugin (its start, `sluice_init`, or one call over a
    /// chunk of records); enforced with epoch interruption, so precise to one host tick.
    /// Default 100 ms.
    pub call_timeout_ms: u64,
    /// Instances created (and initialised) when the plugin is attached. Default 1.
    pub warm_instances: usize,
    /// Most instances of one attachment; callers beyond it wait. Default 8.
    pub max_instances: usize,
    /// How long a caller waits for an instance when all `max_instances` are busy. Default 1000 ms.
    pub checkout_timeout_ms: u64,
    /// Bytes of records (in the ABI layout, plus the output) handed to one call; larger inputs
    /// are split into several calls. A single record larger than this goes alone. Default
    /// 64 KiB: large enough that the cost of a call is lost in it (hundreds of records), small
    /// enough that what the host writes is still in the CPU cache when the guest reads it.
    pub max_call_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_module_bytes: 10 * 1024 * 1024,
            max_memory_bytes: 16 * 1024 * 1024,
            call_timeout_ms: 100,
            warm_instances: 1,
            max_instances: 8,
            checkout_timeout_ms: 1000,
            max_call_bytes: 64 * 1024,
        }
    }
}

impl Limits {
    /// Checks that the limits make sense together.
    pub fn check(&self) -> Result<(), String> {
        // Sizes cross the ABI as i32.
        if self.max_memory_bytes < 64 * 1024 || self.max_memory_bytes > i32::MAX as usize {
            return Err(format!(
                "max_memory_bytes {} must be between 64 KiB and 2 GiB",
                self.max_memory_bytes
            ));
        }
        if self.max_call_bytes < 4096 || self.max_call_bytes > self.max_memory_bytes / 2 {
            return Err(format!(
                "max_call_bytes {} must be between 4 KiB and half of max_memory_bytes ({})",
                self.max_call_bytes, self.max_memory_bytes
            ));
        }
        if self.call_timeout_ms == 0 {
            return Err("call_timeout_ms must be at least 1".into());
        }
        if self.max_instances == 0 || self.warm_instances > self.max_instances {
            return Err(format!(
                "need 1 <= max_instances ({}) and warm_instances ({}) <= max_instances",
                self.max_instances, self.warm_instances
            ));
        }
        Ok(())
    }
}

/// Host-wide settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// Where compiled artifacts are cached, by the sha256 of the module; `None` disables the
    /// cache. Nothing but this host may write there (see [`crate::PluginHost`]).
    pub cache_dir: Option<PathBuf>,
    /// Period of the epoch ticker that enforces call deadlines; deadlines are precise to one
    /// tick. Default 5 ms.
    pub epoch_tick_ms: u64,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            cache_dir: None,
            epoch_tick_ms: 5,
        }
    }
}
