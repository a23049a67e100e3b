//! The plugin registry: uploaded WebAssembly modules, stored in `<data>/plugins/` and compiled
//! once (the compiled artifact is cached by hash in `<data>/plugins/cache/`).
//!
//! # On disk, format version 1
//!
//! `<data>/plugins/<name>.wasm` is the module as uploaded; `<name>.json` holds
//! `{"version": 1, "uploaded_ms": t}`. Both are written to a temporary name and renamed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sluice_protocol::{ErrorBody, ErrorCode, validate_topic_name};
use sluice_storage::now_ms;
use sluice_wasm::{Filter, HostConfig, Limits, Plugin, PluginHost};

/// A plugin as clients see it (the protocol's type: HTTP and WebSocket answer the same).
pub use sluice_protocol::types::PluginDescription;

#[derive(Serialize, Deserialize)]
struct Meta {
    version: u32,
    uploaded_ms: u64,
}

struct Entry {
    plugin: Plugin,
    uploaded_ms: u64,
}

/// Uploaded plugins.
pub(crate) struct Plugins {
    dir: PathBuf,
    host: PluginHost,
    map: RwLock<BTreeMap<String, Arc<Entry>>>,
}

fn invalid(message: impl Into<String>) -> ErrorBody {
    ErrorBody::new(ErrorCode::InvalidPlugin, message)
}

impl Plugins {
    /// Opens the registry and compiles every stored module (from the cache when possible).
    pub(crate) fn open(data_dir: &std::path::Path) -> Result<Plugins, ErrorBody> {
        let dir = data_dir.join("plugins");
        std::fs::create_dir_all(&dir).map_err(|e| {
            ErrorBody::new(
                ErrorCode::StorageError,
                format!("create {}: {e}", dir.display()),
            )
        })?;
        let host = PluginHost::new(HostConfig {
            cache_dir: Some(dir.join("cache")),
            ..HostConfig::default()
        })
        .map_err(|e| {
            ErrorBody::new(
                ErrorCode::Internal,
                format!("starting the plugin host: {e}"),
            )
        })?;
        let mut map = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let Some(name) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".wasm"))
                else {
                    continue;
                };
                let name = name.to_string();
                let loaded = std::fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|bytes| {
                        host.compile(&name, &bytes, Limits::default())
                            .map_err(|e| e.to_string())
                    });
                match loaded {
                    Ok(plugin) => {
                        let uploaded_ms = std::fs::read(dir.join(format!("{name}.json")))
                            .ok()
                            .and_then(|b| serde_json::from_slice::<Meta>(&b).ok())
                            .map_or(0, |m| m.uploaded_ms);
                        map.insert(
                            name,
                            Arc::new(Entry {
                                plugin,
                                uploaded_ms,
                            }),
                        );
                    }
                    Err(e) => {
                        tracing::error!(plugin = %name, error = %e, "a stored plugin does not load; skipping it")
                    }
                }
            }
        }
        tracing::info!(plugins = map.len(), "plugins loaded");
        Ok(Plugins {
            dir,
            host,
            map: RwLock::new(map),
        })
    }

    /// Validates, compiles and stores a module under `name` (replacing an earlier one).
    pub(crate) fn upload(&self, name: &str, bytes: &[u8]) -> Result<PluginDescription, ErrorBody> {
        validate_topic_name(name).map_err(|m| invalid(format!("plugin name: {m}")))?;
        let plugin = self
            .host
            .compile(name, bytes, Limits::default())
            .map_err(|e| invalid(format!("{e}")))?;
        let uploaded_ms = now_ms();
        let write = |file: String, data: &[u8]| -> std::io::Result<()> {
            let tmp = self.dir.join(format!("{file}.tmp"));
            std::fs::write(&tmp, data)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, self.dir.join(file))
        };
        let meta = serde_json::to_vec(&Meta {
            version: 1,
            uploaded_ms,
        })
        .expect("meta serializes");
        write(format!("{name}.json"), &meta)
            .and_then(|()| write(format!("{name}.wasm"), bytes))
            .map_err(|e| {
                ErrorBody::new(
                    ErrorCode::StorageError,
                    format!("storing plugin `{name}`: {e}"),
                )
            })?;
        let entry = Arc::new(Entry {
            plugin,
            uploaded_ms,
        });
        self.map.write().insert(name.to_string(), entry.clone());
        tracing::info!(plugin = name, kind = %entry.plugin.kind(), "plugin uploaded");
        Ok(describe(name, &entry))
    }

    pub(crate) fn list(&self) -> Vec<PluginDescription> {
        self.map
            .read()
            .iter()
            .map(|(n, e)| describe(n, e))
            .collect()
    }

    pub(crate) fn describe(&self, name: &str) -> Result<PluginDescription, ErrorBody> {
        let map = self.map.read();
        let e = map.get(name).ok_or_else(|| unknown(name))?;
        Ok(describe(name, e))
    }

    /// The stored module of plugin `name`, as uploaded.
    pub(crate) fn module_bytes(&self, name: &str) -> Option<Vec<u8>> {
        if !self.map.read().contains_key(name) {
            return None;
        }
        std::fs::read(self.dir.join(format!("{name}.wasm"))).ok()
    }

    pub(crate) fn delete(&self, name: &str) -> Result<(), ErrorBody> {
        self.map.write().remove(name).ok_or_else(|| unknown(name))?;
        for ext in ["wasm", "json"] {
            let _ = std::fs::remove_file(self.dir.join(format!("{name}.{ext}")));
        }
        Ok(())
    }

    /// A partitioner of plugin `name` with parameters.
    pub(crate) fn partitioner(
        &self,
        name: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<sluice_wasm::Partitioner, ErrorBody> {
        let plugin = self
            .map
            .read()
            .get(name)
            .map(|e| e.plugin.clone())
            .ok_or_else(|| unknown(name))?;
        plugin
            .partitioner(params)
            .map_err(|e| invalid(e.to_string()))
    }

    /// The sha256 of a plugin's module (to notice replacements).
    pub(crate) fn sha256(&self, name: &str) -> Option<[u8; 32]> {
        self.map.read().get(name).map(|e| e.plugin.info().sha256)
    }

    /// A filter of plugin `name` with parameters (one instance pool per call).
    pub(crate) fn filter(
        &self,
        name: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<Filter, ErrorBody> {
        let plugin = self
            .map
            .read()
            .get(name)
            .map(|e| e.plugin.clone())
            .ok_or_else(|| unknown(name))?;
        plugin.filter(params).map_err(|e| invalid(e.to_string()))
    }

    /// A map of plugin `name` with parameters (one instance pool per call).
    pub(crate) fn map_plugin(
        &self,
        name: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<sluice_wasm::Map, ErrorBody> {
        let plugin = self
            .map
            .read()
            .get(name)
            .map(|e| e.plugin.clone())
            .ok_or_else(|| unknown(name))?;
        plugin.map(params).map_err(|e| invalid(e.to_string()))
    }
}

/// sha256 of `bytes`, hex (as plugin descriptions give it).
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn unknown(name: &str) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::UnknownPlugin,
        format!(
            "plugin `{name}` does not exist; upload it first (PUT /v1/plugins/{name} or `sluice plugin upload {name} FILE`)"
        ),
    )
}

fn describe(name: &str, e: &Entry) -> PluginDescription {
    let info = e.plugin.info();
    let stats = e.plugin.stats();
    PluginDescription {
        name: name.to_string(),
        kind: info.kind.as_str().to_string(),
        abi_version: info.abi_version,
        size_bytes: info.size_bytes,
        sha256: info.sha256_hex(),
        uploaded_ms: e.uploaded_ms,
        calls: stats.calls,
        records: stats.records,
        errors: stats.errors,
        last_error: stats.last_error,
    }
}
