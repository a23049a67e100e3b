//! [`Admin`]: create, list, describe, alter and delete topics; list offsets.

use std::collections::BTreeMap;

use sluice_protocol::frame::{Request, Response};
use sluice_protocol::types::{
    AlterTopic, CreateTopic, PartitionOffsets, TopicDescription, TopicSummary,
};

use crate::client::Client;
use crate::error::{Error, Result};

/// Topic administration over the client's connection. Cheap to clone.
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
                replication_factor: 1,
                configs: BTreeMap::new(),
            },
        }
    }

    /// Number of partitions (default 1).
    pub fn partitions(mut self, partitions: u32) -> Self {
        self.topic.partitions = partitions;
        self
    }

    /// Copies of each partition (default 1; a single broker accepts only 1).
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
        // Newer answer types (groups, ...) and unknown ones.
        _ => "another answer type",
    };
    Error::Protocol(format!("the broker answered {op} with {kind}"))
}
