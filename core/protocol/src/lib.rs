//! `sluice-protocol`: the one definition of how clients talk to a Sluice broker.
//!
//! - [`types`]: request and response bodies (topics, produce, fetch, offsets, subscriptions),
//!   used as JSON by the HTTP API and inside WebSocket frames.
//! - [`frame`]: WebSocket frames — correlation ids, the `hello` handshake, JSON text frames and
//!   MessagePack binary frames from the same serde types.
//! - [`ErrorCode`] / [`ErrorBody`]: stable error codes with messages.
//! - [`partitioner`]: Kafka-compatible key routing (murmur2), shared by broker and clients.
//! - [`Payload`]: how keys and values look in JSON (text, `{"base64": ...}`, or any JSON value).
//!
//! It has no I/O and no async runtime: transports (the server, the SDKs) only move frames.
//! Record data on the binary path stays encoded record batches (`sluice-record`), never one
//! object per record. docs/PROTOCOL.md describes the wire format for client authors.
//!
//! ```
//! use sluice_protocol::frame::{ClientFrame, Request, from_json, to_json};
//!
//! let hello = ClientFrame { id: 1, request: Request::Hello { version: sluice_protocol::PROTOCOL_VERSION, client: None } };
//! let text = to_json(&hello);
//! assert_eq!(text, r#"{"id":1,"op":"hello","version":1}"#);
//! assert_eq!(from_json::<ClientFrame>(&text).unwrap(), hello);
//! ```

#![warn(missing_docs)]

mod data;
mod error;
pub mod frame;
pub mod partitioner;
pub mod types;

pub use data::{Payload, base64_bytes, base64_bytes_opt};
pub use error::{ErrorBody, ErrorCode};

/// The protocol version this crate speaks. A server answers `hello` with the version it will
/// use or `unsupported_version`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Topic name rules, as Kafka's: 1 to 249 characters of ASCII letters, digits, `.`, `_` and
/// `-`, and not `.` or `..`. Returns what is wrong.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name.len() > 249 {
        return Err(format!(
            "topic name is {} characters long; the limit is 249",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err("topic name cannot be `.` or `..`".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name contains {c:?}; use only ASCII letters, digits, `.`, `_` and `-`"
        ));
    }
    Ok(())
}

/// Whether a topic is internal (its name starts with `__`).
pub fn is_internal_topic(name: &str) -> bool {
    name.starts_with("__")
}
