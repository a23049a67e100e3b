//! Errors: [`HostError`] when starting the host, [`CompileError`] when a module is uploaded,
//! [`PluginError`] when a plugin is attached or run.

use std::fmt;
use std::path::PathBuf;

use sluice_record::RecordError;

use crate::abi::PluginKind;

/// The host could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// Wasmtime refused the engine configuration.
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    /// The compiled-artifact cache directory could not be created.
    #[error("cannot create the plugin cache directory {path}: {source}")]
    CacheDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The epoch ticker thread could not be spawned.
    #[error("cannot start the plugin deadline thread: {0}")]
    Thread(std::io::Error),
}

/// A module was refused at upload. Every variant names the plugin and says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompileError {
    /// Over the module size cap.
    #[error("plugin `{name}` is {size_bytes} bytes, over the {limit_bytes}-byte module size limit")]
    TooLarge {
        /// The plugin.
        name: String,
        /// Size of the upload.
        size_bytes: usize,
        /// The cap.
        limit_bytes: usize,
    },
    /// The bytes do not start with the WebAssembly magic `\0asm`.
    #[error(
        "plugin `{name}` is not a WebAssembly module: a .wasm file starts with the bytes `\\0asm`"
    )]
    NotWasm {
        /// The plugin.
        name: String,
    },
    /// A WebAssembly component rather than a core module.
    #[error(
        "plugin `{name}` is a WebAssembly component; Sluice plugins are core modules (see docs/plugin-abi.md)"
    )]
    Component {
        /// The plugin.
        name: String,
    },
    /// Wasmtime rejected the module (malformed, invalid, or using a disabled proposal).
    #[error("plugin `{name}` is not a valid WebAssembly module: {reason}")]
    Invalid {
        /// The plugin.
        name: String,
        /// Wasmtime's explanation.
        reason: String,
    },
    /// The module imports something; ABI v1 modules import nothing.
    #[error(
        "plugin `{name}` imports {imports}; ABI v1 plugins must import nothing (no WASI, no host functions)"
    )]
    Imports {
        /// The plugin.
        name: String,
        /// The imports, as `module::name` separated by commas.
        imports: String,
    },
    /// Required exports are absent.
    #[error("plugin `{name}` lacks exports that ABI v1 requires of a {kind}: {missing}")]
    MissingExports {
        /// The plugin.
        name: String,
        /// `"plugin"` until the kind is known, else the kind.
        kind: String,
        /// The missing export names, separated by commas.
        missing: String,
    },
    /// An export has the wrong type.
    #[error("plugin `{name}`: export `{export}` is {found}; ABI v1 needs {expected}")]
    ExportType {
        /// The plugin.
        name: String,
        /// The export.
        export: &'static str,
        /// What the module has.
        found: String,
        /// What the ABI needs.
        expected: &'static str,
    },
    /// `sluice_abi_version` returned a version this host does not speak.
    #[error(
        "plugin `{name}` speaks plugin ABI version {found}; this broker speaks versions 1 to {supported}"
    )]
    AbiVersion {
        /// The plugin.
        name: String,
        /// What it returned.
        found: i32,
        /// The newest version the host speaks ([`crate::ABI_VERSION_MAP`]).
        supported: i32,
    },
    /// The kind needs a newer ABI version than the module declares (a map declaring 1).
    #[error(
        "plugin `{name}` is a {kind} but declares ABI version {found}; a {kind} needs version {needed}"
    )]
    KindNeedsVersion {
        /// The plugin.
        name: String,
        /// Its kind.
        kind: PluginKind,
        /// The version it declares.
        found: i32,
        /// The version the kind needs.
        needed: i32,
    },
    /// `sluice_kind` returned an unknown kind.
    #[error(
        "plugin `{name}` reports kind {found}; known kinds are 1 (filter), 2 (partitioner) and 3 (map)"
    )]
    UnknownKind {
        /// The plugin.
        name: String,
        /// What it returned.
        found: i32,
    },
    /// The module's initial memory is over the memory limit.
    #[error(
        "plugin `{name}` needs {needed_bytes} bytes of memory to start, over its {limit_bytes}-byte memory limit"
    )]
    MemoryTooLarge {
        /// The plugin.
        name: String,
        /// Its initial memory.
        needed_bytes: u64,
        /// The limit.
        limit_bytes: usize,
    },
    /// Instantiating it or calling `sluice_abi_version` / `sluice_kind` failed (a start
    /// function that traps or loops, for instance).
    #[error("{0}")]
    Start(Box<PluginError>),
    /// The [`crate::Limits`] given are inconsistent.
    #[error("plugin `{name}`: invalid limits: {reason}")]
    Limits {
        /// The plugin.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// Where in the plugin's life an error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum During {
    /// Instantiation (its start function, if any) or a call of `sluice_abi_version`/`sluice_kind`.
    Start,
    /// `sluice_init`, with the attachment's params.
    Init,
    /// `sluice_alloc`, getting a buffer to write records into.
    Alloc,
    /// A call over records; offsets are a partitioner's indexes in the request.
    Records {
        /// Offset of the first record of the call.
        first_offset: i64,
        /// Offset of the last record of the call.
        last_offset: i64,
    },
}

impl fmt::Display for During {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            During::Start => f.write_str("while starting"),
            During::Init => f.write_str("in sluice_init"),
            During::Alloc => f.write_str("in sluice_alloc"),
            During::Records {
                first_offset,
                last_offset,
            } if first_offset == last_offset => write!(f, "on the record at offset {first_offset}"),
            During::Records {
                first_offset,
                last_offset,
            } => write!(
                f,
                "on the records at offsets {first_offset}..={last_offset}"
            ),
        }
    }
}

/// Attaching or running a plugin failed. Only the request that ran it fails; the host, the
/// plugin's other instances and every other plugin carry on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// A call ran past its CPU deadline and was stopped.
    #[error("plugin `{plugin}` ran past its {timeout_ms} ms deadline {during} and was stopped")]
    Timeout {
        /// The plugin.
        plugin: String,
        /// The deadline.
        timeout_ms: u64,
        /// Where.
        during: During,
    },
    /// The guest trapped (`unreachable`, out-of-bounds access, a Rust panic, stack overflow...).
    #[error("plugin `{plugin}` crashed {during}: {trap}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Trap {
        /// The plugin.
        plugin: String,
        /// Where.
        during: During,
        /// Wasmtime's description of the trap.
        trap: String,
        /// The guest's own message (a panic message from the Rust SDK), if it left one.
        message: Option<String>,
    },
    /// The guest asked for more memory than its limit and then failed.
    #[error(
        "plugin `{plugin}` failed {during} after asking for {requested_bytes} bytes of memory, over its {limit_bytes}-byte limit"
    )]
    MemoryLimit {
        /// The plugin.
        plugin: String,
        /// Where.
        during: During,
        /// The memory size it asked to grow to.
        requested_bytes: usize,
        /// The limit.
        limit_bytes: usize,
    },
    /// The guest returned a non-zero status.
    #[error("plugin `{plugin}` reported failure {code} {during}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Failed {
        /// The plugin.
        plugin: String,
        /// Where.
        during: During,
        /// The status it returned.
        code: i32,
        /// Its message, if it left one (`sluice_error_ptr`/`sluice_error_len`).
        message: Option<String>,
    },
    /// A filter answered something other than 0 or 1 for a record.
    #[error(
        "plugin `{plugin}` answered {value} for the record at offset {offset}; a filter answers 1 (keep) or 0 (drop)"
    )]
    BadFilterAnswer {
        /// The plugin.
        plugin: String,
        /// The record.
        offset: i64,
        /// The answer.
        value: u8,
    },
    /// A partitioner answered a partition that does not exist.
    #[error(
        "plugin `{plugin}` routed the record at offset {offset} to partition {partition}, but the topic has {partitions} partitions"
    )]
    PartitionOutOfRange {
        /// The plugin.
        plugin: String,
        /// The record (its index in the request for produce).
        offset: i64,
        /// The answer.
        partition: u32,
        /// The topic's partition count.
        partitions: u32,
    },
    /// A map's output is not what the ABI says: a pointer outside its memory, entries that do
    /// not parse, more or fewer entries than records, an offset changed, or too much output.
    #[error(
        "plugin `{plugin}` answered a bad map output for the records at offsets {first_offset}..={last_offset}: {reason}"
    )]
    BadMapAnswer {
        /// The plugin.
        plugin: String,
        /// First record of the call.
        first_offset: i64,
        /// Last record of the call.
        last_offset: i64,
        /// What is wrong.
        reason: String,
    },
    /// `sluice_alloc` answered a buffer that is not inside the guest's memory.
    #[error(
        "plugin `{plugin}`: sluice_alloc({size}) returned {ptr}, not a buffer inside its memory"
    )]
    BadBuffer {
        /// The plugin.
        plugin: String,
        /// The size asked for.
        size: usize,
        /// The pointer returned.
        ptr: i32,
    },
    /// Every instance is busy and none freed up in time.
    #[error(
        "plugin `{plugin}` is busy: all {max_instances} instances in use for {waited_ms} ms; retry"
    )]
    Busy {
        /// The plugin.
        plugin: String,
        /// The pool's cap.
        max_instances: usize,
        /// How long the caller waited.
        waited_ms: u64,
    },
    /// The plugin is not of the kind asked for.
    #[error("plugin `{plugin}` is a {found}, not a {expected}")]
    WrongKind {
        /// The plugin.
        plugin: String,
        /// The kind the caller needs.
        expected: PluginKind,
        /// The plugin's kind.
        found: PluginKind,
    },
    /// Attach-time params are over the limits.
    #[error(
        "plugin `{plugin}`: params are {bytes} bytes encoded, over the {limit_bytes}-byte limit"
    )]
    ParamsTooLarge {
        /// The plugin.
        plugin: String,
        /// Their encoded size.
        bytes: usize,
        /// [`crate::MAX_PARAMS_BYTES`].
        limit_bytes: usize,
    },
    /// The input is not well-formed record batches (or is compressed).
    #[error("plugin `{plugin}`: cannot read the batch at byte {position} of the input: {source}")]
    InvalidBatch {
        /// The plugin.
        plugin: String,
        /// Byte offset of the batch in the input.
        position: usize,
        /// Why.
        source: RecordError,
    },
    /// A partition count of zero or above `i32::MAX`, or a record field longer than `i32::MAX`.
    #[error("plugin `{plugin}`: invalid input: {reason}")]
    InvalidInput {
        /// The plugin.
        plugin: String,
        /// What is wrong.
        reason: String,
    },
    /// Wasmtime failed for a reason other than the guest's behaviour.
    #[error("plugin `{plugin}` failed {during}: {reason}")]
    Engine {
        /// The plugin.
        plugin: String,
        /// Where.
        during: During,
        /// Wasmtime's message.
        reason: String,
    },
}

impl PluginError {
    /// The plugin the error is about.
    pub fn plugin(&self) -> &str {
        match self {
            PluginError::Timeout { plugin, .. }
            | PluginError::Trap { plugin, .. }
            | PluginError::MemoryLimit { plugin, .. }
            | PluginError::Failed { plugin, .. }
            | PluginError::BadFilterAnswer { plugin, .. }
            | PluginError::BadMapAnswer { plugin, .. }
            | PluginError::PartitionOutOfRange { plugin, .. }
            | PluginError::BadBuffer { plugin, .. }
            | PluginError::Busy { plugin, .. }
            | PluginError::WrongKind { plugin, .. }
            | PluginError::ParamsTooLarge { plugin, .. }
            | PluginError::InvalidBatch { plugin, .. }
            | PluginError::InvalidInput { plugin, .. }
            | PluginError::Engine { plugin, .. } => plugin,
        }
    }

    /// Whether the error is the plugin's fault (as opposed to the caller's input or load):
    /// what a health report counts.
    pub fn is_plugin_fault(&self) -> bool {
        !matches!(
            self,
            PluginError::Busy { .. }
                | PluginError::WrongKind { .. }
                | PluginError::ParamsTooLarge { .. }
                | PluginError::InvalidBatch { .. }
                | PluginError::InvalidInput { .. }
        )
    }
}
