//! The native half of the npm package `sluice-client`: Node-API bindings of the Rust SDK
//! (`sluice-client`), built with napi-rs.
//!
//! It is not a second client: every request goes through `sluice_client`, on napi's Tokio
//! runtime. This crate only turns JavaScript values into the SDK's types and back, and shapes
//! the calls so that crossing into Rust stays cheap:
//!
//! - records are sent in batches ([`producer::NativeProducer::send_batch`]) through one queue
//!   per producer, so their order is the order of the calls, and the outcomes come back as
//!   typed arrays rather than one object per record;
//! - consumers hand over up to `max` records per call ([`consumer::NativeConsumer::next_batch`]);
//!   a wait for records gives way to `seek`, `commit` and `close`.
//!
//! The JavaScript layer (`sdk-node/ts/index.ts`) builds the public API on these classes:
//! `Sluice.connect`, per-record `send` promises, async iteration, error classes.
//!
//! Errors cross as `Error`s whose message starts with `sluice:<kind>:<code>:<retriable>:`
//! (see [`error`]); the JavaScript layer turns them into `SluiceError` subclasses.

mod client;
mod consumer;
mod error;
mod producer;

pub use client::{NativeClient, connect};
pub use consumer::NativeConsumer;
pub use producer::NativeProducer;
