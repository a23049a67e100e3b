//! Write Sluice plugins in Rust: a function from a record to an answer, compiled to a
//! WebAssembly module the broker runs in its sandbox.
//!
//! What this crate is for: the guest side of Sluice's plugin ABI v1 (docs/plugin-abi.md).
//! [`filter`] and [`partitioner`] turn a plain function into the module's exports; the
//! generated code reads the host's record batch in place ([`Record`] borrows keys, values and
//! headers from it), calls your function once per record, and writes the answers back. You
//! never touch a pointer; one call from the host covers thousands of records.
//!
//! What it is not for: host-side code (that is `sluice-wasm`), WASI programs or components.
//! A crate holds one plugin: the attributes export fixed symbol names.
//!
//! # A filter
//!
//! ```standalone_crate
//! use sluice_plugin::{Params, Record};
//!
//! /// Keeps records whose key starts with the `prefix` param.
//! #[sluice_plugin::filter]
//! fn keep(record: &Record, params: &Params) -> bool {
//!     let prefix = params.get("prefix").unwrap_or_default().as_bytes();
//!     record.key().is_some_and(|k| k.starts_with(prefix))
//! }
//! # fn main() {
//! # let params = Params::from_pairs([("prefix", "eu-")]);
//! # assert!(keep(&Record::new(0, 0, Some(b"eu-1"), None), &params));
//! # }
//! ```
//!
//! # State built once from params
//!
//! Work that depends only on the params (compiling a pattern, parsing a threshold) belongs in
//! [`FromParams::from_params`], which runs once per instance at attach time; an error there
//! makes the attach fail with your message. The function then takes `&YourState`:
//!
//! ```standalone_crate
//! use sluice_plugin::{Error, FromParams, Params, Record};
//!
//! struct MinSize(usize);
//!
//! impl FromParams for MinSize {
//!     fn from_params(params: &Params) -> Result<Self, Error> {
//!         Ok(MinSize(params.parse("min_bytes")?.unwrap_or(1)))
//!     }
//! }
//!
//! #[sluice_plugin::filter]
//! fn keep(record: &Record, min: &MinSize) -> bool {
//!     record.value().is_some_and(|v| v.len() >= min.0)
//! }
//! # fn main() {}
//! ```
//!
//! # A partitioner
//!
//! ```standalone_crate
//! use sluice_plugin::Record;
//!
//! /// Routes by the first byte of the key.
//! #[sluice_plugin::partitioner]
//! fn route(record: &Record, partitions: u32) -> u32 {
//!     record.key().and_then(|k| k.first()).map_or(0, |&b| u32::from(b) % partitions)
//! }
//! # fn main() {}
//! ```
//!
//! A partitioner may take a third argument, `&State` as above. Its answer must be below
//! `partitions`; the broker refuses the request otherwise.
//!
//! # A map
//!
//! A map rewrites each record's key, value and headers for the consumer that attached it
//! (ABI version 2); the record keeps its offset and timestamp:
//!
//! ```standalone_crate
//! use sluice_plugin::{Mapped, Params, Record};
//!
//! /// Upper-cases values and says so in a header.
//! #[sluice_plugin::map]
//! fn shout(record: &Record, _params: &Params) -> Mapped {
//!     Mapped::from_record(record)
//!         .value(record.value().map(<[u8]>::to_ascii_uppercase))
//!         .header("mapped-by", Some(b"shout".to_vec()))
//! }
//! # fn main() {
//! # let out = shout(&Record::new(0, 0, None, Some(b"hi")), &Params::from_pairs([("a", "b")]));
//! # assert_eq!(out.value_bytes(), Some(&b"HI"[..]));
//! # }
//! ```
//!
//! Mistakes in the signature are compile errors:
//!
//! ```compile_fail
//! #[sluice_plugin::filter]
//! fn keep(record: &sluice_plugin::Record) -> bool { true } // no params argument
//! # fn main() {}
//! ```
//!
//! ```compile_fail
//! #[sluice_plugin::partitioner]
//! fn route(record: &sluice_plugin::Record, partitions: u32) -> bool { true } // not a u32
//! # fn main() {}
//! ```
//!
//! # Building
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//! ```
//!
//! then `cargo build --release --target wasm32-unknown-unknown` gives
//! `target/wasm32-unknown-unknown/release/<crate>.wasm`, ready to upload.
//!
//! # Failures
//!
//! A panic becomes a trap; the broker fails the request with the panic message, throws the
//! instance away and carries on. There is no clock, file system or network: the module
//! imports nothing.

mod mapped;
mod params;
pub mod record;
#[doc(hidden)]
pub mod rt;

#[cfg(feature = "json")]
pub mod json;

pub use mapped::Mapped;
pub use params::{FromParams, Params};
pub use record::{Headers, Record};
pub use sluice_plugin_macros::{filter, map, partitioner};

/// The ABI version filters and partitioners built with this SDK declare.
pub const ABI_VERSION: i32 = 1;
/// The ABI version maps declare: version 1 plus the `map` kind (docs/plugin-abi.md).
pub const ABI_VERSION_MAP: i32 = 2;

/// An error with a message for the person attaching or running the plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error { message }
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::new(message)
    }
}
