//! The engine, its deadline ticker, and upload-time validation.

use std::sync::{Arc, Weak};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::{Config, Engine, ExternType, FuncType, Linker, Module, OptLevel, ValType};

use crate::abi::{self, PluginKind};
use crate::cache::ArtifactCache;
use crate::error::{CompileError, During, HostError};
use crate::instance::{Sandbox, State};
use crate::limits::{HostConfig, Limits};
use crate::plugin::{Plugin, PluginInfo, PluginShared};

/// The WebAssembly plugin host: one per broker.
///
/// Owns the Wasmtime engine (Cranelift, epoch interruption on, no WASI), a background thread
/// that advances the engine's epoch every [`HostConfig::epoch_tick_ms`] (that is what stops a
/// call past its deadline), and the compiled-artifact cache. Cheap to clone; the ticker thread
/// stops once the host and every plugin compiled by it are dropped.
#[derive(Clone)]
pub struct PluginHost {
    inner: Arc<HostInner>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

pub(crate) struct HostInner {
    pub engine: Engine,
    pub config: HostConfig,
    cache: Option<ArtifactCache>,
}

impl PluginHost {
    /// Starts a host: builds the engine, creates the cache directory, starts the ticker.
    pub fn new(config: HostConfig) -> Result<PluginHost, HostError> {
        let mut wasm = Config::new();
        wasm.epoch_interruption(true)
            .cranelift_opt_level(OptLevel::Speed)
            // 64-bit memories would escape the 32-bit ABI and the cheap bounds checks.
            .wasm_memory64(false);
        let engine = Engine::new(&wasm).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let cache = match &config.cache_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| HostError::CacheDir {
                    path: dir.clone(),
                    source,
                })?;
                Some(ArtifactCache::new(dir.clone()))
            }
            None => None,
        };
        let inner = Arc::new(HostInner {
            engine,
            config,
            cache,
        });
        let tick = Duration::from_millis(inner.config.epoch_tick_ms.max(1));
        let weak: Weak<HostInner> = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("sluice-wasm-epoch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(tick);
                    match weak.upgrade() {
                        Some(host) => host.engine.increment_epoch(),
                        None => return,
                    }
                }
            })
            .map_err(HostError::Thread)?;
        Ok(PluginHost { inner })
    }

    /// The host's settings.
    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    /// Validates and compiles an uploaded module (or loads its cached artifact).
    ///
    /// Checks, in order: the size cap; the `\0asm` magic and that it is a core module, not a
    /// component; that Wasmtime accepts it; that it imports nothing; the `sluice_abi_version`
    /// and `memory` exports, and its initial memory against the memory limit; then it
    /// instantiates it once (start function included, under the call deadline and memory
    /// limit) and asks its ABI version (must be [`abi::ABI_VERSION`]); then the other
    /// exports every plugin needs and their types; its kind; the exports of that kind.
    ///
    /// Compiling a large module takes a while (Cranelift, on the calling thread): call it off
    /// the async runtime's worker threads.
    pub fn compile(
        &self,
        name: &str,
        bytes: &[u8],
        limits: Limits,
    ) -> Result<Plugin, CompileError> {
        let name_s = || name.to_string();
        limits.check().map_err(|reason| CompileError::Limits {
            name: name_s(),
            reason,
        })?;
        if bytes.len() > limits.max_module_bytes {
            return Err(CompileError::TooLarge {
                name: name_s(),
                size_bytes: bytes.len(),
                limit_bytes: limits.max_module_bytes,
            });
        }
        match bytes.get(..8) {
            Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => {}
            Some([0, b'a', b's', b'm', _, _, 1, 0]) => {
                return Err(CompileError::Component { name: name_s() });
            }
            _ => return Err(CompileError::NotWasm { name: name_s() }),
        }
        let sha256: [u8; 32] = Sha256::digest(bytes).into();
        let engine = &self.inner.engine;
        let cached = self
            .inner
            .cache
            .as_ref()
            .and_then(|c| c.load(engine, &sha256));
        let from_cache = cached.is_some();
        let module = match cached {
            Some(module) => module,
            None => Module::from_binary(engine, bytes).map_err(|e| CompileError::Invalid {
                name: name_s(),
                reason: format!("{e:#}"),
            })?,
        };
        check_imports(name, &module)?;
        // Version and memory first: a module of another ABI version is named as such, not
        // as one missing this version's exports.
        check_present(
            name,
            &module,
            "plugin",
            &[abi::EXPORT_ABI_VERSION, abi::EXPORT_MEMORY],
        )?;
        check_func(name, &module, abi::EXPORT_ABI_VERSION, &[], SIG_NONE_I32)?;
        check_memory(name, &module, &limits)?;
        let instance_pre = Linker::<State>::new(engine)
            .instantiate_pre(&module)
            .map_err(|e| CompileError::Invalid {
                name: name_s(),
                reason: format!("{e:#}"),
            })?;

        let mut info = PluginInfo {
            name: name_s(),
            kind: PluginKind::Filter,
            abi_version: abi::ABI_VERSION,
            size_bytes: bytes.len(),
            sha256,
            from_cache,
        };
        let shared = Arc::new(PluginShared::new(
            self.inner.clone(),
            info.clone(),
            limits.clone(),
            instance_pre.clone(),
        ));
        // One trial instance: runs the start function and asks version and kind.
        let mut sandbox = Sandbox::new(&shared, During::Start).map_err(start_error)?;
        let version = sandbox
            .call_i32(abi::EXPORT_ABI_VERSION)
            .map_err(start_error)?;
        if !(abi::ABI_VERSION..=abi::ABI_VERSION_MAP).contains(&version) {
            return Err(CompileError::AbiVersion {
                name: name_s(),
                found: version,
                supported: abi::ABI_VERSION_MAP,
            });
        }
        check_common_exports(name, &module)?;
        let kind_code = sandbox.call_i32(abi::EXPORT_KIND).map_err(start_error)?;
        let kind = PluginKind::from_code(kind_code).ok_or(CompileError::UnknownKind {
            name: name_s(),
            found: kind_code,
        })?;
        if version < kind.min_abi_version() {
            return Err(CompileError::KindNeedsVersion {
                name: name_s(),
                kind,
                found: version,
                needed: kind.min_abi_version(),
            });
        }
        check_kind_exports(name, &module, kind)?;
        info.kind = kind;
        info.abi_version = version;
        // Only modules that passed every check are cached.
        if let (Some(cache), false) = (&self.inner.cache, from_cache) {
            cache.store(&sha256, &module);
        }
        Ok(Plugin::new(Arc::new(PluginShared::new(
            self.inner.clone(),
            info,
            limits,
            instance_pre,
        ))))
    }
}

fn start_error(e: crate::PluginError) -> CompileError {
    CompileError::Start(Box::new(e))
}

fn check_imports(name: &str, module: &Module) -> Result<(), CompileError> {
    let imports: Vec<String> = module
        .imports()
        .map(|i| format!("`{}::{}`", i.module(), i.name()))
        .collect();
    if imports.is_empty() {
        return Ok(());
    }
    Err(CompileError::Imports {
        name: name.to_string(),
        imports: imports.join(", "),
    })
}

const SIG_NONE_I32: &str = "a function () -> i32";
const SIG_ALLOC: &str = "a function (i32) -> i32";
const SIG_INIT: &str = "a function (i32, i32) -> i32";
const SIG_FILTER: &str = "a function (i32, i32, i32, i32) -> i32";
const SIG_PARTITION: &str = "a function (i32, i32, i32, i32, i32) -> i32";

/// Refuses the module if any of `exports` is absent.
fn check_present(
    name: &str,
    module: &Module,
    kind: &str,
    exports: &[&str],
) -> Result<(), CompileError> {
    let missing: Vec<&str> = exports
        .iter()
        .copied()
        .filter(|e| module.get_export(e).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(CompileError::MissingExports {
        name: name.to_string(),
        kind: kind.to_string(),
        missing: missing.join(", "),
    })
}

/// `memory`: 32-bit, unshared, initially within the memory limit.
fn check_memory(name: &str, module: &Module, limits: &Limits) -> Result<(), CompileError> {
    match module.get_export(abi::EXPORT_MEMORY) {
        Some(ExternType::Memory(memory)) => {
            if memory.is_64() || memory.is_shared() {
                return Err(CompileError::ExportType {
                    name: name.to_string(),
                    export: abi::EXPORT_MEMORY,
                    found: "a 64-bit or shared memory".into(),
                    expected: "a 32-bit, unshared memory",
                });
            }
            let needed_bytes = memory.minimum().saturating_mul(memory.page_size());
            if needed_bytes > limits.max_memory_bytes as u64 {
                return Err(CompileError::MemoryTooLarge {
                    name: name.to_string(),
                    needed_bytes,
                    limit_bytes: limits.max_memory_bytes,
                });
            }
            Ok(())
        }
        other => Err(CompileError::ExportType {
            name: name.to_string(),
            export: abi::EXPORT_MEMORY,
            found: describe(other.as_ref()),
            expected: "a memory",
        }),
    }
}

/// The other exports every kind needs (`sluice_kind`, `sluice_alloc`, `sluice_init`), and the
/// optional error exports' types.
fn check_common_exports(name: &str, module: &Module) -> Result<(), CompileError> {
    check_present(
        name,
        module,
        "plugin",
        &[abi::EXPORT_KIND, abi::EXPORT_ALLOC, abi::EXPORT_INIT],
    )?;
    check_func(name, module, abi::EXPORT_KIND, &[], SIG_NONE_I32)?;
    check_func(name, module, abi::EXPORT_ALLOC, &[ValType::I32], SIG_ALLOC)?;
    check_func(
        name,
        module,
        abi::EXPORT_INIT,
        &[ValType::I32, ValType::I32],
        SIG_INIT,
    )?;
    for optional in [abi::EXPORT_ERROR_PTR, abi::EXPORT_ERROR_LEN] {
        if module.get_export(optional).is_some() {
            check_func(name, module, optional, &[], SIG_NONE_I32)?;
        }
    }
    Ok(())
}

fn check_kind_exports(name: &str, module: &Module, kind: PluginKind) -> Result<(), CompileError> {
    let (export, params, sig) = match kind {
        PluginKind::Filter => (abi::EXPORT_FILTER, 4, SIG_FILTER),
        PluginKind::Partitioner => (abi::EXPORT_PARTITION, 5, SIG_PARTITION),
        PluginKind::Map => (abi::EXPORT_MAP, 4, SIG_FILTER),
    };
    check_present(name, module, kind.as_str(), &[export])?;
    let params: Vec<ValType> = (0..params).map(|_| ValType::I32).collect();
    check_func(name, module, export, &params, sig)
}

/// Checks that `export` is a function `(params) -> i32`.
fn check_func(
    name: &str,
    module: &Module,
    export: &'static str,
    params: &[ValType],
    expected: &'static str,
) -> Result<(), CompileError> {
    let ty = module.get_export(export);
    let ok = match &ty {
        Some(ExternType::Func(f)) => sig_is(f, params),
        _ => false,
    };
    if ok {
        return Ok(());
    }
    Err(CompileError::ExportType {
        name: name.to_string(),
        export,
        found: describe(ty.as_ref()),
        expected,
    })
}

fn sig_is(f: &FuncType, params: &[ValType]) -> bool {
    let results: Vec<ValType> = f.results().collect();
    f.params().len() == params.len()
        && f.params().zip(params).all(|(a, b)| a.matches(b))
        && results.len() == 1
        && results[0].matches(&ValType::I32)
}

fn describe(ty: Option<&ExternType>) -> String {
    match ty {
        None => "missing".into(),
        Some(ExternType::Func(f)) => {
            let list = |it: &mut dyn Iterator<Item = ValType>| {
                it.map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
            };
            format!(
                "a function ({}) -> ({})",
                list(&mut f.params()),
                list(&mut f.results())
            )
        }
        Some(ExternType::Memory(_)) => "a memory".into(),
        Some(ExternType::Table(_)) => "a table".into(),
        Some(ExternType::Global(_)) => "a global".into(),
        Some(_) => "something else".into(),
    }
}
