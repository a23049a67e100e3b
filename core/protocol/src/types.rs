//! Request and response types. The HTTP API uses them as JSON bodies; the WebSocket protocol
//! wraps them in frames ([`crate::frame`]).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::data::Payload;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// Record headers: an ordered list of (key, value) pairs; keys may repeat, values may be null.
/// In JSON an object (`{"trace": "abc", "bin": {"base64": "AAE="}}`), order kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers(pub Vec<(String, Option<Payload>)>);

impl Headers {
    /// No headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Headers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Headers;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of header names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some((k, v)) = map.next_entry::<String, Option<Payload>>()? {
                    out.push((k, v));
                }
                Ok(Headers(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// How many replicas must have a record before the produce is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// Answer without waiting for the write (`0`): errors after validation are not reported.
    None,
    /// Answer once the leader wrote it (`1`).
    Leader,
    /// Answer once every in-sync replica has it (`all` or `-1`); on one broker, the local write
    /// under the topic's durability policy.
    #[default]
    All,
}

impl FromStr for Acks {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            other => Err(format!("acks must be 0, 1 or all, not `{other}`")),
        }
    }
}

impl fmt::Display for Acks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        })
    }
}

impl Serialize for Acks {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Acks {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Acks;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("0, 1, \"all\" or -1")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Acks, E> {
                v.to_string().parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Acks, E> {
                v.to_string().parse().map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Acks, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Create a topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    /// 1 to 249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`; `__` prefixes are internal.
    pub name: String,
    /// Number of partitions (default 1).
    #[serde(default = "one")]
    pub partitions: u32,
    /// Copies of each partition. 0 (the default) lets the broker choose: 1 on a single broker,
    /// 3 in a cluster of three or more, else the number of brokers.
    #[serde(default)]
    pub replication_factor: u16,
    /// Topic settings by name (`retention.ms`, `cleanup.policy`, `max.message.bytes`, ...).
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

fn one() -> u32 {
    1
}

/// Change a topic: settings (a null value resets one to its default) and/or the partition count
/// (it can only grow).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AlterTopic {
    /// Settings to set, or reset with null.
    #[serde(default)]
    pub configs: BTreeMap<String, Option<String>>,
    /// New total number of partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
}

/// One line of a topic listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TopicSummary {
    /// Name.
    pub name: String,
    /// Partition count.
    pub partitions: u32,
    /// Whether it is internal (`__` prefix).
    pub internal: bool,
}

/// All topics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TopicList {
    /// Sorted by name.
    pub topics: Vec<TopicSummary>,
}

/// State of one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PartitionInfo {
    /// Partition number.
    pub partition: u32,
    /// First offset still stored.
    pub log_start_offset: u64,
    /// Offsets below this are visible to consumers.
    pub high_watermark: u64,
    /// Offset the next record gets.
    pub log_end_offset: u64,
    /// Bytes on disk.
    pub size_bytes: u64,
    /// Segment files.
    pub segments: u32,
    /// Cluster mode: the broker leading the partition (absent on a single broker, which leads
    /// everything; null while the partition has no leader).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<Option<u32>>,
    /// Cluster mode: the replicas (preferred leader first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<Vec<u32>>,
    /// Cluster mode: the in-sync replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isr: Option<Vec<u32>>,
    /// The figures above come from this broker's replica, which may lag the leader's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_role: Option<String>,
}

/// A topic with its partitions and settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TopicDescription {
    /// Name.
    pub name: String,
    /// Whether it is internal.
    pub internal: bool,
    /// Copies of each partition.
    pub replication_factor: u16,
    /// Partitions in order.
    pub partitions: Vec<PartitionInfo>,
    /// Every setting with its effective value.
    pub configs: BTreeMap<String, String>,
}

/// One record to produce.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProduceRecord {
    /// Routing key; records with the same key go to the same partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub key: Option<Payload>,
    /// The value; null is a tombstone in a compacted topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub value: Option<Payload>,
    /// Headers.
    #[serde(default, skip_serializing_if = "Headers::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub headers: Headers,
    /// Explicit partition (overrides routing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    /// Timestamp in ms since the epoch (default: now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

/// HTTP produce body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProduceRequest {
    /// Records, routed individually.
    pub records: Vec<ProduceRecord>,
}

/// Where a produced record (or batch) went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RecordOffset {
    /// Partition.
    pub partition: u32,
    /// Offset of the record (of the batch's first record for batch produce).
    pub offset: u64,
}

/// Answer to a produce: one entry per record, in request order (per batch for batch produce).
/// With `acks=0` the offsets are not known and the list is empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ProduceResponse {
    /// Where each record went.
    pub offsets: Vec<RecordOffset>,
}

/// One record as consumers see it in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ConsumedRecord {
    /// Offset in the partition.
    pub offset: u64,
    /// Timestamp, ms since the epoch.
    pub timestamp: i64,
    /// Key (null when none).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub key: Option<Payload>,
    /// Value (null for a tombstone).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub value: Option<Payload>,
    /// Headers.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub headers: Headers,
}

/// Records fetched from one partition. JSON carries decoded `records`; the binary encoding
/// carries the stored record batches in `batches` (Kafka RecordBatch v2, byte for byte), whose
/// first batch may start before the requested offset (skip records below it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FetchResponse {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Decoded records at or after the requested offset (JSON).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<ConsumedRecord>,
    /// Raw record batches (binary).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::data::base64_bytes_opt"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Byte))]
    pub batches: Option<Vec<u8>>,
    /// Where to fetch next.
    pub next_offset: u64,
    /// Offsets below this are readable.
    pub high_watermark: u64,
    /// First offset still stored.
    pub log_start_offset: u64,
}

/// Offsets of one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PartitionOffsets {
    /// Partition.
    pub partition: u32,
    /// First offset still stored.
    pub earliest: u64,
    /// The high watermark: where a consumer starting at "latest" begins.
    pub latest: u64,
    /// For a `timestamp` query: the first offset whose record timestamp is at or after it
    /// (null when there is none).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub offset_for_timestamp: Option<Option<u64>>,
}

/// A field that is present (even as null) is `Some`; an absent one is `None` via `default`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(d).map(Some)
}

/// Offsets of a topic's partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct OffsetsResponse {
    /// Topic.
    pub topic: String,
    /// Partitions in order.
    pub partitions: Vec<PartitionOffsets>,
}

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StartFrom {
    /// The first stored offset.
    Earliest,
    /// The high watermark: only new records.
    #[default]
    Latest,
    /// An explicit offset (same for every partition).
    Offset(u64),
    /// The first record at or after this timestamp (ms).
    Timestamp(i64),
}

/// The broker's answer to `hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct HelloResponse {
    /// The protocol version this connection speaks.
    pub version: u32,
    /// Server name and version.
    pub server: String,
    /// Largest frame the server accepts, in bytes.
    pub max_frame_bytes: u64,
    /// Most requests a connection may have in flight.
    pub max_in_flight: u32,
}

/// Partitions of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TopicPartitions {
    /// Topic.
    pub topic: String,
    /// Partition numbers, ascending.
    pub partitions: Vec<u32>,
}

/// A group member's heartbeat, which also joins (`member_epoch` 0) and leaves (-1; -2 for a
/// static member that will come back). Modelled on Kafka's consumer group protocol (KIP-848):
/// the broker computes the assignment and answers with what the member should own now.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct GroupHeartbeat {
    /// Group id (over HTTP the path gives it).
    #[serde(default)]
    pub group: String,
    /// The id the broker gave this member; absent when joining.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
    /// 0 to join, the last epoch the broker gave otherwise, -1 to leave, -2 to leave
    /// temporarily (static members).
    #[serde(default)]
    pub member_epoch: i32,
    /// A stable id for static membership: a restart within the session timeout gets the same
    /// partitions back without a rebalance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Subscribed topics (on join, and whenever they change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<String>>,
    /// Or a regular expression matched against topic names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_pattern: Option<String>,
    /// Partitions the member owns now; partitions it no longer lists are revoked. Send it
    /// after giving up partitions, so the broker can hand them to others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned: Option<Vec<TopicPartitions>>,
    /// `range`, `roundrobin` or `sticky` (default); the group's first member decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignor: Option<String>,
    /// Session timeout in ms (within the broker's bounds; default 45 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_timeout_ms: Option<u64>,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct GroupAssignment {
    /// The member's id (send it in every later heartbeat).
    pub member_id: String,
    /// The member's epoch (send it in every later heartbeat and commit).
    pub member_epoch: i32,
    /// Heartbeat at least this often.
    pub heartbeat_interval_ms: u64,
    /// The partitions the member should own now: start consuming new ones, stop consuming
    /// (and commit) ones that are gone, then say so with `owned` in the next heartbeat.
    pub assignment: Vec<TopicPartitions>,
}

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct OffsetCommit {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The next offset to consume.
    pub offset: u64,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metadata: String,
}

/// Commit offsets for a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CommitOffsets {
    /// Group id.
    pub group: String,
    /// The committing member (absent only for a group without active members).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
    /// Its epoch; a stale one is refused (`fenced_member_epoch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_epoch: Option<i32>,
    /// Offsets to commit.
    pub offsets: Vec<OffsetCommit>,
}

/// A committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CommittedOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The next offset to consume.
    pub offset: u64,
    /// Metadata given with the commit.
    #[serde(default)]
    pub metadata: String,
    /// When it was committed (ms).
    pub commit_time_ms: u64,
}

/// A group's committed offsets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct GroupOffsets {
    /// Group id.
    pub group: String,
    /// Offsets, by topic and partition.
    pub offsets: Vec<CommittedOffset>,
}

/// Where to move a group's offsets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ResetOffsets {
    /// Where to: earliest, latest, {"offset": n} or {"timestamp": ms}.
    pub to: StartFrom,
    /// Topics to reset (default: every topic the group has offsets for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<String>>,
}

/// A group in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct GroupSummary {
    /// Group id.
    pub group: String,
    /// empty, reconciling or stable.
    pub state: String,
    /// Active members.
    pub members: u32,
}

/// All groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct GroupList {
    /// Sorted by id.
    pub groups: Vec<GroupSummary>,
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// Static instance id, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Member epoch.
    pub member_epoch: i32,
    /// Subscribed topics (resolved).
    pub topics: Vec<String>,
    /// Partitions it owns now.
    pub assigned: Vec<TopicPartitions>,
    /// Partitions it will own when the rebalance completes.
    pub target: Vec<TopicPartitions>,
}

/// Lag of one partition for a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PartitionLag {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Committed offset (null when nothing is committed).
    pub committed: Option<u64>,
    /// The partition's high watermark.
    pub log_end_offset: u64,
    /// `log_end_offset - committed` (or from the log start when nothing is committed).
    pub lag: u64,
    /// Member owning it now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// A group in detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct GroupDescription {
    /// Group id.
    pub group: String,
    /// empty, reconciling or stable.
    pub state: String,
    /// Group epoch (bumps on every membership or subscription change).
    pub group_epoch: i32,
    /// Assignor.
    pub assignor: String,
    /// Members.
    pub members: Vec<MemberDescription>,
    /// Per partition of the subscribed or committed topics: committed offset, end and lag.
    pub partitions: Vec<PartitionLag>,
}

/// A filter plugin attached to a subscription or fetch: it runs in the broker and only the
/// records it keeps are sent; positions still advance past dropped records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FilterSpec {
    /// The uploaded plugin's name (a `filter` plugin).
    pub plugin: String,
    /// Parameters given to the plugin's `init`.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// A map plugin attached to a subscription or fetch: it runs in the broker, after the filter
/// if there is one, and rewrites each record's key, value and headers before it is sent.
/// Offsets, timestamps and positions are unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MapSpec {
    /// The uploaded plugin's name (a `map` plugin).
    pub plugin: String,
    /// Parameters given to the plugin's `init`.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// An uploaded plugin as clients see it: what it is and how it has been doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PluginDescription {
    /// Name.
    pub name: String,
    /// `filter`, `partitioner` or `map`.
    pub kind: String,
    /// The ABI version the module exports.
    pub abi_version: i32,
    /// Bytes of the module.
    pub size_bytes: usize,
    /// sha256 of the module, hex.
    pub sha256: String,
    /// When it was uploaded (ms since the epoch).
    pub uploaded_ms: u64,
    /// Calls since the broker started.
    pub calls: u64,
    /// Records it processed since the broker started.
    pub records: u64,
    /// Calls that failed (traps, timeouts, bad answers).
    pub errors: u64,
    /// The last error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Every uploaded plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PluginList {
    /// Sorted by name.
    pub plugins: Vec<PluginDescription>,
}
