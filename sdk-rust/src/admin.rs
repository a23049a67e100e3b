//! [`Admin`]: topics (create, list, describe, alter, delete, offsets), consumer groups (list,
//! describe with lag, reset offsets, delete) and plugins (upload, list, describe, delete).

use std::collections::BTreeMap;

use sluice_protocol::frame::{Request, Response};
use sluice_protocol::types::{
    AlterTopic, CommittedOffset, CreateTopic, GroupDescription, GroupSummary, PartitionOffsets,
    PluginDescription, ResetOffsets, StartFrom, TopicDescription, TopicSummary,
};

use crate::client::Client;
use crate::error::{Error, Result};

/// Administration of topics, consumer groups and plugins over the client's connection.
/// Cheap to clone.
///
/// ```no_run
/// use sluice_client::{Client, NewTopic, ErrorCode};
///
/// # async fn run() -> sluice_client::Result<()> {
/// let admin = Client::connect("http://127.0.0.1:9400").await?.admin();
/// match admin.create_topic(NewTopic::new("orders").partitions(3).config("retention.ms", "86400000")).await {
///     Ok(topic) => println!("created {} with {} partitions", topic.name, topic.partitions.len()),
///     Err(e) if e.code() == Some(ErrorCode::TopicExists) => {}
///     Err(e) => return Err(e),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Admin {
    client: Client,
}

/// A topic to create: a builder for [`CreateTopic`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewTopic {
    topic: CreateTopic,
}

impl NewTopic {
    /// A topic of one partition with the broker's default settings.
    pub fn new(name: impl Into<String>) -> Self {
        NewTopic {
            topic: CreateTopic {
                name: name.into(),
                partitions: 1,
                replication_factor: 0,
                configs: BTreeMap::new(),
            },
        }
    }

    /// Number of partitions (default 1).
    pub fn partitions(mut self, partitions: u32) -> Self {
        self.topic.partitions = partitions;
        self
    }

    /// Copies of each partition. The default, 0, lets the broker choose: 1 on a single
    /// broker, 3 in a cluster of three or more brokers.
    pub fn replication_factor(mut self, replication_factor: u16) -> Self {
        self.topic.replication_factor = replication_factor;
        self
    }

    /// A topic setting (`retention.ms`, `cleanup.policy`, `max.message.bytes`, ...; see the
    /// broker's docs/OPERATIONS.md).
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.topic.configs.insert(key.into(), value.into());
        self
    }
}

impl From<NewTopic> for CreateTopic {
    fn from(t: NewTopic) -> Self {
        t.topic
    }
}

impl Admin {
    pub(crate) fn new(client: Client) -> Self {
        Admin { client }
    }

    /// Creates a topic. Fails with the broker codes `topic_exists`, `invalid_topic_name`,
    /// `invalid_config` or `internal_topic`.
    pub async fn create_topic(&self, topic: impl Into<CreateTopic>) -> Result<TopicDescription> {
        match self
            .client
            .request(Request::CreateTopic(topic.into()))
            .await?
        {
            Response::Topic(t) => Ok(t),
            other => Err(unexpected("create_topic", &other)),
        }
    }

    /// Every topic, sorted by name, internal ones included.
    pub async fn list_topics(&self) -> Result<Vec<TopicSummary>> {
        match self.client.request(Request::ListTopics).await? {
            Response::Topics(t) => Ok(t.topics),
            other => Err(unexpected("list_topics", &other)),
        }
    }

    /// A topic's partitions (offsets, sizes) and every setting's effective value.
    pub async fn describe_topic(&self, topic: &str) -> Result<TopicDescription> {
        match self
            .client
            .request(Request::DescribeTopic {
                topic: topic.to_string(),
            })
            .await?
        {
            Response::Topic(t) => Ok(t),
            other => Err(unexpected("describe_topic", &other)),
        }
    }

    /// Changes settings (a `None` value resets one to the broker default) and/or grows the
    /// partition count. Adding partitions moves where keys are routed.
    pub async fn alter_topic(&self, topic: &str, changes: AlterTopic) -> Result<TopicDescription> {
        match self
            .client
            .request(Request::AlterTopic {
                topic: topic.to_string(),
                changes,
            })
            .await?
        {
            Response::Topic(t) => Ok(t),
            other => Err(unexpected("alter_topic", &other)),
        }
    }

    /// Deletes a topic and its data.
    pub async fn delete_topic(&self, topic: &str) -> Result<()> {
        match self
            .client
            .request(Request::DeleteTopic {
                topic: topic.to_string(),
            })
            .await?
        {
            Response::Deleted { .. } => Ok(()),
            other => Err(unexpected("delete_topic", &other)),
        }
    }

    /// Earliest and latest offset of each partition; with `timestamp` (ms) also the first
    /// offset whose record is at least that recent (`offset_for_timestamp`).
    pub async fn list_offsets(
        &self,
        topic: &str,
        timestamp: Option<i64>,
    ) -> Result<Vec<PartitionOffsets>> {
        match self
            .client
            .request(Request::ListOffsets {
                topic: topic.to_string(),
                timestamp,
            })
            .await?
        {
            Response::Offsets(o) => Ok(o.partitions),
            other => Err(unexpected("list_offsets", &other)),
        }
    }

    /// Every consumer group the broker knows (with members or committed offsets), sorted by
    /// id, with its state (`empty`, `reconciling` or `stable`) and member count.
    ///
    /// ```no_run
    /// # async fn run() -> sluice_client::Result<()> {
    /// let admin = sluice_client::Client::connect("http://127.0.0.1:9400").await?.admin();
    /// for group in admin.list_groups().await? {
    ///     println!("{} {} ({} members)", group.group, group.state, group.members);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_groups(&self) -> Result<Vec<GroupSummary>> {
        match self.client.request(Request::ListGroups).await? {
            Response::Groups(g) => Ok(g.groups),
            other => Err(unexpected("list_groups", &other)),
        }
    }

    /// A group in detail: state, epoch, assignor, members with their partitions, and per
    /// partition of its topics the committed offset, the end offset and the lag. Fails with
    /// `unknown_group` when the broker has neither members nor offsets for it.
    ///
    /// ```no_run
    /// # async fn run() -> sluice_client::Result<()> {
    /// let admin = sluice_client::Client::connect("http://127.0.0.1:9400").await?.admin();
    /// let group = admin.describe_group("billing").await?;
    /// let total: u64 = group.partitions.iter().map(|p| p.lag).sum();
    /// println!("{} is {total} records behind", group.group);
    /// # Ok(()) }
    /// ```
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        match self
            .client
            .request(Request::DescribeGroup {
                group: group.to_string(),
            })
            .await?
        {
            Response::Group(g) => Ok(g),
            other => Err(unexpected("describe_group", &other)),
        }
    }

    /// A group's committed offsets (of `topics`, or of every topic when `None`). Fails with
    /// `unknown_group`.
    pub async fn group_offsets(
        &self,
        group: &str,
        topics: Option<&[&str]>,
    ) -> Result<Vec<CommittedOffset>> {
        match self
            .client
            .request(Request::FetchOffsets {
                group: group.to_string(),
                topics: topics.map(|t| t.iter().map(|s| s.to_string()).collect()),
            })
            .await?
        {
            Response::GroupOffsets(o) => Ok(o.offsets),
            other => Err(unexpected("group_offsets", &other)),
        }
    }

    /// Moves a group's committed offsets to `to` (earliest, latest, an offset, or the first
    /// record at or after a timestamp) for `topics`, or for every topic it has offsets for
    /// when `None`. Returns the offsets now committed. The group must have no active
    /// members (`group_not_empty` otherwise: stop its consumers first); `unknown_group` and
    /// `unknown_topic` as the names say.
    ///
    /// ```no_run
    /// use sluice_client::StartFrom;
    /// # async fn run() -> sluice_client::Result<()> {
    /// let admin = sluice_client::Client::connect("http://127.0.0.1:9400").await?.admin();
    /// // Replay the last hour of `orders` for group `billing`.
    /// let hour_ago = std::time::SystemTime::now()
    ///     .duration_since(std::time::UNIX_EPOCH)
    ///     .unwrap()
    ///     .as_millis() as i64
    ///     - 3_600_000;
    /// admin.reset_offsets("billing", StartFrom::Timestamp(hour_ago), Some(&["orders"])).await?;
    /// # Ok(()) }
    /// ```
    pub async fn reset_offsets(
        &self,
        group: &str,
        to: StartFrom,
        topics: Option<&[&str]>,
    ) -> Result<Vec<CommittedOffset>> {
        match self
            .client
            .request(Request::ResetOffsets {
                group: group.to_string(),
                reset: ResetOffsets {
                    to,
                    topics: topics.map(|t| t.iter().map(|s| s.to_string()).collect()),
                },
            })
            .await?
        {
            Response::GroupOffsets(o) => Ok(o.offsets),
            other => Err(unexpected("reset_offsets", &other)),
        }
    }

    /// Deletes a group's committed offsets. The group must have no active members
    /// (`group_not_empty`); `unknown_group` when there is no such group.
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        match self
            .client
            .request(Request::DeleteGroup {
                group: group.to_string(),
            })
            .await?
        {
            Response::Done => Ok(()),
            other => Err(unexpected("delete_group", &other)),
        }
    }

    /// Uploads (or replaces) plugin `name`: a WebAssembly module (a `filter` or a
    /// `partitioner`, docs/plugin-abi.md). The broker validates and compiles it before it
    /// stores it, and answers its description. Fails with `invalid_plugin` (not wasm, wrong
    /// exports or ABI version, larger than the broker's module cap, 10 MiB by default, or a
    /// bad name) or `request_too_large` (larger than the broker's frame limit).
    ///
    /// ```no_run
    /// # async fn run() -> sluice_client::Result<()> {
    /// let admin = sluice_client::Client::connect("http://127.0.0.1:9400").await?.admin();
    /// let module = std::fs::read("keyword_filter.wasm").expect("the built plugin");
    /// let plugin = admin.upload_plugin("grep", module).await?;
    /// println!("{} is a {} plugin, sha256 {}", plugin.name, plugin.kind, plugin.sha256);
    /// # Ok(()) }
    /// ```
    pub async fn upload_plugin(
        &self,
        name: &str,
        module: impl Into<Vec<u8>>,
    ) -> Result<PluginDescription> {
        match self
            .client
            .request(Request::UploadPlugin {
                name: name.to_string(),
                module: module.into(),
            })
            .await?
        {
            Response::Plugin(p) => Ok(p),
            other => Err(unexpected("upload_plugin", &other)),
        }
    }

    /// Every uploaded plugin, sorted by name.
    ///
    /// ```no_run
    /// # async fn run() -> sluice_client::Result<()> {
    /// let admin = sluice_client::Client::connect("http://127.0.0.1:9400").await?.admin();
    /// for p in admin.list_plugins().await? {
    ///     println!("{} ({}, {} calls, {} errors)", p.name, p.kind, p.calls, p.errors);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_plugins(&self) -> Result<Vec<PluginDescription>> {
        match self.client.request(Request::ListPlugins).await? {
            Response::Plugins(p) => Ok(p.plugins),
            other => Err(unexpected("list_plugins", &other)),
        }
    }

    /// One plugin: kind, ABI version, size, sha256, upload time and health counters (calls,
    /// records, errors, last error). Fails with `unknown_plugin`.
    pub async fn describe_plugin(&self, name: &str) -> Result<PluginDescription> {
        match self
            .client
            .request(Request::DescribePlugin {
                name: name.to_string(),
            })
            .await?
        {
            Response::Plugin(p) => Ok(p),
            other => Err(unexpected("describe_plugin", &other)),
        }
    }

    /// Deletes a plugin. Fails with `unknown_plugin`, or `invalid_config` while a topic
    /// routes with it (remove the topic's `partitioner` setting first). Subscriptions
    /// filtering with it keep their loaded copy until they end.
    pub async fn delete_plugin(&self, name: &str) -> Result<()> {
        match self
            .client
            .request(Request::DeletePlugin {
                name: name.to_string(),
            })
            .await?
        {
            Response::Done => Ok(()),
            other => Err(unexpected("delete_plugin", &other)),
        }
    }
}

pub(crate) fn unexpected(op: &str, answer: &Response) -> Error {
    let kind = match answer {
        Response::Hello(_) => "hello",
        Response::Topic(_) => "topic",
        Response::Topics(_) => "topics",
        Response::Deleted { .. } => "deleted",
        Response::Produced(_) => "produced",
        Response::Fetched(_) => "fetched",
        Response::Offsets(_) => "offsets",
        Response::Subscribed { .. } => "subscribed",
        Response::Done => "done",
        Response::Plugin(_) => "plugin",
        Response::Plugins(_) => "plugins",
        Response::Groups(_) => "groups",
        Response::Group(_) => "group",
        Response::GroupOffsets(_) => "group offsets",
        Response::GroupAssignment(_) => "group assignment",
        // Newer answer types (groups, ...) and unknown ones.
        _ => "another answer type",
    };
    Error::Protocol(format!("the broker answered {op} with {kind}"))
}
