//! [`NativeConsumer`]: the SDK's consumer, polled in batches from JavaScript.
//!
//! The SDK consumer is one `Stream` that must not be polled from two places at once, so it
//! sits behind an async mutex. A `nextBatch` call that waits for records holds the mutex;
//! `seek`, `commit` and `close` first wake it (it then resolves with no records, and the
//! JavaScript layer asks again), so they never wait for records to arrive.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use sluice_client::{Assignor, Client, Consumer, ConsumerOptions, OffsetReset};
use tokio::sync::{Mutex, Notify};

use crate::client::start_from;
use crate::error::{IntoJs, invalid, js_error};

/// Records handed over by one `nextBatch` call at most.
const MAX_BATCH: u32 = 10_000;

/// Consumer settings, as the JavaScript layer passes them.
#[napi(object)]
pub struct ConsumerOptionsJs {
    pub topics: Vec<String>,
    /// Consumer group to join; without one the consumer reads every partition itself.
    pub group: Option<String>,
    /// Static membership id (group mode).
    pub instance_id: Option<String>,
    pub session_timeout_ms: Option<u32>,
    /// `earliest`, `latest` or `none`: where a partition without a committed offset starts.
    pub auto_offset_reset: Option<String>,
    /// Commit every this many ms while polled, on revocation and on close; `0` turns
    /// automatic commits off. Default 5000.
    pub auto_commit_interval_ms: Option<u32>,
    /// `sticky`, `range` or `roundrobin`.
    pub assignor: Option<String>,
    /// Broadcast mode: `earliest`, `latest` (default), `offset` or `timestamp`.
    pub from: Option<String>,
    /// The offset or timestamp for `from`.
    pub from_value: Option<i64>,
    /// Broadcast mode: only these partitions of each topic.
    pub partitions: Option<Vec<u32>>,
    /// Bytes the broker may push ahead of the application, per topic.
    pub credit_bytes: Option<u32>,
    pub check_crcs: Option<bool>,
    /// A `filter` plugin the broker runs on every read of this consumer.
    pub filter: Option<FilterJs>,
}

/// A filter plugin and its parameters (passed to the plugin's `init`).
#[napi(object)]
pub struct FilterJs {
    pub name: String,
    pub params: Option<HashMap<String, String>>,
}

impl ConsumerOptionsJs {
    fn into_sdk(self) -> napi::Result<ConsumerOptions> {
        if self.topics.is_empty() {
            return Err(invalid("a consumer needs at least one topic"));
        }
        let mut o = ConsumerOptions::new(self.topics);
        if let Some(group) = self.group {
            o = o.group(group);
        }
        if let Some(id) = self.instance_id {
            o = o.instance_id(id);
        }
        if let Some(ms) = self.session_timeout_ms {
            o = o.session_timeout_ms(ms.into());
        }
        if let Some(reset) = self.auto_offset_reset {
            o = o.auto_offset_reset(match reset.as_str() {
                "earliest" => OffsetReset::Earliest,
                "latest" => OffsetReset::Latest,
                "none" => OffsetReset::None,
                other => {
                    return Err(invalid(format!(
                        "autoOffsetReset must be earliest, latest or none, not `{other}`"
                    )));
                }
            });
        }
        if let Some(ms) = self.auto_commit_interval_ms {
            o = o.auto_commit_interval_ms((ms > 0).then_some(ms.into()));
        }
        if let Some(assignor) = self.assignor {
            o = o.assignor(match assignor.as_str() {
                "sticky" => Assignor::Sticky,
                "range" => Assignor::Range,
                "roundrobin" => Assignor::RoundRobin,
                other => {
                    return Err(invalid(format!(
                        "assignor must be sticky, range or roundrobin, not `{other}`"
                    )));
                }
            });
        }
        if let Some(from) = self.from {
            o = o.start(start_from(&from, self.from_value)?);
        }
        if let Some(filter) = self.filter {
            if filter.name.is_empty() {
                return Err(invalid("a filter needs the name of an uploaded plugin"));
            }
            o = o.filter(filter.name, filter.params.unwrap_or_default());
        }
        if let Some(partitions) = self.partitions {
            o = o.partitions(partitions);
        }
        if let Some(bytes) = self.credit_bytes {
            o = o.credit_bytes(bytes.into());
        }
        if let Some(check) = self.check_crcs {
            o = o.check_crcs(check);
        }
        Ok(o)
    }
}

#[napi(object)]
pub struct HeaderOut {
    pub key: String,
    pub value: Option<Buffer>,
}

#[napi(object)]
pub struct RecordOut {
    pub topic: String,
    pub partition: u32,
    pub offset: f64,
    pub timestamp: f64,
    pub key: Option<Buffer>,
    pub value: Option<Buffer>,
    pub headers: Vec<HeaderOut>,
}

impl From<sluice_client::Record> for RecordOut {
    fn from(r: sluice_client::Record) -> Self {
        RecordOut {
            topic: r.topic.to_string(),
            partition: r.partition,
            offset: r.offset as f64,
            timestamp: r.timestamp as f64,
            key: r.key.map(|b| Buffer::from(b.to_vec())),
            value: r.value.map(|b| Buffer::from(b.to_vec())),
            headers: r
                .headers
                .into_iter()
                .map(|h| HeaderOut {
                    key: h.key,
                    value: h.value.map(|b| Buffer::from(b.to_vec())),
                })
                .collect(),
        }
    }
}

/// A (topic, partition, offset) triple.
#[napi(object)]
pub struct TopicPartitionOffset {
    pub topic: String,
    pub partition: u32,
    /// For commits: the next offset to consume.
    pub offset: f64,
}

#[napi(object)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

struct Shared {
    consumer: Mutex<Option<Consumer>>,
    /// Wakes a waiting `nextBatch` so that another call gets the consumer.
    interrupt: Notify,
}

impl Shared {
    /// The consumer, after waking whoever waits with it.
    async fn take_turn(&self) -> tokio::sync::MutexGuard<'_, Option<Consumer>> {
        self.interrupt.notify_one();
        self.consumer.lock().await
    }
}

fn closed() -> napi::Error {
    js_error("closed", "", false, "the consumer is closed")
}

/// A consumer: see the [module docs](self).
#[napi]
pub struct NativeConsumer {
    shared: Arc<Shared>,
}

impl NativeConsumer {
    pub async fn start(client: &Client, options: ConsumerOptionsJs) -> napi::Result<Self> {
        let consumer = client.consumer(options.into_sdk()?).await.js()?;
        Ok(NativeConsumer {
            shared: Arc::new(Shared {
                consumer: Mutex::new(Some(consumer)),
                interrupt: Notify::new(),
            }),
        })
    }
}

#[napi]
impl NativeConsumer {
    /// Waits (up to `timeoutMs`, default without limit) for a first record, then takes up to
    /// `max` records that are at hand. Resolves with no records on timeout or when another
    /// call needs the consumer, and with `null` once the consumer is closed.
    #[napi]
    pub async fn next_batch(
        &self,
        max: u32,
        timeout_ms: Option<u32>,
    ) -> napi::Result<Option<Vec<RecordOut>>> {
        let max = max.clamp(1, MAX_BATCH) as usize;
        let shared = self.shared.clone();
        let mut guard = shared.consumer.lock().await;
        let Some(consumer) = guard.as_mut() else {
            return Ok(None);
        };
        let wait = async {
            match timeout_ms {
                Some(ms) => tokio::time::sleep(Duration::from_millis(ms.into())).await,
                None => std::future::pending().await,
            }
        };
        let first = tokio::select! {
            record = consumer.next() => record,
            () = shared.interrupt.notified() => return Ok(Some(Vec::new())),
            () = wait => return Ok(Some(Vec::new())),
        };
        let mut out = Vec::new();
        match first {
            None => return Ok(None),
            Some(record) => out.push(RecordOut::from(record.js()?)),
        }
        while out.len() < max {
            match consumer.next().now_or_never() {
                Some(Some(Ok(record))) => out.push(record.into()),
                // An error is reported by the next call: the records taken are kept.
                _ => break,
            }
        }
        Ok(Some(out))
    }

    /// Moves a partition's position: the next record from it is the one at `offset`.
    #[napi]
    pub async fn seek(&self, topic: String, partition: u32, offset: f64) -> napi::Result<()> {
        if !offset.is_finite() || offset < 0.0 || offset.fract() != 0.0 {
            return Err(invalid(format!("bad offset {offset}")));
        }
        let mut guard = self.shared.take_turn().await;
        let consumer = guard.as_mut().ok_or_else(closed)?;
        consumer.seek(&topic, partition, offset as u64).js()
    }

    /// Group mode: commits these next-offsets-to-consume, or without any, the position of
    /// every partition the consumer reads.
    #[napi]
    pub async fn commit(&self, offsets: Option<Vec<TopicPartitionOffset>>) -> napi::Result<()> {
        let mut guard = self.shared.take_turn().await;
        let consumer = guard.as_mut().ok_or_else(closed)?;
        match offsets {
            None => consumer.commit().await.js(),
            Some(offsets) => {
                let triples: Vec<(&str, u32, u64)> = offsets
                    .iter()
                    .map(|o| (o.topic.as_str(), o.partition, o.offset as u64))
                    .collect();
                consumer.commit_offsets(&triples).await.js()
            }
        }
    }

    /// The partitions this consumer reads (in group mode, those assigned to it).
    #[napi]
    pub async fn assignment(&self) -> napi::Result<Vec<TopicPartition>> {
        let guard = self.shared.take_turn().await;
        let consumer = guard.as_ref().ok_or_else(closed)?;
        Ok(consumer
            .assignment()
            .into_iter()
            .map(|(topic, partition)| TopicPartition { topic, partition })
            .collect())
    }

    /// Stops reading these partitions (their records already taken are still yielded) until
    /// `resume`; in a group the consumer keeps them.
    #[napi]
    pub async fn pause(&self, partitions: Vec<TopicPartition>) -> napi::Result<()> {
        let mut guard = self.shared.take_turn().await;
        let consumer = guard.as_mut().ok_or_else(closed)?;
        let list: Vec<(&str, u32)> = partitions
            .iter()
            .map(|tp| (tp.topic.as_str(), tp.partition))
            .collect();
        consumer.pause(&list).js()
    }

    /// Reads paused partitions again, from where they were.
    #[napi]
    pub async fn resume(&self, partitions: Vec<TopicPartition>) -> napi::Result<()> {
        let mut guard = self.shared.take_turn().await;
        let consumer = guard.as_mut().ok_or_else(closed)?;
        let list: Vec<(&str, u32)> = partitions
            .iter()
            .map(|tp| (tp.topic.as_str(), tp.partition))
            .collect();
        consumer.resume(&list).js()
    }

    /// The paused partitions.
    #[napi]
    pub async fn paused(&self) -> napi::Result<Vec<TopicPartition>> {
        let guard = self.shared.take_turn().await;
        let consumer = guard.as_ref().ok_or_else(closed)?;
        Ok(consumer
            .paused()
            .into_iter()
            .map(|(topic, partition)| TopicPartition { topic, partition })
            .collect())
    }

    /// The next offset this consumer yields from each partition it reads.
    #[napi]
    pub async fn positions(&self) -> napi::Result<Vec<TopicPartitionOffset>> {
        let guard = self.shared.take_turn().await;
        let consumer = guard.as_ref().ok_or_else(closed)?;
        let mut out = Vec::new();
        for (topic, partition) in consumer.assignment() {
            if let Some(offset) = consumer.position(&topic, partition) {
                out.push(TopicPartitionOffset {
                    topic,
                    partition,
                    offset: offset as f64,
                });
            }
        }
        Ok(out)
    }

    /// Ends the subscriptions; in group mode commits (with automatic commits) and leaves the
    /// group. Pending and later `nextBatch` calls resolve with `null`. Closing twice is fine.
    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        let consumer = self.shared.take_turn().await.take();
        match consumer {
            Some(consumer) => consumer.close().await.js(),
            None => Ok(()),
        }
    }
}
