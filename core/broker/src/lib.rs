//! `sluice-broker`: the broker core — topics of partitions of logs, produce with Kafka-compatible
//! routing, long-polling fetch, offsets — independent of any transport.
//!
//! The HTTP/WebSocket server (`sluice-server`) and, later, a Kafka wire-protocol listener are
//! thin adapters over [`Broker`]: they decode requests into `sluice-protocol` types, call the
//! broker, and encode its answers. Errors are [`sluice_protocol::ErrorBody`] values: a stable
//! code and a message that says what to do.
//!
//! On disk, a broker's data directory holds `topics/<name>/topic.json` (partition count,
//! settings overrides; format version 1) and one `sluice-storage` log per partition in
//! `topics/<name>/<partition>/`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sluice_protocol::ErrorBody> {
//! use sluice_broker::{Broker, BrokerConfig};
//! use sluice_protocol::types::{Acks, CreateTopic, ProduceRecord};
//!
//! let broker = Broker::open(BrokerConfig::default())?;
//! broker.create_topic(CreateTopic { name: "orders".into(), partitions: 3, replication_factor: 1, configs: Default::default() }).await?;
//! let rec = ProduceRecord { key: Some("user-1".into()), value: Some("hello".into()), ..Default::default() };
//! let answer = broker.produce_records("orders", vec![rec], Acks::All).await?;
//! let fetched = broker.fetch("orders", answer.offsets[0].partition, 0, 1 << 20, 0).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod broker;
pub mod cluster;
pub mod group;
mod plugins;
pub mod replica;
mod topic;

pub use broker::{Broker, BrokerConfig, Fetched};
pub use group::{GroupConfig, OFFSETS_TOPIC};
pub use plugins::PluginDescription;
pub use sluice_wasm::{Filter, FilterSummary, Map};
pub use topic::{DEFAULT_MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES, Partition, Topic, TopicSettings};
