//! Sluice's WebAssembly plugin host: custom partitioners and consumer-side filters that users
//! upload and the broker runs, sandboxed, on its own threads.
//!
//! What this crate is for:
//!
//! - **Upload-time validation** ([`PluginHost::compile`]): size cap, WebAssembly magic, core
//!   module (not a component), no imports, the exports and types of ABI v1, the ABI version
//!   and kind the module reports. Each refusal is a [`CompileError`] naming the plugin and
//!   saying what to change.
//! - **Compiling once**: the compiled artifact is cached on disk by the module's sha256
//!   ([`HostConfig::cache_dir`]), so a broker restart does not run Cranelift again.
//! - **Pooled, initialised instances**: attaching a plugin with params ([`Plugin::filter`],
//!   [`Plugin::partitioner`]) instantiates it and runs `sluice_init(params)` once per
//!   instance; calls reuse those instances. Nothing is compiled or instantiated on the path
//!   of a healthy request.
//! - **One call per chunk of records**, never per record: the host writes the records of one
//!   or more RecordBatches straight into guest memory in the compact layout of
//!   `docs/plugin-abi.md` (one copy, no allocation per record) and reads back one answer per
//!   record.
//! - **A sandbox**: a memory limit per instance (a resource limiter), a CPU deadline per call
//!   (epoch interruption, ticked by a background thread), no imports at all (so no files,
//!   network or clock). A trap or a timeout fails that call with a [`PluginError`] naming the
//!   plugin and the records' offsets; the instance is thrown away and replaced, and every
//!   other caller carries on.
//!
//! What it is not for: storing uploaded modules (the broker's registry keeps the `.wasm`
//! files and gives them to [`PluginHost::compile`]), deciding which topic or subscription uses
//! which plugin, or running WASI programs or components.
//!
//! # Where the broker calls it
//!
//! | when | call | thread |
//! |------|------|--------|
//! | broker start | [`PluginHost::new`] with [`HostConfig::cache_dir`] in the data dir | any |
//! | upload (`PUT /v1/plugins/{name}`), and at start for each stored module | [`PluginHost::compile`] → [`Plugin`]; [`CompileError`] is the user's 400 | blocking (Cranelift) |
//! | describe | [`Plugin::info`], [`Plugin::stats`] | any |
//! | topic created or altered with a partitioner | [`Plugin::partitioner`] with the topic's params → keep the [`Partitioner`] | blocking (instantiates) |
//! | produce, records without an explicit partition | [`Partitioner::instance`], then [`PartitionerInstance::routing`] + [`Routing::push`] per record + [`Routing::finish`], or [`PartitionerInstance::route_batches`] | blocking |
//! | subscription with a filter | [`Plugin::filter`] with its params → keep the [`Filter`] | blocking (instantiates) |
//! | every fetch for it | [`Filter::filter_batches`] over the batches read from the log; send `out`, move the position to [`FilterSummary::next_offset`] even when `out` is empty | blocking |
//!
//! "Blocking" means: not on an async worker thread (`spawn_blocking`); a call may take up to
//! its deadline. Errors are [`PluginError`]s naming the plugin and the records' offsets; only
//! [`PluginError::Busy`] is worth retrying.
//!
//! # Why Wasmtime 48, with these features
//!
//! Wasmtime 48 is the newest release whose minimum Rust version (1.95) this workspace meets,
//! and the one the issue's numbers were measured with. Features: `cranelift` (compile to native
//! code; Winch or Pulley would be slower), `runtime`, `std`. Off: WASI and the component model
//! (ABI v1 is a core module with no imports), `gc`, `async` (calls are short and bounded;
//! the broker calls from a blocking thread), `cache` (our own cache keyed by module hash is
//! simpler to reason about), `wat` (modules arrive as binaries), `parallel-compilation` (no
//! rayon pool inside the broker), `pooling-allocator` (the default on-demand allocator with
//! reused instances is enough).
//!
//! # Example
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use sluice_wasm::{HostConfig, Limits, PluginHost};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let host = PluginHost::new(HostConfig::default())?;
//! let wasm = std::fs::read("keyword_filter.wasm")?;
//! let plugin = host.compile("errors-only", &wasm, Limits::default())?; // at upload
//! let params = BTreeMap::from([("keyword".to_string(), "ERROR".to_string())]);
//! let filter = plugin.filter(&params)?; // at subscribe
//!
//! # let fetched: Vec<u8> = Vec::new();
//! let mut kept = Vec::new(); // at each fetch: batches read from the log
//! let summary = filter.filter_batches(&fetched, &mut kept)?;
//! println!("kept {} of {} records", summary.kept, summary.records);
//! # Ok(())
//! # }
//! ```

pub mod abi;
mod cache;
mod error;
mod filter;
mod host;
mod instance;
mod limits;
mod map;
mod partitioner;
mod plugin;
mod pool;
mod scan;

pub use abi::{ABI_VERSION, ABI_VERSION_MAP, PluginKind};
pub use error::{CompileError, During, HostError, PluginError};
pub use filter::{Filter, FilterInstance, FilterSummary};
pub use host::PluginHost;
pub use instance::MAX_MAP_OUTPUT_BYTES;
pub use limits::{HostConfig, Limits, MAX_PARAMS_BYTES};
pub use map::{Map, MapInstance, MapSummary};
pub use partitioner::{Partitioner, PartitionerInstance, RecordInput, Routing};
pub use plugin::{Plugin, PluginInfo, PluginStats};
