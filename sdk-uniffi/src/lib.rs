//! `sluice-ffi`: the Rust client of Sluice ([`sluice_client`]) exported through UniFFI's
//! proc-macros, for Swift (iOS/macOS), Kotlin (Android/JVM) and, for the tests here, Python.
//!
//! Nothing in this crate speaks the protocol: every object wraps a `sluice-client` one.
//!
//! - [`SluiceClient`]: `connect(url)` (async constructor), then `admin()`, `producer(options)`,
//!   `consumer(options)` and `close()`.
//! - [`SluiceProducer`]: `send` and `send_batch` (a list of records in one call), answering
//!   where each record went (partition and offset); `flush`, `close`.
//! - [`SluiceConsumer`]: group or broadcast, `poll_batch(max, timeout_ms)` answering a list of
//!   records, `commit`, `commit_offsets`, `seek`, `position`, `assignment`, `close`; an
//!   uploaded filter plugin with parameters runs in the broker.
//! - [`SluiceAdmin`]: topics, consumer groups and plugins.
//! - [`SluiceError`]: the one error, thrown as an exception; broker errors carry the stable
//!   code (`unknown_topic`, ...).
//!
//! Async functions stay async in the foreign language (Swift `async`, Kotlin `suspend`,
//! Python coroutines): UniFFI polls each one from the foreign executor, and the work runs on
//! a Tokio runtime this crate owns (two worker threads for the process, started by the first
//! call), where the SDK's connection, producer and consumer tasks live. Cancelling a call
//! aborts its work. An object the foreign side drops (garbage collected, `deinit`, Kotlin's
//! `close()`/`use {}`, Python's `del`) closes what it owns; the connection closes when the
//! last object using it is gone, or at once with `SluiceClient.close()`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sluice_client as sdk;
use tokio::runtime::Runtime;
use tokio::sync::{Mutex, OwnedMutexGuard};
use tokio::task::JoinHandle;

uniffi::setup_scaffolding!();

/// Most records one `send_batch` accepts, and most one `poll_batch` answers.
pub const MAX_BATCH_RECORDS: u32 = 100_000;
/// Longest wait one `poll_batch` may ask for: an hour.
pub const MAX_POLL_TIMEOUT_MS: u64 = 3_600_000;

// ---------------------------------------------------------------------------------------------
// Errors

/// Every error of the bindings. Match on the variant and, for `Broker`, on `code`, never on
/// the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum SluiceError {
    /// The broker answered with an error: `code` is its stable code (`unknown_topic`,
    /// `record_too_large`, `unknown_plugin`, ... see docs/PROTOCOL.md), `reason` the text.
    #[error("broker error {code}: {reason}")]
    Broker {
        /// The broker's stable error code.
        code: String,
        /// What happened, for humans.
        reason: String,
    },
    /// No connection could be made, or it was lost while the request was in flight.
    #[error("connection error: {reason}")]
    Connection {
        /// What happened.
        reason: String,
    },
    /// No answer came in time.
    #[error("timed out: {reason}")]
    Timeout {
        /// What happened.
        reason: String,
    },
    /// The broker sent something this client does not understand.
    #[error("protocol error: {reason}")]
    Protocol {
        /// What happened.
        reason: String,
    },
    /// The client, producer or consumer was closed.
    #[error("closed")]
    Closed,
    /// The caller asked for something impossible (a bad URL, an empty topic, a batch too
    /// large, a partition the topic does not have).
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What was wrong.
        reason: String,
    },
}

impl SluiceError {
    /// The stable code of this error: the broker's for `Broker`, else the variant's
    /// (`connection`, `timeout`, `protocol`, `closed`, `invalid_input`).
    pub fn code(&self) -> &str {
        match self {
            SluiceError::Broker { code, .. } => code,
            SluiceError::Connection { .. } => "connection",
            SluiceError::Timeout { .. } => "timeout",
            SluiceError::Protocol { .. } => "protocol",
            SluiceError::Closed => "closed",
            SluiceError::InvalidInput { .. } => "invalid_input",
        }
    }
}

impl From<sdk::Error> for SluiceError {
    fn from(e: sdk::Error) -> Self {
        match e {
            sdk::Error::Broker { code, message } => SluiceError::Broker {
                code: code.as_str().to_string(),
                reason: message,
            },
            sdk::Error::Connection(reason) => SluiceError::Connection { reason },
            sdk::Error::Timeout(reason) => SluiceError::Timeout { reason },
            sdk::Error::Protocol(reason) => SluiceError::Protocol { reason },
            sdk::Error::Closed => SluiceError::Closed,
            sdk::Error::InvalidInput(reason) => SluiceError::InvalidInput { reason },
            // `sdk::Error` is non-exhaustive: a variant added later reads as a protocol error
            // until it gets its own.
            other => SluiceError::Protocol {
                reason: other.to_string(),
            },
        }
    }
}

type Result<T, E = SluiceError> = std::result::Result<T, E>;

fn invalid(reason: impl Into<String>) -> SluiceError {
    SluiceError::InvalidInput {
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Records

/// One record header; names may repeat and order is kept.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Header {
    /// The name.
    pub key: String,
    /// The value; `None` for a null value.
    #[uniffi(default = None)]
    pub value: Option<Vec<u8>>,
}

/// A record to produce. Routing: an explicit `partition` wins, else the `key` (murmur2, as
/// Kafka), else one partition per batch, moving round-robin.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ProducerRecord {
    /// The topic.
    pub topic: String,
    /// The value; `None` for a null value (a tombstone in a compacted topic).
    pub value: Option<Vec<u8>>,
    /// The key; `None` for no key.
    #[uniffi(default = None)]
    pub key: Option<Vec<u8>>,
    /// Headers, in order.
    #[uniffi(default)]
    pub headers: Vec<Header>,
    /// An explicit partition.
    #[uniffi(default = None)]
    pub partition: Option<u32>,
    /// The timestamp in ms since the Unix epoch; `None`: the time of sending.
    #[uniffi(default = None)]
    pub timestamp_ms: Option<i64>,
}

impl From<ProducerRecord> for sdk::ProducerRecord {
    fn from(r: ProducerRecord) -> Self {
        sdk::ProducerRecord {
            topic: r.topic,
            key: r.key.map(Into::into),
            value: r.value.map(Into::into),
            headers: r
                .headers
                .into_iter()
                .map(|h| sdk::Header {
                    key: h.key,
                    value: h.value.map(Into::into),
                })
                .collect(),
            partition: r.partition,
            timestamp: r.timestamp_ms,
        }
    }
}

/// Where a produced record went.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RecordMetadata {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The offset; `None` with `acks = zero`, where the broker does not say.
    pub offset: Option<u64>,
    /// The record's timestamp (ms), as sent.
    pub timestamp_ms: i64,
}

impl From<sdk::RecordMetadata> for RecordMetadata {
    fn from(m: sdk::RecordMetadata) -> Self {
        RecordMetadata {
            topic: m.topic.to_string(),
            partition: m.partition,
            offset: m.offset,
            timestamp_ms: m.timestamp,
        }
    }
}

/// A consumed record.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ConsumedRecord {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The offset in the partition.
    pub offset: u64,
    /// The timestamp, ms since the Unix epoch.
    pub timestamp_ms: i64,
    /// The key; `None` if null.
    pub key: Option<Vec<u8>>,
    /// The value; `None` if null.
    pub value: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<Header>,
}

impl From<sdk::Record> for ConsumedRecord {
    fn from(r: sdk::Record) -> Self {
        ConsumedRecord {
            topic: r.topic.to_string(),
            partition: r.partition,
            offset: r.offset,
            timestamp_ms: r.timestamp,
            key: r.key.map(|b| b.to_vec()),
            value: r.value.map(|b| b.to_vec()),
            headers: r
                .headers
                .into_iter()
                .map(|h| Header {
                    key: h.key,
                    value: h.value.map(|b| b.to_vec()),
                })
                .collect(),
        }
    }
}

/// What one `send_values` call wrote to one partition.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PartitionAppend {
    /// The partition.
    pub partition: u32,
    /// How many of the values went there.
    pub records: u64,
    /// The lowest and highest offset they got; `None` with `acks = zero`.
    pub first_offset: Option<u64>,
    /// See `first_offset`.
    pub last_offset: Option<u64>,
}

/// Where the values of one `send_values` call went, per partition (ascending).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SendSummary {
    /// The topic.
    pub topic: String,
    /// One entry per partition written to.
    pub partitions: Vec<PartitionAppend>,
}

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
}

/// An offset to commit: the next record to read in a partition.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TopicPartitionOffset {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The offset of the next record to read.
    pub offset: u64,
}

// ---------------------------------------------------------------------------------------------
// Options

/// Connection settings; `None` keeps the SDK's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct ClientOptions {
    /// How long a request may wait for its answer (default 30 s).
    #[uniffi(default = None)]
    pub request_timeout_ms: Option<u64>,
    /// How long connecting may take (default 10 s).
    #[uniffi(default = None)]
    pub connect_timeout_ms: Option<u64>,
    /// The name the client gives the broker in `hello`.
    #[uniffi(default = None)]
    pub client_name: Option<String>,
}

/// Which acknowledgement a produce request waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum AckLevel {
    /// None: the broker does not answer (offsets are unknown).
    Zero,
    /// The leader's write.
    Leader,
    /// Every in-sync replica (the default).
    All,
}

/// Producer settings; `None` keeps the SDK's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct ProducerOptions {
    /// Acknowledgements (default all).
    #[uniffi(default = None)]
    pub acks: Option<AckLevel>,
    /// How long a batch may wait for more records (default 5 ms).
    #[uniffi(default = None)]
    pub linger_ms: Option<u64>,
    /// Largest batch per partition, in bytes.
    #[uniffi(default = None)]
    pub batch_bytes: Option<u64>,
    /// Most bytes buffered before `send` waits.
    #[uniffi(default = None)]
    pub buffer_bytes: Option<u64>,
    /// How long a record may take to be acknowledged, retries included.
    #[uniffi(default = None)]
    pub delivery_timeout_ms: Option<u64>,
}

/// Where a consumer without a committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum StartPosition {
    /// The first record kept.
    Earliest,
    /// Only records produced from now on (the default).
    Latest,
    /// This offset in every partition (broadcast mode).
    Offset {
        /// The offset.
        offset: u64,
    },
    /// The first record at or after this time (ms since the Unix epoch; broadcast mode).
    Timestamp {
        /// The time.
        timestamp_ms: i64,
    },
}

/// A filter plugin the broker runs on the consumer's records.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FilterOptions {
    /// The uploaded plugin's name.
    pub plugin: String,
    /// Passed once to the plugin's `init`.
    #[uniffi(default)]
    pub params: HashMap<String, String>,
}

/// Consumer settings. With `group`, the consumer is a member of that consumer group (the
/// broker assigns partitions; `start` applies where the group has no committed offset);
/// without, it reads every partition alone (broadcast).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ConsumerOptions {
    /// The topics.
    pub topics: Vec<String>,
    /// The consumer group; `None`: broadcast.
    #[uniffi(default = None)]
    pub group: Option<String>,
    /// Where to start (default latest).
    #[uniffi(default = None)]
    pub start: Option<StartPosition>,
    /// Only these partitions (broadcast mode).
    #[uniffi(default = None)]
    pub partitions: Option<Vec<u32>>,
    /// A filter plugin run in the broker.
    #[uniffi(default = None)]
    pub filter: Option<FilterOptions>,
    /// Whether a group member commits its positions on its own (default true).
    #[uniffi(default = true)]
    pub auto_commit: bool,
    /// How often it does (default 5 s).
    #[uniffi(default = None)]
    pub auto_commit_interval_ms: Option<u64>,
    /// A static member id (group mode).
    #[uniffi(default = None)]
    pub instance_id: Option<String>,
    /// The group session timeout.
    #[uniffi(default = None)]
    pub session_timeout_ms: Option<u64>,
    /// Credit window per topic, in bytes (default 8 MiB).
    #[uniffi(default = None)]
    pub credit_bytes: Option<u64>,
}

impl ConsumerOptions {
    fn to_sdk(&self) -> Result<sdk::ConsumerOptions> {
        if self.topics.is_empty() {
            return Err(invalid("a consumer needs at least one topic"));
        }
        let mut o = sdk::ConsumerOptions::new(self.topics.iter().cloned());
        if let Some(group) = &self.group {
            o = o.group(group.clone());
            // A group member with no committed offset starts where `start` says.
            o = o.auto_offset_reset(match self.start {
                Some(StartPosition::Earliest) => sdk::OffsetReset::Earliest,
                None | Some(StartPosition::Latest) => sdk::OffsetReset::Latest,
                Some(StartPosition::Offset { .. } | StartPosition::Timestamp { .. }) => {
                    return Err(invalid(
                        "a group member starts from the earliest or latest offset only",
                    ));
                }
            });
        } else if let Some(start) = self.start {
            o = o.start(match start {
                StartPosition::Earliest => sdk::StartFrom::Earliest,
                StartPosition::Latest => sdk::StartFrom::Latest,
                StartPosition::Offset { offset } => sdk::StartFrom::Offset(offset),
                StartPosition::Timestamp { timestamp_ms } => {
                    sdk::StartFrom::Timestamp(timestamp_ms)
                }
            });
        }
        if let Some(partitions) = &self.partitions {
            o = o.partitions(partitions.clone());
        }
        if let Some(filter) = &self.filter {
            o = o.filter(filter.plugin.clone(), filter.params.clone());
        }
        o = o.auto_commit_interval_ms(if self.auto_commit {
            Some(self.auto_commit_interval_ms.unwrap_or(5000))
        } else {
            None
        });
        if let Some(id) = &self.instance_id {
            o = o.instance_id(id.clone());
        }
        if let Some(ms) = self.session_timeout_ms {
            o = o.session_timeout_ms(ms);
        }
        if let Some(bytes) = self.credit_bytes {
            o = o.credit_bytes(bytes);
        }
        Ok(o)
    }
}

fn usize_of(name: &str, v: u64) -> Result<usize> {
    usize::try_from(v).map_err(|_| invalid(format!("{name} {v} is too large")))
}

impl ProducerOptions {
    fn to_sdk(&self) -> Result<sdk::ProducerOptions> {
        let mut o = sdk::ProducerOptions::new();
        if let Some(acks) = self.acks {
            o = o.acks(match acks {
                AckLevel::Zero => sdk::Acks::None,
                AckLevel::Leader => sdk::Acks::Leader,
                AckLevel::All => sdk::Acks::All,
            });
        }
        if let Some(ms) = self.linger_ms {
            o = o.linger_ms(ms);
        }
        if let Some(b) = self.batch_bytes {
            o = o.batch_bytes(usize_of("batch_bytes", b)?);
        }
        if let Some(b) = self.buffer_bytes {
            o = o.buffer_bytes(usize_of("buffer_bytes", b)?);
        }
        if let Some(ms) = self.delivery_timeout_ms {
            o = o.delivery_timeout_ms(ms);
        }
        Ok(o)
    }
}

// ---------------------------------------------------------------------------------------------
// The runtime

/// The Tokio runtime every exported future runs on: two worker threads for the whole process,
/// started by the first call, shared by every client (the SDK's connection, producer and
/// consumer tasks live there too).
fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sluice-ffi")
            .enable_all()
            .build()
            .expect("start the sluice-ffi Tokio runtime")
    })
}

/// Runs `fut` on [`runtime`] and waits for it from whatever executor polls the returned future
/// (Swift's tasks, Kotlin's coroutines, Python's asyncio, a Rust test's runtime). Dropping the
/// wait (a cancelled coroutine or task) aborts the work.
async fn spawned<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    struct AbortOnDrop<T>(JoinHandle<T>);
    impl<T> Drop for AbortOnDrop<T> {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let mut task = AbortOnDrop(runtime().spawn(fut));
    match (&mut task.0).await {
        Ok(v) => v,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Only `abort` cancels the task, and only once nobody waits for it.
            Err(e) => unreachable!("the task was cancelled while awaited: {e}"),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Client

/// A connection to one broker. Connect with `SluiceClient.connect(url)`; it reconnects on its
/// own. `close()` closes the connection for every object made from it; dropping the last
/// object made from it closes it too.
#[derive(uniffi::Object)]
pub struct SluiceClient {
    client: sdk::Client,
}

impl std::fmt::Debug for SluiceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SluiceClient")
            .field("url", &self.client.url())
            .finish_non_exhaustive()
    }
}

#[uniffi::export]
impl SluiceClient {
    /// Connects with default options. `url` is `http://host:port`, `ws://host:port` or
    /// `host:port`.
    #[uniffi::constructor]
    pub async fn connect(url: String) -> Result<Arc<SluiceClient>> {
        Self::connect_with(url, ClientOptions::default()).await
    }

    /// Connects with `options`.
    #[uniffi::constructor]
    pub async fn connect_with(url: String, options: ClientOptions) -> Result<Arc<SluiceClient>> {
        let mut o = sdk::ClientOptions::new();
        if let Some(ms) = options.request_timeout_ms {
            o = o.request_timeout_ms(ms);
        }
        if let Some(ms) = options.connect_timeout_ms {
            o = o.connect_timeout_ms(ms);
        }
        if let Some(name) = options.client_name {
            o = o.client_name(name);
        }
        let client = spawned(async move { sdk::Client::connect_with(&url, o).await }).await?;
        Ok(Arc::new(SluiceClient { client }))
    }

    /// The WebSocket URL in use.
    pub fn url(&self) -> String {
        self.client.url().to_string()
    }

    /// Topic, group and plugin administration.
    pub fn admin(&self) -> Arc<SluiceAdmin> {
        Arc::new(SluiceAdmin {
            admin: self.client.admin(),
        })
    }

    /// A batching producer.
    pub fn producer(&self, options: ProducerOptions) -> Result<Arc<SluiceProducer>> {
        let options = options.to_sdk()?;
        // The producer's background task is spawned on the runtime.
        let _entered = runtime().enter();
        Ok(Arc::new(SluiceProducer {
            producer: self.client.producer(options),
        }))
    }

    /// A consumer, subscribed before this returns (an unknown topic, or in broadcast mode an
    /// unknown filter plugin, fails here).
    pub async fn consumer(&self, options: ConsumerOptions) -> Result<Arc<SluiceConsumer>> {
        let options = options.to_sdk()?;
        let client = self.client.clone();
        let consumer = spawned(async move { client.consumer(options).await }).await?;
        Ok(Arc::new(SluiceConsumer {
            consumer: Arc::new(Mutex::new(Some(consumer))),
        }))
    }

    /// Closes the connection for every object made from this client: their requests fail
    /// with `Closed`. Close producers first so that what they buffer is sent.
    pub fn close(&self) {
        self.client.close();
    }
}

// ---------------------------------------------------------------------------------------------
// Producer

/// Batches records per partition and sends them in the background. `close()` sends what is
/// buffered and stops it; dropping it stops it too.
#[derive(uniffi::Object)]
pub struct SluiceProducer {
    producer: sdk::Producer,
}

impl std::fmt::Debug for SluiceProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SluiceProducer").finish_non_exhaustive()
    }
}

#[uniffi::export]
impl SluiceProducer {
    /// Sends one record and waits for its acknowledgement.
    pub async fn send(&self, record: ProducerRecord) -> Result<RecordMetadata> {
        let producer = self.producer.clone();
        spawned(async move {
            let handle = producer.send(record.into()).await?;
            Ok(handle.await?.into())
        })
        .await
    }

    /// Sends a list of records (at most 100 000) and waits for all of them: the answer lists
    /// where each went, in the order given. Records keep their order per partition. The first
    /// failure is raised; records before it in the list may have been written.
    pub async fn send_batch(&self, records: Vec<ProducerRecord>) -> Result<Vec<RecordMetadata>> {
        if records.len() > MAX_BATCH_RECORDS as usize {
            return Err(invalid(format!(
                "send_batch takes at most {MAX_BATCH_RECORDS} records, not {}",
                records.len()
            )));
        }
        let producer = self.producer.clone();
        spawned(async move {
            let mut handles = Vec::with_capacity(records.len());
            for record in records {
                handles.push(producer.send(record.into()).await?);
            }
            let mut out = Vec::with_capacity(handles.len());
            for handle in handles {
                out.push(handle.await?.into());
            }
            Ok(out)
        })
        .await
    }

    /// Sends values (and optionally keys, one per value) to one topic, without headers,
    /// partitions or timestamps, and waits for all of them: the columnar form of `send_batch`
    /// for high rates. A list of byte strings crosses the boundary with less work per record
    /// than a list of records (it matters most in Python, whose generated code serialises
    /// record fields one by one), and the answer is a summary per partition rather than one
    /// `RecordMetadata` per record. At most 100 000 values; the first failure is raised.
    pub async fn send_values(
        &self,
        topic: String,
        values: Vec<Vec<u8>>,
        keys: Option<Vec<Vec<u8>>>,
    ) -> Result<SendSummary> {
        if values.len() > MAX_BATCH_RECORDS as usize {
            return Err(invalid(format!(
                "send_values takes at most {MAX_BATCH_RECORDS} values, not {}",
                values.len()
            )));
        }
        if let Some(keys) = &keys
            && keys.len() != values.len()
        {
            return Err(invalid(format!(
                "{} keys for {} values: give one key per value, or none",
                keys.len(),
                values.len()
            )));
        }
        let producer = self.producer.clone();
        spawned(async move {
            let mut keys = keys.map(Vec::into_iter);
            let mut handles = Vec::with_capacity(values.len());
            for value in values {
                let record = sdk::ProducerRecord {
                    topic: topic.clone(),
                    key: keys.as_mut().and_then(Iterator::next).map(Into::into),
                    value: Some(value.into()),
                    ..Default::default()
                };
                handles.push(producer.send(record).await?);
            }
            let mut partitions: Vec<PartitionAppend> = Vec::new();
            for handle in handles {
                let m = handle.await?;
                let i = match partitions.iter().position(|p| p.partition == m.partition) {
                    Some(i) => i,
                    None => {
                        partitions.push(PartitionAppend {
                            partition: m.partition,
                            records: 0,
                            first_offset: None,
                            last_offset: None,
                        });
                        partitions.len() - 1
                    }
                };
                let p = &mut partitions[i];
                p.records += 1;
                if let Some(offset) = m.offset {
                    p.first_offset = Some(p.first_offset.map_or(offset, |o| o.min(offset)));
                    p.last_offset = Some(p.last_offset.map_or(offset, |o| o.max(offset)));
                }
            }
            partitions.sort_by_key(|p| p.partition);
            Ok(SendSummary { topic, partitions })
        })
        .await
    }

    /// Sends every buffered batch now and waits until all are acknowledged or failed.
    pub async fn flush(&self) -> Result<()> {
        let producer = self.producer.clone();
        Ok(spawned(async move { producer.flush().await }).await?)
    }

    /// Stops accepting records, sends what is buffered, waits for it, and stops the
    /// background task.
    pub async fn close(&self) -> Result<()> {
        let producer = self.producer.clone();
        Ok(spawned(async move { producer.close().await }).await?)
    }
}

// ---------------------------------------------------------------------------------------------
// Consumer

/// Reads records, alone or as a consumer group member. Calls on one consumer run one at a
/// time. `close()` (or dropping it) leaves the group and ends its subscriptions.
#[derive(uniffi::Object)]
pub struct SluiceConsumer {
    consumer: Arc<Mutex<Option<sdk::Consumer>>>,
}

impl std::fmt::Debug for SluiceConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SluiceConsumer").finish_non_exhaustive()
    }
}

impl Drop for SluiceConsumer {
    fn drop(&mut self) {
        // The SDK consumer's drop unsubscribes; give it the runtime's context.
        let _entered = runtime().enter();
        if let Some(consumer) = Arc::get_mut(&mut self.consumer) {
            consumer.get_mut().take();
        }
    }
}

impl SluiceConsumer {
    /// Runs `f` with the consumer's lock on the runtime: one call at a time.
    async fn with<T, F, Fut>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(OwnedMutexGuard<Option<sdk::Consumer>>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let consumer = self.consumer.clone();
        spawned(async move { f(consumer.lock_owned().await).await }).await
    }
}

/// The consumer, or `Closed` after `close`.
fn open(guard: &mut Option<sdk::Consumer>) -> Result<&mut sdk::Consumer> {
    guard.as_mut().ok_or(SluiceError::Closed)
}

#[uniffi::export]
impl SluiceConsumer {
    /// Waits up to `timeout_ms` for records and answers up to `max` of them (1 to 100 000); an
    /// empty list when none came in time.
    pub async fn poll_batch(&self, max: u32, timeout_ms: u64) -> Result<Vec<ConsumedRecord>> {
        if max == 0 || max > MAX_BATCH_RECORDS {
            return Err(invalid(format!(
                "max must be 1 to {MAX_BATCH_RECORDS}, not {max}"
            )));
        }
        if timeout_ms > MAX_POLL_TIMEOUT_MS {
            return Err(invalid(format!(
                "timeout_ms must be at most {MAX_POLL_TIMEOUT_MS}, not {timeout_ms}"
            )));
        }
        self.with(move |mut g| async move {
            let records = open(&mut g)?
                .poll_batch(max as usize, Duration::from_millis(timeout_ms))
                .await?;
            Ok(records.into_iter().map(Into::into).collect())
        })
        .await
    }

    /// Commits the positions of every assigned partition (group mode).
    pub async fn commit(&self) -> Result<()> {
        self.with(|mut g| async move { Ok(open(&mut g)?.commit().await?) })
            .await
    }

    /// Commits these offsets (group mode).
    pub async fn commit_offsets(&self, offsets: Vec<TopicPartitionOffset>) -> Result<()> {
        self.with(move |mut g| async move {
            let offsets: Vec<(&str, u32, u64)> = offsets
                .iter()
                .map(|o| (o.topic.as_str(), o.partition, o.offset))
                .collect();
            Ok(open(&mut g)?.commit_offsets(&offsets).await?)
        })
        .await
    }

    /// Moves a partition's position: the next poll reads from `offset`.
    pub async fn seek(&self, topic: String, partition: u32, offset: u64) -> Result<()> {
        self.with(move |mut g| async move { Ok(open(&mut g)?.seek(&topic, partition, offset)?) })
            .await
    }

    /// The offset of the next record to read in a partition, if the consumer reads it.
    pub async fn position(&self, topic: String, partition: u32) -> Result<Option<u64>> {
        self.with(move |mut g| async move { Ok(open(&mut g)?.position(&topic, partition)) })
            .await
    }

    /// The partitions this consumer reads.
    pub async fn assignment(&self) -> Result<Vec<TopicPartition>> {
        self.with(|mut g| async move {
            Ok(open(&mut g)?
                .assignment()
                .into_iter()
                .map(|(topic, partition)| TopicPartition { topic, partition })
                .collect())
        })
        .await
    }

    /// Commits (group mode, with auto-commit), leaves the group and ends the subscriptions.
    /// Later calls fail with `Closed`; closing twice is fine.
    pub async fn close(&self) -> Result<()> {
        let consumer = self.consumer.clone();
        spawned(async move {
            let taken = consumer.lock().await.take();
            match taken {
                Some(c) => Ok(c.close().await?),
                None => Ok(()),
            }
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// Admin

/// A topic in a listing.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TopicSummary {
    /// The name.
    pub name: String,
    /// Its partition count.
    pub partitions: u32,
    /// Whether it is the broker's own (`__consumer_offsets`, ...).
    pub internal: bool,
}

/// One partition of a described topic.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PartitionInfo {
    /// The partition.
    pub partition: u32,
    /// The first offset kept.
    pub log_start_offset: u64,
    /// The offset after the last committed record.
    pub high_watermark: u64,
    /// The offset the next record gets.
    pub log_end_offset: u64,
    /// Bytes on disk.
    pub size_bytes: u64,
}

/// A described topic.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TopicDescription {
    /// The name.
    pub name: String,
    /// Its partitions.
    pub partitions: Vec<PartitionInfo>,
    /// Its settings (`retention.ms`, ...).
    pub configs: HashMap<String, String>,
}

impl From<sdk::TopicDescription> for TopicDescription {
    fn from(t: sdk::TopicDescription) -> Self {
        TopicDescription {
            name: t.name,
            partitions: t
                .partitions
                .into_iter()
                .map(|p| PartitionInfo {
                    partition: p.partition,
                    log_start_offset: p.log_start_offset,
                    high_watermark: p.high_watermark,
                    log_end_offset: p.log_end_offset,
                    size_bytes: p.size_bytes,
                })
                .collect(),
            configs: t.configs.into_iter().collect(),
        }
    }
}

/// A consumer group in a listing.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct GroupSummary {
    /// The group.
    pub group: String,
    /// Its state (`stable`, `empty`, ...).
    pub state: String,
    /// How many members it has.
    pub members: u32,
}

/// A member of a described group.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct GroupMember {
    /// The member id the broker gave.
    pub member_id: String,
    /// Its static id, if it has one.
    pub instance_id: Option<String>,
    /// The topics it subscribed to.
    pub topics: Vec<String>,
    /// The partitions it owns.
    pub assigned: Vec<TopicPartition>,
}

/// A partition's committed offset and lag in a described group.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PartitionLag {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The committed offset, if any.
    pub committed: Option<u64>,
    /// The partition's end.
    pub log_end_offset: u64,
    /// Records not yet committed.
    pub lag: u64,
}

/// A described consumer group.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct GroupDescription {
    /// The group.
    pub group: String,
    /// Its state.
    pub state: String,
    /// Its members.
    pub members: Vec<GroupMember>,
    /// Committed offsets and lag per partition.
    pub partitions: Vec<PartitionLag>,
}

/// An uploaded plugin.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PluginDescription {
    /// Its name.
    pub name: String,
    /// `filter`, `map` or `partitioner`.
    pub kind: String,
    /// The module's size.
    pub size_bytes: u64,
    /// The module's sha256, hex.
    pub sha256: String,
    /// Calls so far.
    pub calls: u64,
    /// Failed calls so far.
    pub errors: u64,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

impl From<sdk::PluginDescription> for PluginDescription {
    fn from(p: sdk::PluginDescription) -> Self {
        PluginDescription {
            name: p.name,
            kind: p.kind,
            size_bytes: p.size_bytes as u64,
            sha256: p.sha256,
            calls: p.calls,
            errors: p.errors,
            last_error: p.last_error,
        }
    }
}

/// Topic, consumer group and plugin administration.
#[derive(Debug, uniffi::Object)]
pub struct SluiceAdmin {
    admin: sdk::Admin,
}

#[uniffi::export]
impl SluiceAdmin {
    /// Creates a topic with `partitions` partitions and settings. Fails with `topic_exists`.
    pub async fn create_topic(
        &self,
        name: String,
        partitions: u32,
        configs: HashMap<String, String>,
    ) -> Result<TopicDescription> {
        let mut topic = sdk::NewTopic::new(name).partitions(partitions);
        for (k, v) in configs {
            topic = topic.config(k, v);
        }
        let admin = self.admin.clone();
        Ok(spawned(async move { admin.create_topic(topic).await })
            .await?
            .into())
    }

    /// Every topic, sorted by name.
    pub async fn list_topics(&self) -> Result<Vec<TopicSummary>> {
        let admin = self.admin.clone();
        Ok(spawned(async move { admin.list_topics().await })
            .await?
            .into_iter()
            .map(|t| TopicSummary {
                name: t.name,
                partitions: t.partitions,
                internal: t.internal,
            })
            .collect())
    }

    /// One topic. Fails with `unknown_topic`.
    pub async fn describe_topic(&self, name: String) -> Result<TopicDescription> {
        let admin = self.admin.clone();
        Ok(spawned(async move { admin.describe_topic(&name).await })
            .await?
            .into())
    }

    /// Deletes a topic. Fails with `unknown_topic`.
    pub async fn delete_topic(&self, name: String) -> Result<()> {
        let admin = self.admin.clone();
        Ok(spawned(async move { admin.delete_topic(&name).await }).await?)
    }

    /// Every consumer group.
    pub async fn list_groups(&self) -> Result<Vec<GroupSummary>> {
        let admin = self.admin.clone();
        Ok(spawned(async move { admin.list_groups().await })
            .await?
            .into_iter()
            .map(|g| GroupSummary {
                group: g.group,
                state: g.state,
                members: g.members,
            })
            .collect())
    }

    /// One group: members, committed offsets and lag. Fails with `unknown_group`.
    pub async fn describe_group(&self, group: String) -> Result<GroupDescription> {
        let admin = self.admin.clone();
        let g = spawned(async move { admin.describe_group(&group).await }).await?;
        Ok(GroupDescription {
            group: g.group,
            state: g.state,
            members: g
                .members
                .into_iter()
                .map(|m| GroupMember {
                    member_id: m.member_id,
                    instance_id: m.instance_id,
                    topics: m.topics,
                    assigned: m
                        .assigned
                        .into_iter()
                        .flat_map(|tp| {
                            let topic = tp.topic;
                            tp.partitions
                                .into_iter()
                                .map(move |partition| TopicPartition {
                                    topic: topic.clone(),
                                    partition,
                                })
                        })
                        .collect(),
                })
                .collect(),
            partitions: g
                .partitions
                .into_iter()
                .map(|p| PartitionLag {
                    topic: p.topic,
                    partition: p.partition,
                    committed: p.committed,
                    log_end_offset: p.log_end_offset,
                    lag: p.lag,
                })
                .collect(),
        })
    }

    /// Uploads a `.wasm` plugin module under `name`. Fails with `invalid_plugin`.
    pub async fn upload_plugin(&self, name: String, module: Vec<u8>) -> Result<PluginDescription> {
        let admin = self.admin.clone();
        Ok(
            spawned(async move { admin.upload_plugin(&name, module).await })
                .await?
                .into(),
        )
    }

    /// Every uploaded plugin, sorted by name.
    pub async fn list_plugins(&self) -> Result<Vec<PluginDescription>> {
        let admin = self.admin.clone();
        Ok(spawned(async move { admin.list_plugins().await })
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Deletes a plugin. Fails with `unknown_plugin`.
    pub async fn delete_plugin(&self, name: String) -> Result<()> {
        let admin = self.admin.clone();
        Ok(spawned(async move { admin.delete_plugin(&name).await }).await?)
    }
}
