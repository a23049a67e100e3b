//! `sluice-client`: the async Rust client of [Sluice](https://example.invalid/sluice), a
//! Kafka-style event streaming broker.
//!
//! It speaks the broker's WebSocket protocol (docs/PROTOCOL.md) with MessagePack binary
//! frames: one connection per [`Client`] carries every request, told apart by correlation id,
//! and records travel as encoded record batches both ways. It is the only implementation of
//! the client protocol in the project: the Python and Node packages wrap it.
//!
//! - [`Client`]: connects (`ws://host:port` or `http://host:port`), says hello, reconnects
//!   on its own with backoff.
//! - [`Admin`]: topics (create, list, describe, alter, delete, offsets), consumer groups
//!   (list, describe with lag per partition, reset offsets, delete) and plugins (upload a
//!   `.wasm` module, list, describe, delete).
//! - [`Producer`]: routes records on the client (explicit partition > murmur2 key, as Kafka >
//!   sticky partition per batch; the broker routes topics with a partitioner plugin),
//!   batches them per partition, keeps each partition's order,
//!   retries what can be retried. [`Producer::send`] returns a [`SendHandle`], a future of
//!   the record's [`RecordMetadata`].
//! - [`Consumer`]: a [`Stream`](futures_util::Stream) of [`Record`]s from broker
//!   subscriptions under credit-based flow control, with [`Consumer::seek`] and
//!   [`Consumer::position`]; it resumes where it was after a reconnect. It reads alone
//!   (broadcast) or as a consumer group member ([`ConsumerOptions::group`]), may run a filter
//!   plugin in the broker ([`ConsumerOptions::filter`]) and a map plugin that rewrites records
//!   ([`ConsumerOptions::map`]), and pauses and resumes partitions
//!   ([`Consumer::pause`]).
//! - [`Error`]: one typed error; [`Error::is_retriable`] says whether trying again may help.
//!
//! What it is not (yet): an idempotent or transactional producer, a TLS client, or a
//! cluster-aware client (it talks to one broker).
//!
//! # Example
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use sluice_client::{
//!     Client, ConsumerOptions, ErrorCode, NewTopic, ProducerOptions, ProducerRecord, StartFrom,
//! };
//!
//! # async fn run() -> sluice_client::Result<()> {
//! let client = Client::connect("http://127.0.0.1:9400").await?;
//!
//! match client.admin().create_topic(NewTopic::new("orders").partitions(3)).await {
//!     Ok(_) => {}
//!     Err(e) if e.code() == Some(ErrorCode::TopicExists) => {}
//!     Err(e) => return Err(e),
//! }
//!
//! let producer = client.producer(ProducerOptions::new());
//! let sent = producer
//!     .send(ProducerRecord::new("orders", "hello").with_key("user-1"))
//!     .await?;
//! let metadata = sent.await?;
//! println!("written to partition {} at offset {:?}", metadata.partition, metadata.offset);
//! producer.close().await?;
//!
//! let mut consumer = client
//!     .consumer(ConsumerOptions::new(["orders"]).start(StartFrom::Earliest))
//!     .await?;
//! if let Some(record) = consumer.next().await {
//!     let record = record?;
//!     println!("{:?} => {:?}", record.key, record.value);
//! }
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod admin;
mod client;
mod conn;
pub mod consumer;
mod error;
mod group;
pub mod producer;
mod record;

pub use admin::{Admin, NewTopic};
pub use bytes::Bytes;
pub use client::{Client, ClientOptions};
pub use consumer::{Consumer, ConsumerOptions};
pub use error::{Error, Result};
pub use group::{Assignor, OffsetReset, Rebalance};
pub use producer::{Producer, ProducerOptions, ROUTED_BY_BROKER, SendHandle};
pub use record::{Header, ProducerRecord, Record, RecordMetadata};
pub use sluice_protocol::ErrorCode;
/// Kafka's default partitioner (murmur2 of the key, modulo the partition count), as the
/// producer and the broker route keyed records.
pub use sluice_protocol::partitioner::partition_for_key;
pub use sluice_protocol::types::{
    Acks, AlterTopic, CommittedOffset, CreateTopic, GroupDescription, GroupSummary, HelloResponse,
    MemberDescription, PartitionInfo, PartitionLag, PartitionOffsets, PluginDescription, StartFrom,
    TopicDescription, TopicPartitions, TopicSummary,
};

#[cfg(test)]
mod tests {
    #[test]
    fn handles_can_move_between_tasks() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<crate::Client>();
        send_sync::<crate::Admin>();
        send_sync::<crate::Producer>();
        send_sync::<crate::SendHandle>();
        send_sync::<crate::Error>();
        send::<crate::Consumer>();
    }
}
