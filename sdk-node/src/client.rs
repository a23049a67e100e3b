//! [`NativeClient`]: one connection to a broker, with the admin calls on it.

use std::collections::{BTreeMap, HashMap};

use napi::bindgen_prelude::Buffer;
use napi::bindgen_prelude::within_runtime_if_available;
use napi_derive::napi;
use sluice_client::{AlterTopic, Client, ClientOptions, NewTopic, StartFrom};

use crate::consumer::{ConsumerOptionsJs, NativeConsumer};
use crate::error::{IntoJs, invalid};
use crate::producer::{NativeProducer, ProducerOptionsJs};

/// Connection settings; every field is optional (the SDK's defaults otherwise).
#[napi(object)]
#[derive(Default)]
pub struct ClientOptionsJs {
    /// How long a request may wait for its answer, including waiting for a connection.
    pub request_timeout_ms: Option<u32>,
    /// How long opening a connection may take.
    pub connect_timeout_ms: Option<u32>,
    /// Backoff between reconnection attempts: first delay.
    pub reconnect_backoff_min_ms: Option<u32>,
    /// Backoff between reconnection attempts: largest delay.
    pub reconnect_backoff_max_ms: Option<u32>,
    /// Requests in flight on the connection at most.
    pub max_in_flight: Option<u32>,
    /// Interval of WebSocket pings.
    pub keepalive_ms: Option<u32>,
    /// Largest frame accepted from the broker.
    pub max_receive_bytes: Option<u32>,
    /// The name this client gives the broker in its hello.
    pub client_name: Option<String>,
}

impl ClientOptionsJs {
    fn into_sdk(self) -> ClientOptions {
        let mut o = ClientOptions::new();
        if let Some(ms) = self.request_timeout_ms {
            o = o.request_timeout_ms(ms.into());
        }
        if let Some(ms) = self.connect_timeout_ms {
            o = o.connect_timeout_ms(ms.into());
        }
        if self.reconnect_backoff_min_ms.is_some() || self.reconnect_backoff_max_ms.is_some() {
            let min = self.reconnect_backoff_min_ms.unwrap_or(100);
            let max = self.reconnect_backoff_max_ms.unwrap_or(min.max(5_000));
            o = o.reconnect_backoff_ms(min.into(), max.into());
        }
        if let Some(n) = self.max_in_flight {
            o = o.max_in_flight(n);
        }
        if let Some(ms) = self.keepalive_ms {
            o = o.keepalive_ms(ms.into());
        }
        if let Some(bytes) = self.max_receive_bytes {
            o = o.max_receive_bytes(bytes as usize);
        }
        if let Some(name) = self.client_name {
            o = o.client_name(name);
        }
        o
    }
}

/// Connects to a broker (`http://host:port`, `ws://host:port` or `host:port`).
#[napi]
pub async fn connect(url: String, options: Option<ClientOptionsJs>) -> napi::Result<NativeClient> {
    let options = options.unwrap_or_default().into_sdk();
    let client = Client::connect_with(&url, options).await.js()?;
    Ok(NativeClient { client })
}

/// The broker's hello.
#[napi(object)]
pub struct ServerInfo {
    pub version: u32,
    pub server: String,
    pub max_frame_bytes: f64,
    pub max_in_flight: u32,
}

/// A topic to create.
#[napi(object)]
pub struct NewTopicJs {
    pub name: String,
    pub partitions: Option<u32>,
    pub replication_factor: Option<u32>,
    pub configs: Option<HashMap<String, String>>,
}

/// Changes to a topic: settings (`null` resets one to the broker default) and/or a larger
/// partition count.
#[napi(object)]
pub struct AlterTopicJs {
    pub configs: Option<HashMap<String, Option<String>>>,
    pub partitions: Option<u32>,
}

#[napi(object)]
pub struct TopicSummaryJs {
    pub name: String,
    pub partitions: u32,
    pub internal: bool,
}

#[napi(object)]
pub struct PartitionInfoJs {
    pub partition: u32,
    pub log_start_offset: f64,
    pub high_watermark: f64,
    pub log_end_offset: f64,
    pub size_bytes: f64,
    pub segments: u32,
}

#[napi(object)]
pub struct TopicDescriptionJs {
    pub name: String,
    pub internal: bool,
    pub replication_factor: u32,
    pub partitions: Vec<PartitionInfoJs>,
    pub configs: HashMap<String, String>,
}

#[napi(object)]
pub struct PartitionOffsetsJs {
    pub partition: u32,
    pub earliest: f64,
    pub latest: f64,
    /// With a timestamp: the first offset whose record is at least that recent (`null`: none).
    pub offset_for_timestamp: Option<f64>,
}

impl From<sluice_client::TopicDescription> for TopicDescriptionJs {
    fn from(t: sluice_client::TopicDescription) -> Self {
        TopicDescriptionJs {
            name: t.name,
            internal: t.internal,
            replication_factor: t.replication_factor.into(),
            partitions: t
                .partitions
                .into_iter()
                .map(|p| PartitionInfoJs {
                    partition: p.partition,
                    log_start_offset: p.log_start_offset as f64,
                    high_watermark: p.high_watermark as f64,
                    log_end_offset: p.log_end_offset as f64,
                    size_bytes: p.size_bytes as f64,
                    segments: p.segments,
                })
                .collect(),
            configs: t.configs.into_iter().collect(),
        }
    }
}

/// One connection to a broker, shared by the admin calls, producers and consumers made from
/// it.
#[napi]
pub struct NativeClient {
    client: Client,
}

#[napi]
impl NativeClient {
    /// The WebSocket URL in use.
    #[napi(getter)]
    pub fn url(&self) -> String {
        self.client.url().to_string()
    }

    /// The broker's hello on the current connection, `null` while reconnecting.
    #[napi]
    pub fn server_info(&self) -> Option<ServerInfo> {
        self.client.server_info().map(|h| ServerInfo {
            version: h.version,
            server: h.server,
            max_frame_bytes: h.max_frame_bytes as f64,
            max_in_flight: h.max_in_flight,
        })
    }

    /// A producer; its queue and background task live on napi's runtime.
    #[napi]
    pub fn producer(&self, options: Option<ProducerOptionsJs>) -> napi::Result<NativeProducer> {
        let options = options.map(ProducerOptionsJs::into_sdk).transpose()?;
        let client = self.client.clone();
        Ok(within_runtime_if_available(move || {
            NativeProducer::start(&client, options.unwrap_or_default())
        }))
    }

    /// A consumer, subscribed (or joined to its group) before the promise resolves.
    #[napi]
    pub async fn consumer(&self, options: ConsumerOptionsJs) -> napi::Result<NativeConsumer> {
        NativeConsumer::start(&self.client, options).await
    }

    /// Closes the connection: requests in flight and later ones fail with `closed`.
    #[napi]
    pub fn close(&self) {
        self.client.close();
    }

    #[napi]
    pub async fn create_topic(&self, topic: NewTopicJs) -> napi::Result<TopicDescriptionJs> {
        let mut new = NewTopic::new(topic.name).partitions(topic.partitions.unwrap_or(1));
        if let Some(rf) = topic.replication_factor {
            let rf = u16::try_from(rf).map_err(|_| invalid("replicationFactor is too large"))?;
            new = new.replication_factor(rf);
        }
        for (k, v) in topic.configs.unwrap_or_default() {
            new = new.config(k, v);
        }
        let t = self.client.admin().create_topic(new).await.js()?;
        Ok(t.into())
    }

    #[napi]
    pub async fn list_topics(&self) -> napi::Result<Vec<TopicSummaryJs>> {
        let topics = self.client.admin().list_topics().await.js()?;
        Ok(topics
            .into_iter()
            .map(|t| TopicSummaryJs {
                name: t.name,
                partitions: t.partitions,
                internal: t.internal,
            })
            .collect())
    }

    #[napi]
    pub async fn describe_topic(&self, topic: String) -> napi::Result<TopicDescriptionJs> {
        let t = self.client.admin().describe_topic(&topic).await.js()?;
        Ok(t.into())
    }

    #[napi]
    pub async fn alter_topic(
        &self,
        topic: String,
        changes: AlterTopicJs,
    ) -> napi::Result<TopicDescriptionJs> {
        let changes = AlterTopic {
            configs: changes
                .configs
                .unwrap_or_default()
                .into_iter()
                .collect::<BTreeMap<_, _>>(),
            partitions: changes.partitions,
        };
        let t = self
            .client
            .admin()
            .alter_topic(&topic, changes)
            .await
            .js()?;
        Ok(t.into())
    }

    #[napi]
    pub async fn delete_topic(&self, topic: String) -> napi::Result<()> {
        self.client.admin().delete_topic(&topic).await.js()
    }

    #[napi]
    pub async fn list_offsets(
        &self,
        topic: String,
        timestamp: Option<i64>,
    ) -> napi::Result<Vec<PartitionOffsetsJs>> {
        let offsets = self
            .client
            .admin()
            .list_offsets(&topic, timestamp)
            .await
            .js()?;
        Ok(offsets
            .into_iter()
            .map(|o| PartitionOffsetsJs {
                partition: o.partition,
                earliest: o.earliest as f64,
                latest: o.latest as f64,
                offset_for_timestamp: o.offset_for_timestamp.flatten().map(|x| x as f64),
            })
            .collect())
    }
}

#[napi(object)]
pub struct GroupSummaryJs {
    pub group: String,
    pub state: String,
    pub members: u32,
}

#[napi(object)]
pub struct TopicPartitionsJs {
    pub topic: String,
    pub partitions: Vec<u32>,
}

#[napi(object)]
pub struct MemberDescriptionJs {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub member_epoch: i32,
    pub topics: Vec<String>,
    /// What the member owns now.
    pub assigned: Vec<TopicPartitionsJs>,
    /// What the broker wants it to own once revocations are done.
    pub target: Vec<TopicPartitionsJs>,
}

#[napi(object)]
pub struct PartitionLagJs {
    pub topic: String,
    pub partition: u32,
    /// The group's committed offset (`null`: none).
    pub committed: Option<f64>,
    pub log_end_offset: f64,
    pub lag: f64,
    /// The member id owning the partition, if any.
    pub owner: Option<String>,
}

#[napi(object)]
pub struct GroupDescriptionJs {
    pub group: String,
    pub state: String,
    pub group_epoch: i32,
    pub assignor: String,
    pub members: Vec<MemberDescriptionJs>,
    pub partitions: Vec<PartitionLagJs>,
}

#[napi(object)]
pub struct CommittedOffsetJs {
    pub topic: String,
    pub partition: u32,
    pub offset: f64,
    pub metadata: String,
    pub commit_time_ms: f64,
}

#[napi(object)]
pub struct PluginDescriptionJs {
    pub name: String,
    /// `filter` or `partitioner`.
    pub kind: String,
    pub abi_version: i32,
    pub size_bytes: f64,
    pub sha256: String,
    pub uploaded_ms: f64,
    pub calls: f64,
    pub records: f64,
    pub errors: f64,
    pub last_error: Option<String>,
}

fn partitions_js(tps: Vec<sluice_client::TopicPartitions>) -> Vec<TopicPartitionsJs> {
    tps.into_iter()
        .map(|t| TopicPartitionsJs {
            topic: t.topic,
            partitions: t.partitions,
        })
        .collect()
}

fn offsets_js(offsets: Vec<sluice_client::CommittedOffset>) -> Vec<CommittedOffsetJs> {
    offsets
        .into_iter()
        .map(|o| CommittedOffsetJs {
            topic: o.topic,
            partition: o.partition,
            offset: o.offset as f64,
            metadata: o.metadata,
            commit_time_ms: o.commit_time_ms as f64,
        })
        .collect()
}

fn plugin_js(p: sluice_client::PluginDescription) -> PluginDescriptionJs {
    PluginDescriptionJs {
        name: p.name,
        kind: p.kind,
        abi_version: p.abi_version,
        size_bytes: p.size_bytes as f64,
        sha256: p.sha256,
        uploaded_ms: p.uploaded_ms as f64,
        calls: p.calls as f64,
        records: p.records as f64,
        errors: p.errors as f64,
        last_error: p.last_error,
    }
}

/// Where a reset moves a group's offsets: `earliest`, `latest`, `offset` or `timestamp`, with
/// the value for the last two.
pub fn start_from(from: &str, value: Option<i64>) -> napi::Result<StartFrom> {
    let need = |what: &str| value.ok_or_else(|| invalid(format!("{what} needs a value")));
    Ok(match from {
        "earliest" => StartFrom::Earliest,
        "latest" => StartFrom::Latest,
        "offset" => {
            let offset = need("an offset")?;
            if offset < 0 {
                return Err(invalid("an offset cannot be negative"));
            }
            StartFrom::Offset(offset as u64)
        }
        "timestamp" => StartFrom::Timestamp(need("a timestamp")?),
        other => return Err(invalid(format!("unknown position `{other}`"))),
    })
}

/// Groups and plugins.
#[napi]
impl NativeClient {
    #[napi]
    pub async fn list_groups(&self) -> napi::Result<Vec<GroupSummaryJs>> {
        let groups = self.client.admin().list_groups().await.js()?;
        Ok(groups
            .into_iter()
            .map(|g| GroupSummaryJs {
                group: g.group,
                state: g.state,
                members: g.members,
            })
            .collect())
    }

    #[napi]
    pub async fn describe_group(&self, group: String) -> napi::Result<GroupDescriptionJs> {
        let g = self.client.admin().describe_group(&group).await.js()?;
        Ok(GroupDescriptionJs {
            group: g.group,
            state: g.state,
            group_epoch: g.group_epoch,
            assignor: g.assignor,
            members: g
                .members
                .into_iter()
                .map(|m| MemberDescriptionJs {
                    member_id: m.member_id,
                    instance_id: m.instance_id,
                    member_epoch: m.member_epoch,
                    topics: m.topics,
                    assigned: partitions_js(m.assigned),
                    target: partitions_js(m.target),
                })
                .collect(),
            partitions: g
                .partitions
                .into_iter()
                .map(|p| PartitionLagJs {
                    topic: p.topic,
                    partition: p.partition,
                    committed: p.committed.map(|c| c as f64),
                    log_end_offset: p.log_end_offset as f64,
                    lag: p.lag as f64,
                    owner: p.owner,
                })
                .collect(),
        })
    }

    #[napi]
    pub async fn group_offsets(
        &self,
        group: String,
        topics: Option<Vec<String>>,
    ) -> napi::Result<Vec<CommittedOffsetJs>> {
        let topics: Option<Vec<&str>> = topics
            .as_ref()
            .map(|t| t.iter().map(String::as_str).collect());
        let offsets = self
            .client
            .admin()
            .group_offsets(&group, topics.as_deref())
            .await
            .js()?;
        Ok(offsets_js(offsets))
    }

    /// Moves a group's committed offsets (the group must have no members).
    #[napi]
    pub async fn reset_offsets(
        &self,
        group: String,
        from: String,
        value: Option<i64>,
        topics: Option<Vec<String>>,
    ) -> napi::Result<Vec<CommittedOffsetJs>> {
        let to = start_from(&from, value)?;
        let topics: Option<Vec<&str>> = topics
            .as_ref()
            .map(|t| t.iter().map(String::as_str).collect());
        let offsets = self
            .client
            .admin()
            .reset_offsets(&group, to, topics.as_deref())
            .await
            .js()?;
        Ok(offsets_js(offsets))
    }

    #[napi]
    pub async fn delete_group(&self, group: String) -> napi::Result<()> {
        self.client.admin().delete_group(&group).await.js()
    }

    /// Uploads (or replaces) a WebAssembly plugin; the broker validates and compiles it.
    #[napi]
    pub async fn upload_plugin(
        &self,
        name: String,
        module: Buffer,
    ) -> napi::Result<PluginDescriptionJs> {
        let module = module.to_vec();
        let p = self
            .client
            .admin()
            .upload_plugin(&name, module)
            .await
            .js()?;
        Ok(plugin_js(p))
    }

    #[napi]
    pub async fn list_plugins(&self) -> napi::Result<Vec<PluginDescriptionJs>> {
        let plugins = self.client.admin().list_plugins().await.js()?;
        Ok(plugins.into_iter().map(plugin_js).collect())
    }

    #[napi]
    pub async fn describe_plugin(&self, name: String) -> napi::Result<PluginDescriptionJs> {
        Ok(plugin_js(
            self.client.admin().describe_plugin(&name).await.js()?,
        ))
    }

    #[napi]
    pub async fn delete_plugin(&self, name: String) -> napi::Result<()> {
        self.client.admin().delete_plugin(&name).await.js()
    }
}
