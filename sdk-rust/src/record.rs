//! Records as the application sees them: [`ProducerRecord`] going out, [`Record`] coming in.

use std::sync::Arc;

use bytes::Bytes;

/// One record header: a name and a value that may be null. Names may repeat within a record,
/// and order is kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// The header's name (UTF-8 by convention; names that are not are decoded lossily).
    pub key: String,
    /// The value, `None` for a null value.
    pub value: Option<Bytes>,
}

impl Header {
    /// A header with a value.
    pub fn new(key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Header {
            key: key.into(),
            value: Some(value.into()),
        }
    }

    /// A header with a null value.
    pub fn null(key: impl Into<String>) -> Self {
        Header {
            key: key.into(),
            value: None,
        }
    }
}

/// A record to produce. Build one with [`ProducerRecord::new`] and the `with_*` methods, or
/// fill the fields directly.
///
/// Routing: an explicit `partition` wins; else a `key` picks the partition Kafka's default
/// partitioner would (murmur2); else the producer sticks to one partition per batch and moves
/// round-robin to the next.
///
/// ```
/// use sluice_client::ProducerRecord;
///
/// let record = ProducerRecord::new("orders", "hello")
///     .with_key("user-1")
///     .with_header("trace", "abc")
///     .with_timestamp(1_700_000_000_000);
/// assert_eq!(record.key.as_deref(), Some(&b"user-1"[..]));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    /// The topic.
    pub topic: String,
    /// The key (`None`: no key).
    pub key: Option<Bytes>,
    /// The value (`None`: a null value, a tombstone in a compacted topic).
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// An explicit partition, overriding routing.
    pub partition: Option<u32>,
    /// The record's timestamp in ms since the Unix epoch (`None`: the time of `send`).
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record with a value and nothing else.
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    /// A record with a null value (a tombstone, given a key, in a compacted topic).
    pub fn null_value(topic: impl Into<String>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            ..Default::default()
        }
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header::new(key, value));
        self
    }

    /// Sets the partition.
    pub fn with_partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the timestamp (ms since the Unix epoch).
    pub fn with_timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }
}

/// Where a produced record went.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordMetadata {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: u32,
    /// The record's offset; `None` with `acks = 0`, where the broker does not say.
    pub offset: Option<u64>,
    /// The record's timestamp (ms), as sent.
    pub timestamp: i64,
}

/// A consumed record. Keys, values and header values share the memory of the batch they came
/// in (cloning them is cheap).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: u32,
    /// The offset in the partition.
    pub offset: u64,
    /// The timestamp, ms since the Unix epoch.
    pub timestamp: i64,
    /// The key, `None` if null.
    pub key: Option<Bytes>,
    /// The value, `None` if null.
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
