//! WebSocket frames: one connection carries many requests, told apart by `id`.
//!
//! Text frames carry JSON, binary frames carry the same structures in MessagePack (named
//! fields). A client sends [`ClientFrame`]s; the server answers each with a [`ServerFrame`]
//! holding the same `id` and either `ok` or `error`, and pushes subscription deliveries as
//! frames with `records` and no `id`. The first request on a connection must be `hello`.
//!
//! ```json
//! → {"id":1,"op":"hello","version":1,"client":"my-app"}
//! ← {"id":1,"ok":{"type":"hello","version":1,"server":"sluice/0.1.0","max_frame_bytes":16777216,"max_in_flight":256}}
//! → {"id":2,"op":"produce","topic":"orders","records":[{"key":"k","value":"v"}]}
//! ← {"id":2,"ok":{"type":"produced","offsets":[{"partition":0,"offset":41}]}}
//! → {"id":3,"op":"nope"}
//! ← {"id":3,"error":{"code":"bad_request","message":"..."}}
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{ErrorBody, ErrorCode};
use crate::types::*;

/// A request from a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientFrame {
    /// Correlation id, echoed in the answer. Chosen by the client, unique among its requests
    /// in flight.
    pub id: u64,
    /// The request.
    #[serde(flatten)]
    pub request: Request,
}

/// Everything a client can ask over WebSocket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Version handshake; must come first.
    Hello {
        /// Protocol version the client speaks.
        version: u32,
        /// Free-form client name, for logs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
    },
    /// Create a topic.
    CreateTopic(CreateTopic),
    /// List topics.
    ListTopics,
    /// Describe a topic.
    DescribeTopic {
        /// Topic name.
        topic: String,
    },
    /// Change a topic.
    AlterTopic {
        /// Topic name.
        topic: String,
        /// The change.
        #[serde(default)]
        changes: AlterTopic,
    },
    /// Delete a topic and its data.
    DeleteTopic {
        /// Topic name.
        topic: String,
    },
    /// Produce records (routed one by one) or encoded record batches (to one partition, or
    /// routed by the broker when `partition` is absent).
    Produce {
        /// Topic name.
        topic: String,
        /// Acknowledgement level.
        #[serde(default)]
        acks: Acks,
        /// Records to route (JSON clients).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        records: Vec<ProduceRecord>,
        /// Encoded record batches (SDKs).
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "crate::data::base64_bytes_opt"
        )]
        batches: Option<Vec<u8>>,
        /// Partition for `batches`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        partition: Option<u32>,
    },
    /// Read records from one partition, waiting up to `max_wait_ms` for some to arrive.
    Fetch {
        /// Topic name.
        topic: String,
        /// Partition.
        partition: u32,
        /// First offset wanted.
        offset: u64,
        /// Byte budget (at least one batch is returned).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_bytes: Option<u64>,
        /// Long-poll time when nothing is there yet.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_wait_ms: Option<u64>,
        /// A filter plugin run on the records before they are returned.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filter: Option<FilterSpec>,
        /// A map plugin run on the records (after the filter) before they are returned.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        map: Option<MapSpec>,
    },
    /// Offsets of a topic's partitions, optionally the offset for a timestamp.
    ListOffsets {
        /// Topic name.
        topic: String,
        /// Find the first offset at or after this timestamp (ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timestamp: Option<i64>,
    },
    /// Start pushing records of some partitions as they arrive. Flow control by credit: the
    /// server sends while the subscription has byte credit left and stops when it runs out;
    /// the client grants more with `credit`.
    Subscribe {
        /// Topic name.
        topic: String,
        /// Partitions (default: all).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        partitions: Option<Vec<u32>>,
        /// Where to start.
        #[serde(default)]
        from: StartFrom,
        /// Initial byte credit.
        credit_bytes: u64,
        /// Explicit start offsets per partition (these partitions, each from its own offset;
        /// overrides `partitions` and `from`). For clients resuming several positions at once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        positions: Option<Vec<RecordOffset>>,
        /// A filter plugin run on the records before they are pushed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filter: Option<FilterSpec>,
        /// A map plugin run on the records (after the filter) before they are pushed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        map: Option<MapSpec>,
    },
    /// Grant a subscription more byte credit.
    Credit {
        /// Subscription id from `subscribed`.
        subscription: u64,
        /// Bytes to add.
        bytes: u64,
    },
    /// Stop a subscription.
    Unsubscribe {
        /// Subscription id.
        subscription: u64,
    },
    /// Consumer group membership: join (epoch 0), heartbeat, leave (-1 / -2).
    GroupHeartbeat(GroupHeartbeat),
    /// Commit a group's offsets.
    CommitOffsets(CommitOffsets),
    /// A group's committed offsets.
    FetchOffsets {
        /// Group id.
        group: String,
        /// Only these topics (default: all).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topics: Option<Vec<String>>,
    },
    /// Groups with members or committed offsets.
    ListGroups,
    /// A group in detail: members, assignment, offsets, lag.
    DescribeGroup {
        /// Group id.
        group: String,
    },
    /// Delete a group's offsets (no active members).
    DeleteGroup {
        /// Group id.
        group: String,
    },
    /// Move a group's offsets (no active members).
    ResetOffsets {
        /// Group id.
        group: String,
        /// Where to and which topics.
        #[serde(flatten)]
        reset: ResetOffsets,
    },
    /// Upload (or replace) a plugin: a WebAssembly module, validated and compiled before it
    /// is stored. The module travels as bytes in binary frames and as base64 text in JSON.
    UploadPlugin {
        /// Plugin name (the topic naming rules).
        name: String,
        /// The `.wasm` module.
        #[serde(with = "crate::data::base64_bytes")]
        module: Vec<u8>,
    },
    /// Every uploaded plugin.
    ListPlugins,
    /// One plugin: kind, ABI version, size, sha256, upload time, health counters.
    DescribePlugin {
        /// Plugin name.
        name: String,
    },
    /// Delete a plugin (refused while a topic routes with it).
    DeletePlugin {
        /// Plugin name.
        name: String,
    },
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerFrame {
    /// The id of the request answered; absent on pushes (and on errors about frames that
    /// could not be read far enough to find an id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// On an error that ended a subscription: which one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<u64>,
    /// The content.
    #[serde(flatten)]
    pub body: ServerBody,
}

/// Content of a server frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerBody {
    /// Success.
    Ok(Response),
    /// Failure of the request with this id (or of the connection, without id).
    Error(ErrorBody),
    /// Records pushed for a subscription.
    Records(Delivery),
}

/// Successful answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// Handshake done.
    Hello(HelloResponse),
    /// A topic (create, describe, alter).
    Topic(TopicDescription),
    /// Topic list.
    Topics(TopicList),
    /// A topic was deleted.
    Deleted {
        /// Its name.
        topic: String,
    },
    /// Produce result.
    Produced(ProduceResponse),
    /// Fetch result.
    Fetched(FetchResponse),
    /// Offsets.
    Offsets(OffsetsResponse),
    /// A subscription started.
    Subscribed {
        /// Its id, used in deliveries, `credit` and `unsubscribe`.
        subscription: u64,
        /// Starting offset per partition.
        positions: Vec<RecordOffset>,
    },
    /// A group member's assignment.
    GroupAssignment(GroupAssignment),
    /// A group's committed offsets.
    GroupOffsets(GroupOffsets),
    /// Groups.
    Groups(GroupList),
    /// A group in detail.
    Group(GroupDescription),
    /// Done (credit, unsubscribe, commit, delete group, delete plugin).
    Done,
    /// A plugin (upload, describe).
    Plugin(PluginDescription),
    /// Every uploaded plugin.
    Plugins(PluginList),
    /// An answer type this client does not know (a newer server); ignore it.
    #[serde(other)]
    Unknown,
}

/// Records pushed for a subscription (same content as a fetch result).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The subscription.
    pub subscription: u64,
    /// Credit this delivery used: the bytes of the stored record batches it carries (in JSON
    /// too, where the records are decoded).
    #[serde(default)]
    pub bytes: u64,
    /// Records of one partition.
    #[serde(flatten)]
    pub fetch: FetchResponse,
}

/// Decoding a frame failed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FrameError(pub String);

impl From<FrameError> for ErrorBody {
    fn from(e: FrameError) -> Self {
        ErrorBody::new(ErrorCode::BadRequest, e.0)
    }
}

/// Encodes a frame as JSON text.
pub fn to_json<T: Serialize>(frame: &T) -> String {
    serde_json::to_string(frame).expect("protocol types always serialize to JSON")
}

/// Encodes a frame as MessagePack (named fields).
pub fn to_binary<T: Serialize>(frame: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(frame).expect("protocol types always serialize to MessagePack")
}

/// Decodes a JSON frame.
pub fn from_json<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, FrameError> {
    serde_json::from_str(text).map_err(|e| FrameError(format!("malformed JSON frame: {e}")))
}

/// Decodes a MessagePack frame.
pub fn from_binary<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, FrameError> {
    rmp_serde::from_slice(bytes).map_err(|e| FrameError(format!("malformed binary frame: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frame: &ClientFrame) {
        let json = to_json(frame);
        assert_eq!(&from_json::<ClientFrame>(&json).unwrap(), frame, "{json}");
        let bin = to_binary(frame);
        assert_eq!(&from_binary::<ClientFrame>(&bin).unwrap(), frame);
    }

    #[test]
    fn client_frames_round_trip_in_both_encodings() {
        round_trip(&ClientFrame {
            id: 1,
            request: Request::Hello {
                version: 1,
                client: Some("t".into()),
            },
        });
        round_trip(&ClientFrame {
            id: 2,
            request: Request::Produce {
                topic: "t".into(),
                acks: Acks::Leader,
                records: vec![ProduceRecord {
                    key: Some("k".into()),
                    value: Some(vec![0u8, 255].into()),
                    headers: Headers(vec![("h".into(), None), ("h".into(), Some("x".into()))]),
                    partition: Some(3),
                    timestamp: Some(5),
                }],
                batches: Some(vec![1, 2, 3]),
                partition: None,
            },
        });
        round_trip(&ClientFrame {
            id: 3,
            request: Request::Subscribe {
                topic: "t".into(),
                partitions: None,
                from: StartFrom::Timestamp(9),
                credit_bytes: 100,
                positions: None,
                filter: None,
                map: None,
            },
        });
        round_trip(&ClientFrame {
            id: 6,
            request: Request::Subscribe {
                topic: "t".into(),
                partitions: Some(vec![0]),
                from: StartFrom::Earliest,
                credit_bytes: 100,
                positions: None,
                filter: Some(FilterSpec {
                    plugin: "grep".into(),
                    params: [("keyword".to_string(), "x".to_string())].into(),
                }),
                map: Some(MapSpec {
                    plugin: "tag".into(),
                    params: [("value".to_string(), "upper".to_string())].into(),
                }),
            },
        });
        round_trip(&ClientFrame {
            id: 7,
            request: Request::Fetch {
                topic: "t".into(),
                partition: 0,
                offset: 3,
                max_bytes: None,
                max_wait_ms: None,
                filter: None,
                map: Some(MapSpec {
                    plugin: "tag".into(),
                    params: Default::default(),
                }),
            },
        });
        round_trip(&ClientFrame {
            id: 4,
            request: Request::ListTopics,
        });
        round_trip(&ClientFrame {
            id: 5,
            request: Request::UploadPlugin {
                name: "p".into(),
                module: vec![0, 0x61, 0x73, 0x6d, 0xff],
            },
        });
    }

    #[test]
    fn plugin_modules_are_base64_in_json_and_bytes_in_binary() {
        let frame = ClientFrame {
            id: 7,
            request: Request::UploadPlugin {
                name: "grep".into(),
                module: b"\0asm".to_vec(),
            },
        };
        assert_eq!(
            to_json(&frame),
            r#"{"id":7,"op":"upload_plugin","name":"grep","module":"AGFzbQ=="}"#
        );
        let bin = to_binary(&frame);
        // MessagePack bin 8 marker, length 4, then the bytes themselves.
        assert!(bin.windows(6).any(|w| w == [0xc4, 4, 0, b'a', b's', b'm']));
        let bad = from_json::<ClientFrame>(
            r#"{"id":7,"op":"upload_plugin","name":"grep","module":"not base64!"}"#,
        );
        assert!(bad.is_err());
        let answer = ServerFrame {
            id: Some(7),
            subscription: None,
            body: ServerBody::Ok(Response::Plugins(PluginList {
                plugins: vec![PluginDescription {
                    name: "grep".into(),
                    kind: "filter".into(),
                    abi_version: 1,
                    size_bytes: 4,
                    sha256: "00".repeat(32),
                    uploaded_ms: 5,
                    calls: 0,
                    records: 0,
                    errors: 0,
                    last_error: None,
                }],
            })),
        };
        assert_eq!(
            from_binary::<ServerFrame>(&to_binary(&answer)).unwrap(),
            answer
        );
        assert_eq!(from_json::<ServerFrame>(&to_json(&answer)).unwrap(), answer);
    }

    #[test]
    fn the_documented_json_shapes_parse() {
        let f: ClientFrame =
            from_json(r#"{"id":1,"op":"hello","version":1,"client":"my-app"}"#).unwrap();
        assert_eq!(
            f.request,
            Request::Hello {
                version: 1,
                client: Some("my-app".into())
            }
        );
        let f: ClientFrame = from_json(
            r#"{"id":2,"op":"produce","topic":"orders","records":[{"key":"k","value":"v"}]}"#,
        )
        .unwrap();
        assert!(matches!(
            f.request,
            Request::Produce {
                acks: Acks::All,
                ..
            }
        ));
        let f: ClientFrame = from_json(
            r#"{"id":5,"op":"subscribe","topic":"t","from":{"offset":7},"credit_bytes":10}"#,
        )
        .unwrap();
        assert!(matches!(
            f.request,
            Request::Subscribe {
                from: StartFrom::Offset(7),
                ..
            }
        ));
        let f: ClientFrame = from_json(
            r#"{"id":5,"op":"subscribe","topic":"t","from":"earliest","credit_bytes":10}"#,
        )
        .unwrap();
        assert!(matches!(
            f.request,
            Request::Subscribe {
                from: StartFrom::Earliest,
                ..
            }
        ));
        let ok = ServerFrame {
            id: Some(2),
            subscription: None,
            body: ServerBody::Ok(Response::Produced(ProduceResponse {
                offsets: vec![RecordOffset {
                    partition: 0,
                    offset: 41,
                }],
            })),
        };
        assert_eq!(
            to_json(&ok),
            r#"{"id":2,"ok":{"type":"produced","offsets":[{"partition":0,"offset":41}]}}"#
        );
        let err = ServerFrame {
            id: Some(3),
            subscription: None,
            body: ServerBody::Error(ErrorBody::new(ErrorCode::UnknownTopic, "no")),
        };
        assert_eq!(
            to_json(&err),
            r#"{"id":3,"error":{"code":"unknown_topic","message":"no"}}"#
        );
        let back: ServerFrame = from_json(&to_json(&err)).unwrap();
        assert_eq!(back, err);
        let bin: ServerFrame = from_binary(&to_binary(&ok)).unwrap();
        assert_eq!(bin, ok);
    }

    #[test]
    fn offset_for_timestamp_tells_absent_from_null() {
        let asked: PartitionOffsets = serde_json::from_str(
            r#"{"partition":0,"earliest":0,"latest":5,"offset_for_timestamp":null}"#,
        )
        .unwrap();
        assert_eq!(asked.offset_for_timestamp, Some(None));
        let not_asked: PartitionOffsets =
            serde_json::from_str(r#"{"partition":0,"earliest":0,"latest":5}"#).unwrap();
        assert_eq!(not_asked.offset_for_timestamp, None);
        let found = PartitionOffsets {
            partition: 0,
            earliest: 0,
            latest: 5,
            offset_for_timestamp: Some(Some(3)),
        };
        assert_eq!(
            from_binary::<PartitionOffsets>(&to_binary(&found)).unwrap(),
            found
        );
        let none = PartitionOffsets {
            offset_for_timestamp: Some(None),
            ..found.clone()
        };
        assert_eq!(
            from_binary::<PartitionOffsets>(&to_binary(&none)).unwrap(),
            none
        );
        assert_eq!(
            from_json::<PartitionOffsets>(&to_json(&none)).unwrap(),
            none
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for junk in [
            "",
            "{",
            "null",
            "[]",
            r#"{"id":1}"#,
            r#"{"id":1,"op":"fly"}"#,
            r#"{"id":-1,"op":"list_topics"}"#,
        ] {
            assert!(from_json::<ClientFrame>(junk).is_err(), "{junk}");
        }
        for junk in [
            &[][..],
            &[0xc1],
            &[0x81, 0xa2, b'i', b'd'],
            &[0xdf, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert!(from_binary::<ClientFrame>(junk).is_err());
        }
    }
}
