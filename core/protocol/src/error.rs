//! Error codes: stable, machine-readable, shared by every transport.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A stable error code. The JSON form is the snake_case name (`"unknown_topic"`); clients match
/// on it, never on the message. New codes may be added; clients treat unknown ones as
/// [`ErrorCode::Internal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request is malformed: bad JSON, a missing or mistyped field, a bad parameter.
    BadRequest,
    /// The client's protocol version is not supported; the message names the supported ones.
    UnsupportedVersion,
    /// The first request on a WebSocket connection must be `hello`.
    HandshakeRequired,
    /// No such HTTP endpoint.
    NotFound,
    /// The endpoint exists but not with this HTTP method.
    MethodNotAllowed,
    /// The topic does not exist.
    UnknownTopic,
    /// The partition does not exist in the topic.
    UnknownPartition,
    /// A topic with that name exists already.
    TopicExists,
    /// The topic name breaks the naming rules.
    InvalidTopicName,
    /// A topic setting is unknown or out of bounds.
    InvalidConfig,
    /// Internal topics (names starting with `__`) cannot be changed by clients.
    InternalTopic,
    /// A record batch is larger than the topic's `max.message.bytes`.
    RecordTooLarge,
    /// A request or frame is larger than the server accepts.
    RequestTooLarge,
    /// Record batch bytes failed validation (length, CRC, counts, structure).
    InvalidRecords,
    /// The offset is outside the partition; the error carries the valid range.
    OffsetOutOfRange,
    /// The server has as many connections as it accepts.
    TooManyConnections,
    /// The connection has as many requests in flight as it may.
    TooManyRequests,
    /// The subscription id is not known on this connection.
    UnknownSubscription,
    /// A compacted topic needs a key on every record.
    KeyRequired,
    /// The consumer group does not exist (no members and no committed offsets).
    UnknownGroup,
    /// The group has no member with this id (it left or was removed after its session
    /// timeout): rejoin with member epoch 0.
    UnknownMember,
    /// The member's epoch is stale: another incarnation replaced it or it missed a rebalance.
    /// Stop consuming and rejoin with member epoch 0.
    FencedMemberEpoch,
    /// The operation needs a group without active members (stop the consumers first).
    GroupNotEmpty,
    /// No plugin with that name was uploaded.
    UnknownPlugin,
    /// The module is not a valid Sluice plugin (not wasm, wrong exports or ABI version, too
    /// large), or its parameters were refused.
    InvalidPlugin,
    /// A plugin failed while running (trap, timeout, memory limit, bad answer); the message
    /// names the plugin and the records' offsets.
    PluginFailed,
    /// The server is shutting down.
    ShuttingDown,
    /// Reading or writing the log failed on the server.
    StorageError,
    /// This broker does not lead the partition (or no longer does): refresh the cluster
    /// metadata (`GET /v1/cluster`) and send to the leader it names. Retriable.
    NotLeader,
    /// The partition has no leader right now (an election is under way, or every in-sync
    /// replica is down). Retriable after a short wait.
    LeaderNotAvailable,
    /// The request carried a leader epoch older than the partition's: its sender is stale.
    FencedLeaderEpoch,
    /// acks=all was asked but fewer in-sync replicas than the topic's `min.insync.replicas`
    /// are alive; nothing was written. Retriable once replicas return.
    NotEnoughReplicas,
    /// The replication factor is 0 or larger than the live brokers.
    InvalidReplicationFactor,
    /// The metadata quorum has no controller right now, or this broker could not reach it.
    /// Retriable.
    NotController,
    /// A replicated write was accepted by the leader but the in-sync replicas did not confirm
    /// it in time; it may or may not be kept. Retriable.
    RequestTimedOut,
    /// Anything else; the message says what. Codes this client does not know (from a newer
    /// server) decode as this too.
    #[serde(other)]
    Internal,
}

impl ErrorCode {
    /// The HTTP status this code is answered with.
    pub fn http_status(self) -> u16 {
        use ErrorCode::*;
        match self {
            BadRequest | InvalidTopicName | InvalidConfig | InvalidRecords | KeyRequired
            | HandshakeRequired => 400,
            UnsupportedVersion => 400,
            UnknownTopic | UnknownPartition | UnknownSubscription | NotFound | UnknownGroup
            | UnknownPlugin => 404,
            InvalidPlugin => 400,
            PluginFailed => 500,
            UnknownMember | FencedMemberEpoch | GroupNotEmpty => 409,
            MethodNotAllowed => 405,
            TopicExists => 409,
            InternalTopic => 403,
            RecordTooLarge | RequestTooLarge => 413,
            OffsetOutOfRange => 416,
            TooManyConnections | TooManyRequests => 429,
            ShuttingDown => 503,
            NotLeader | LeaderNotAvailable | NotEnoughReplicas | NotController
            | RequestTimedOut => 503,
            FencedLeaderEpoch => 409,
            InvalidReplicationFactor => 400,
            StorageError | Internal => 500,
        }
    }

    /// The snake_case name, as on the wire.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            BadRequest => "bad_request",
            UnsupportedVersion => "unsupported_version",
            HandshakeRequired => "handshake_required",
            NotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            UnknownTopic => "unknown_topic",
            UnknownPartition => "unknown_partition",
            TopicExists => "topic_exists",
            InvalidTopicName => "invalid_topic_name",
            InvalidConfig => "invalid_config",
            InternalTopic => "internal_topic",
            RecordTooLarge => "record_too_large",
            RequestTooLarge => "request_too_large",
            InvalidRecords => "invalid_records",
            OffsetOutOfRange => "offset_out_of_range",
            TooManyConnections => "too_many_connections",
            TooManyRequests => "too_many_requests",
            UnknownSubscription => "unknown_subscription",
            KeyRequired => "key_required",
            UnknownGroup => "unknown_group",
            UnknownMember => "unknown_member",
            FencedMemberEpoch => "fenced_member_epoch",
            GroupNotEmpty => "group_not_empty",
            UnknownPlugin => "unknown_plugin",
            InvalidPlugin => "invalid_plugin",
            PluginFailed => "plugin_failed",
            ShuttingDown => "shutting_down",
            StorageError => "storage_error",
            NotLeader => "not_leader",
            LeaderNotAvailable => "leader_not_available",
            FencedLeaderEpoch => "fenced_leader_epoch",
            NotEnoughReplicas => "not_enough_replicas",
            InvalidReplicationFactor => "invalid_replication_factor",
            NotController => "not_controller",
            RequestTimedOut => "request_timed_out",
            Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as every transport carries it: HTTP bodies, WebSocket error frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[error("{code}: {message}")]
pub struct ErrorBody {
    /// Stable code.
    pub code: ErrorCode,
    /// What happened and what to do about it, for humans.
    pub message: String,
    /// For `offset_out_of_range`: the first offset in the partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_start_offset: Option<u64>,
    /// For `offset_out_of_range`: the offset the next record will get.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_end_offset: Option<u64>,
}

impl ErrorBody {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            code,
            message: message.into(),
            log_start_offset: None,
            log_end_offset: None,
        }
    }
}
