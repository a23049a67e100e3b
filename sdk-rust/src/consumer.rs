//! [`Consumer`]: reads topics through broker subscriptions, under credit-based flow control.
//!
//! The broker pushes record batches of the subscribed partitions as they arrive, but only
//! while the subscription has byte credit; the consumer grants credit back as the application
//! takes records. So a consumer that is not polled stops receiving: what it holds in memory is
//! bounded by `credit_bytes` (per topic) plus one batch per partition (a push may overshoot the
//! credit by one batch).
//!
//! Records are decoded one batch at a time, when the application reaches them; keys and values
//! share the memory of the batch they came in.
//!
//! The consumer keeps a position per partition: the offset of the next record it will yield.
//! When the connection is lost, or after [`Consumer::seek`], it subscribes again from those
//! positions, so the application sees neither gaps nor duplicates (retention may still delete
//! records a slow consumer had not read: it then continues from the first offset left).
//!
//! Without [`ConsumerOptions::group`] a consumer reads every partition of its topics itself
//! and commits nothing (the "broadcast" mode). With a group it is a member of a consumer group
//! (docs/PROTOCOL.md §9): a background task joins, heartbeats and leaves; the broker decides
//! which partitions the consumer reads ([`Consumer::assignment`], changes observable through
//! [`Consumer::rebalance_events`]), each new partition starts at the group's committed offset
//! (else per [`ConsumerOptions::auto_offset_reset`]), and positions are committed every
//! `auto_commit_interval_ms`, when partitions are revoked and on [`Consumer::close`] — or
//! only by [`Consumer::commit`] / [`Consumer::commit_offsets`]. Assignment changes are applied
//! while the consumer is polled. A consumer that loses its membership (fenced, session
//! expired, reconnected) drops its partitions without committing and joins again: records
//! after the last commit may then be read twice.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, Stream, StreamExt};
use sluice_protocol::frame::{self, ClientFrame, Delivery, Request, Response};
use sluice_protocol::types::{FilterSpec, MapSpec, OffsetCommit, RecordOffset, StartFrom};
use sluice_record::Batch;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::admin::unexpected;
use crate::client::{Backoff, Client};
use crate::conn::{SubEvent, SubSink};
use crate::error::{Error, Result};
use crate::group::{self, Assignor, Cmd, GroupConfig, GroupEvent, OffsetReset, Rebalance};
use crate::record::{Header, Record};

/// Beyond this many distinct positions in one topic, the consumer subscribes once from the
/// smallest and skips what it has already seen, rather than holding one subscription per
/// position (a connection may hold 64 subscriptions).
const MAX_SUBSCRIPTIONS_PER_TOPIC: usize = 8;

/// Smallest credit window of one subscription.
const MIN_WINDOW_BYTES: u64 = 64 << 10;

/// Consumer settings.
///
/// ```
/// use sluice_client::{ConsumerOptions, StartFrom};
///
/// let options = ConsumerOptions::new(["orders", "payments"])
///     .start(StartFrom::Earliest)
///     .credit_bytes(4 << 20);
/// ```
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    topics: Vec<String>,
    start: StartFrom,
    partitions: Option<Vec<u32>>,
    credit_bytes: u64,
    check_crcs: bool,
    group: Option<String>,
    instance_id: Option<String>,
    session_timeout_ms: Option<u64>,
    auto_offset_reset: OffsetReset,
    auto_commit_interval_ms: Option<u64>,
    assignor: Assignor,
    filter: Option<FilterSpec>,
    map: Option<MapSpec>,
}

impl ConsumerOptions {
    /// Reads `topics`, every partition, from the latest offset (only new records), with an
    /// 8 MiB credit window per topic.
    pub fn new<I, S>(topics: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ConsumerOptions {
            topics: topics.into_iter().map(Into::into).collect(),
            start: StartFrom::Latest,
            partitions: None,
            credit_bytes: 8 << 20,
            check_crcs: true,
            group: None,
            instance_id: None,
            session_timeout_ms: None,
            auto_offset_reset: OffsetReset::Latest,
            auto_commit_interval_ms: Some(5000),
            assignor: Assignor::Sticky,
            filter: None,
            map: None,
        }
    }

    /// Runs the uploaded `filter` plugin `name` in the broker on every subscription of this
    /// consumer, with `params` passed once to the plugin's `init`: only the records it keeps
    /// are sent. Positions still move past the records it drops, so a group consumer commits
    /// past them and a consumer that resumes (after a reconnect, a rebalance, a restart from
    /// committed offsets) does not read them again. Works in broadcast and group mode.
    ///
    /// An unknown plugin fails [`Client::consumer`] (broadcast mode) or the stream (group
    /// mode) with the broker code `unknown_plugin`; refused parameters with
    /// `invalid_plugin`; a plugin that fails while running (trap, timeout) with
    /// `plugin_failed`.
    ///
    /// ```no_run
    /// use futures_util::StreamExt;
    /// use sluice_client::{Client, ConsumerOptions, StartFrom};
    ///
    /// # async fn run() -> sluice_client::Result<()> {
    /// let client = Client::connect("http://127.0.0.1:9400").await?;
    /// // `grep` was uploaded before: `sluice plugin upload grep keyword_filter.wasm`.
    /// let mut errors = client
    ///     .consumer(
    ///         ConsumerOptions::new(["logs"])
    ///             .start(StartFrom::Earliest)
    ///             .filter("grep", [("keyword", "ERROR")]),
    ///     )
    ///     .await?;
    /// while let Some(record) = errors.next().await {
    ///     println!("{:?}", record?.value);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn filter<I, K, V>(mut self, name: impl Into<String>, params: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.filter = Some(FilterSpec {
            plugin: name.into(),
            params: params
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        });
        self
    }

    /// The filter set with [`ConsumerOptions::filter`]: plugin name and parameters.
    pub fn filter_spec(&self) -> Option<(&str, &BTreeMap<String, String>)> {
        self.filter.as_ref().map(|f| (f.plugin.as_str(), &f.params))
    }

    /// Runs the uploaded `map` plugin `name` in the broker on every subscription of this
    /// consumer, with `params` passed once to the plugin's `init`: each record arrives with
    /// the key, value and headers the plugin answered (after the filter, if there is one).
    /// Offsets and timestamps are the stored ones, so commits and resumes (after a reconnect,
    /// a rebalance, a restart from committed offsets) work as without a map. Works in
    /// broadcast and group mode.
    ///
    /// An unknown plugin fails [`Client::consumer`] (broadcast mode) or the stream (group
    /// mode) with the broker code `unknown_plugin`; a plugin of another kind or refused
    /// parameters with `invalid_plugin`; a map that fails while running (trap, timeout, an
    /// answer the broker refuses) with `plugin_failed`, naming the plugin and the offset.
    ///
    /// ```no_run
    /// use futures_util::StreamExt;
    /// use sluice_client::{Client, ConsumerOptions, StartFrom};
    ///
    /// # async fn run() -> sluice_client::Result<()> {
    /// let client = Client::connect("http://127.0.0.1:9400").await?;
    /// // `tag` was uploaded before: `sluice plugin upload tag tag_map.wasm`.
    /// let mut shouting = client
    ///     .consumer(
    ///         ConsumerOptions::new(["logs"])
    ///             .start(StartFrom::Earliest)
    ///             .map("tag", [("value", "upper")]),
    ///     )
    ///     .await?;
    /// while let Some(record) = shouting.next().await {
    ///     println!("{:?}", record?.value);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn map<I, K, V>(mut self, name: impl Into<String>, params: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.map = Some(MapSpec {
            plugin: name.into(),
            params: params
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        });
        self
    }

    /// The map set with [`ConsumerOptions::map`]: plugin name and parameters.
    pub fn map_spec(&self) -> Option<(&str, &BTreeMap<String, String>)> {
        self.map.as_ref().map(|m| (m.plugin.as_str(), &m.params))
    }

    /// Consumes as a member of consumer group `group` (docs/PROTOCOL.md §9): the broker
    /// shares the topics' partitions among the group's members, and each partition starts at
    /// the group's committed offset (else where [`ConsumerOptions::auto_offset_reset`] says).
    /// [`ConsumerOptions::start`] and [`ConsumerOptions::partitions`] are then ignored.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Makes the group member static: a member joining with the same id takes over its
    /// partitions (and fences this one).
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }

    /// How long the broker waits for a heartbeat before it removes the member (default: the
    /// broker's, 45 s). The heartbeat interval is at most a third of it.
    pub fn session_timeout_ms(mut self, ms: u64) -> Self {
        self.session_timeout_ms = Some(ms);
        self
    }

    /// Where to start a partition the group has no committed offset for (default
    /// [`OffsetReset::Latest`]).
    pub fn auto_offset_reset(mut self, reset: OffsetReset) -> Self {
        self.auto_offset_reset = reset;
        self
    }

    /// Commit positions every `ms` (default `Some(5000)`), when partitions are revoked and on
    /// [`Consumer::close`]; `None` commits only on [`Consumer::commit`] and
    /// [`Consumer::commit_offsets`].
    pub fn auto_commit_interval_ms(mut self, ms: Option<u64>) -> Self {
        self.auto_commit_interval_ms = ms;
        self
    }

    /// The assignor asked for when this member is the group's first (default sticky).
    pub fn assignor(mut self, assignor: Assignor) -> Self {
        self.assignor = assignor;
        self
    }

    /// Where to start in every partition (default [`StartFrom::Latest`]): the earliest
    /// offset, the latest, an offset (clamped into what the partition holds) or the first
    /// record at or after a timestamp (ms).
    pub fn start(mut self, start: StartFrom) -> Self {
        self.start = start;
        self
    }

    /// Reads only these partitions of each topic (default: all of them).
    pub fn partitions(mut self, partitions: Vec<u32>) -> Self {
        self.partitions = Some(partitions);
        self
    }

    /// Bytes of record batches the broker may push ahead of the application, per topic
    /// (default 8 MiB). Larger windows keep throughput up over slow links; smaller ones use
    /// less memory.
    pub fn credit_bytes(mut self, bytes: u64) -> Self {
        self.credit_bytes = bytes.max(1);
        self
    }

    /// Whether to verify each batch's CRC-32C and structure before reading it (default
    /// true).
    pub fn check_crcs(mut self, check: bool) -> Self {
        self.check_crcs = check;
        self
    }
}

/// Reads records of one or more topics as a [`Stream`]; see the [module docs](self).
///
/// ```no_run
/// use futures_util::StreamExt;
/// use sluice_client::{Client, ConsumerOptions, StartFrom};
///
/// # async fn run() -> sluice_client::Result<()> {
/// let client = Client::connect("http://127.0.0.1:9400").await?;
/// let mut consumer = client
///     .consumer(ConsumerOptions::new(["orders"]).start(StartFrom::Earliest))
///     .await?;
/// while let Some(record) = consumer.next().await {
///     let record = record?;
///     println!("{}/{}@{}: {:?}", record.topic, record.partition, record.offset, record.value);
/// }
/// # Ok(()) }
/// ```
pub struct Consumer {
    client: Client,
    options: ConsumerOptions,
    events: mpsc::UnboundedReceiver<SubEvent>,
    sink: SubSink,
    topics: BTreeMap<Arc<str>, TopicState>,
    /// Live subscriptions by (connection generation, subscription id).
    subs: HashMap<(u64, u64), Sub>,
    /// Subscriptions to make, in order.
    todo: VecDeque<Planned>,
    /// The subscribe in progress.
    op: Option<Pin<Box<dyn Future<Output = Result<Subscribed>> + Send>>>,
    op_plan: Option<Planned>,
    /// Pushes for subscriptions not known yet (their subscribe answer is being processed).
    limbo: Vec<SubEvent>,
    /// Events taken out of limbo, handled before new ones.
    replay: VecDeque<SubEvent>,
    /// Delay before subscribing again after the broker ended a subscription; grows while
    /// subscriptions keep failing, resets when records flow.
    failures: Backoff,
    current: Option<Current>,
    ready: VecDeque<Record>,
    errors: VecDeque<Error>,
    /// Group mode only.
    group: Option<GroupMode>,
    /// Partitions not read until resumed (their positions are kept).
    paused: BTreeSet<(Arc<str>, u32)>,
}

struct GroupMode {
    cmds: mpsc::UnboundedSender<Cmd>,
    events: mpsc::UnboundedReceiver<GroupEvent>,
    incarnation: u64,
    rebalances: Option<mpsc::UnboundedSender<Rebalance>>,
    auto_commit: Option<tokio::time::Interval>,
    /// Last positions committed (or sent to be).
    committed: HashMap<(Arc<str>, u32), u64>,
    paused: Arc<AtomicBool>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("topics", &self.options.topics)
            .field("subscriptions", &self.subs.len())
            .field("buffered_bytes", &self.buffered_bytes())
            .finish_non_exhaustive()
    }
}

struct TopicState {
    /// Position (next offset to yield) per assigned partition.
    positions: BTreeMap<u32, u64>,
    /// Bumped whenever the topic's subscriptions are replaced, so that answers to older
    /// subscribes are recognised and undone.
    epoch: u64,
}

struct Sub {
    topic: Arc<str>,
    partitions: Vec<u32>,
    window: u64,
    /// Bytes consumed and not yet granted back.
    ungranted: u64,
}

#[derive(Clone)]
struct Planned {
    topic: Arc<str>,
    partitions: Option<Vec<u32>>,
    from: StartFrom,
    /// Whether `from` is each partition's own position (else the smallest of several, and
    /// records below each partition's position are skipped).
    exact: bool,
    window: u64,
    epoch: u64,
    /// Wait before subscribing.
    delay: Duration,
    /// Explicit start per partition (group mode).
    positions: Option<Vec<RecordOffset>>,
    filter: Option<FilterSpec>,
    map: Option<MapSpec>,
}

struct Subscribed {
    generation: u64,
    subscription: u64,
    positions: Vec<RecordOffset>,
}

/// The push being read.
struct Current {
    key: (u64, u64),
    topic: Arc<str>,
    partition: u32,
    batches: Bytes,
    at: usize,
    next_offset: u64,
    bytes: u64,
}

impl Consumer {
    pub(crate) async fn new(client: Client, options: ConsumerOptions) -> Result<Consumer> {
        if options.topics.is_empty() {
            return Err(Error::InvalidInput(
                "a consumer needs at least one topic".into(),
            ));
        }
        let (tx, events) = mpsc::unbounded_channel();
        let sink = SubSink {
            tx,
            buffered_bytes: Arc::new(AtomicU64::new(0)),
        };
        let mut consumer = Consumer {
            failures: client.options().backoff(),
            client,
            options,
            events,
            sink,
            topics: BTreeMap::new(),
            subs: HashMap::new(),
            todo: VecDeque::new(),
            op: None,
            op_plan: None,
            limbo: Vec::new(),
            replay: VecDeque::new(),
            current: None,
            ready: VecDeque::new(),
            errors: VecDeque::new(),
            group: None,
            paused: BTreeSet::new(),
        };
        if let Some(group_id) = consumer.options.group.clone() {
            let mut topics = consumer.options.topics.clone();
            topics.sort();
            topics.dedup();
            for topic in &topics {
                consumer.topics.insert(
                    Arc::from(topic.as_str()),
                    TopicState {
                        positions: BTreeMap::new(),
                        epoch: 0,
                    },
                );
            }
            let (events_tx, events) = mpsc::unbounded_channel();
            let paused = Arc::new(AtomicBool::new(false));
            let config = GroupConfig {
                group: group_id,
                topics,
                instance_id: consumer.options.instance_id.clone(),
                session_timeout_ms: consumer.options.session_timeout_ms,
                reset: consumer.options.auto_offset_reset,
                assignor: consumer.options.assignor,
            };
            let cmds =
                group::start(consumer.client.clone(), config, events_tx, paused.clone()).await?;
            let auto_commit = consumer.options.auto_commit_interval_ms.map(|ms| {
                let period = Duration::from_millis(ms.max(1));
                let mut i = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                i
            });
            consumer.group = Some(GroupMode {
                cmds,
                events,
                incarnation: 0,
                rebalances: None,
                auto_commit,
                committed: HashMap::new(),
                paused,
            });
            return Ok(consumer);
        }
        let mut topics: Vec<String> = consumer.options.topics.clone();
        topics.sort();
        topics.dedup();
        for topic in topics {
            let topic: Arc<str> = Arc::from(topic);
            consumer.topics.insert(
                topic.clone(),
                TopicState {
                    positions: BTreeMap::new(),
                    epoch: 0,
                },
            );
            let plan = Planned {
                topic,
                partitions: consumer.options.partitions.clone(),
                from: consumer.options.start,
                exact: true,
                window: consumer.options.credit_bytes,
                epoch: 0,
                delay: Duration::ZERO,
                positions: None,
                filter: consumer.options.filter.clone(),
                map: consumer.options.map.clone(),
            };
            match subscribe(&consumer.client, &consumer.sink, &plan).await {
                Ok(s) => consumer.apply(plan, Ok(s)),
                Err(e) => {
                    consumer.unsubscribe_all();
                    return Err(e);
                }
            }
        }
        Ok(consumer)
    }

    /// The offset of the next record this consumer will yield from a partition, or `None` if
    /// it does not read that partition.
    pub fn position(&self, topic: &str, partition: u32) -> Option<u64> {
        self.topics
            .get(topic)
            .and_then(|t| t.positions.get(&partition).copied())
    }

    /// The (topic, partition) pairs this consumer reads.
    pub fn assignment(&self) -> Vec<(String, u32)> {
        self.topics
            .iter()
            .flat_map(|(t, s)| s.positions.keys().map(move |p| (t.to_string(), *p)))
            .collect()
    }

    /// Moves a partition's position: the next record yielded from it is the one at `offset`
    /// (or, if the partition no longer or not yet holds it, the nearest the broker has). Takes
    /// effect at the next poll, which subscribes again.
    pub fn seek(&mut self, topic: &str, partition: u32, offset: u64) -> Result<()> {
        let Some(state) = self.topics.get_mut(topic) else {
            return Err(Error::InvalidInput(format!(
                "this consumer does not read topic `{topic}`"
            )));
        };
        let Some(position) = state.positions.get_mut(&partition) else {
            return Err(Error::InvalidInput(format!(
                "this consumer does not read partition {partition} of `{topic}`"
            )));
        };
        *position = offset;
        let topic: Arc<str> = self
            .topics
            .get_key_value(topic)
            .map(|(k, _)| k.clone())
            .expect("found above");
        self.resubscribe(&topic, Duration::ZERO);
        Ok(())
    }

    /// Stops reading these (topic, partition) pairs until [`Consumer::resume`]: the broker
    /// stops pushing them (their subscriptions are replaced by ones without them, at the next
    /// poll), records of them already received and not yet yielded are let go, and their
    /// positions stay where the application is, so resuming continues with the next record.
    /// In group mode a paused partition stays assigned (and its position is committed as
    /// usual); a partition revoked while paused is no longer paused when assigned again.
    ///
    /// Fails with [`Error::InvalidInput`], pausing nothing, when the consumer does not read
    /// one of the partitions. Pausing a paused partition does nothing.
    ///
    /// ```no_run
    /// use futures_util::StreamExt;
    /// use sluice_client::{Client, ConsumerOptions, StartFrom};
    ///
    /// # async fn run() -> sluice_client::Result<()> {
    /// let client = Client::connect("http://127.0.0.1:9400").await?;
    /// let mut consumer = client
    ///     .consumer(ConsumerOptions::new(["orders"]).start(StartFrom::Earliest))
    ///     .await?;
    /// consumer.pause(&[("orders", 0)])?;
    /// // ... records of orders/0 wait in the broker meanwhile ...
    /// consumer.resume(&[("orders", 0)])?;
    /// assert!(consumer.paused().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn pause(&mut self, partitions: &[(&str, u32)]) -> Result<()> {
        let keys = self.owned_keys(partitions)?;
        let mut touched = BTreeSet::new();
        for key in keys {
            if self.paused.insert(key.clone()) {
                touched.insert(key.0);
            }
        }
        for topic in &touched {
            self.resubscribe(topic, Duration::ZERO);
        }
        Ok(())
    }

    /// Reads these paused partitions again, from their positions. Fails with
    /// [`Error::InvalidInput`], resuming nothing, when the consumer does not read one of
    /// them; resuming a partition that is not paused does nothing.
    pub fn resume(&mut self, partitions: &[(&str, u32)]) -> Result<()> {
        let keys = self.owned_keys(partitions)?;
        let mut touched = BTreeSet::new();
        for key in keys {
            if self.paused.remove(&key) {
                touched.insert(key.0);
            }
        }
        for topic in &touched {
            self.resubscribe(topic, Duration::ZERO);
        }
        Ok(())
    }

    /// The partitions paused with [`Consumer::pause`], by topic and partition.
    pub fn paused(&self) -> Vec<(String, u32)> {
        self.paused
            .iter()
            .map(|(t, p)| (t.to_string(), *p))
            .collect()
    }

    /// The consumer's own keys for `partitions`, or an error naming one it does not read.
    fn owned_keys(&self, partitions: &[(&str, u32)]) -> Result<Vec<(Arc<str>, u32)>> {
        partitions
            .iter()
            .map(
                |(topic, partition)| match self.topics.get_key_value(*topic) {
                    Some((key, state)) if state.positions.contains_key(partition) => {
                        Ok((key.clone(), *partition))
                    }
                    _ => Err(Error::InvalidInput(format!(
                        "this consumer does not read partition {partition} of `{topic}`"
                    ))),
                },
            )
            .collect()
    }

    /// Bytes of pushed batches received and not yet consumed by the application: what the
    /// consumer holds in memory. Flow control keeps it near `credit_bytes` per topic at most.
    pub fn buffered_bytes(&self) -> u64 {
        self.sink.buffered_bytes.load(Ordering::Relaxed)
    }

    /// Waits up to `timeout` for a first record, then takes up to `max` records that are
    /// already at hand without waiting further. Returns an empty vector if none came in time.
    pub async fn poll_batch(&mut self, max: usize, timeout: Duration) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        match tokio::time::timeout(timeout, self.next()).await {
            Err(_) | Ok(None) => return Ok(out),
            Ok(Some(Err(e))) => return Err(e),
            Ok(Some(Ok(record))) => out.push(record),
        }
        while out.len() < max {
            match self.next().now_or_never() {
                Some(Some(Ok(record))) => out.push(record),
                Some(Some(Err(e))) => {
                    // Reported by the next call.
                    self.errors.push_front(e);
                    break;
                }
                _ => break,
            }
        }
        Ok(out)
    }

    /// Ends every subscription; in group mode then commits the positions (with auto-commit)
    /// and leaves the group. Dropping the consumer ends the subscriptions and leaves without
    /// committing or waiting.
    pub async fn close(mut self) -> Result<()> {
        let subs: Vec<(u64, u64)> = self.subs.keys().copied().collect();
        self.subs.clear();
        for (generation, subscription) in subs {
            if self.client.generation() != Some(generation) {
                continue;
            }
            let _ = self
                .client
                .request(Request::Unsubscribe { subscription })
                .await;
        }
        // Take in assignment changes that came meanwhile, so that only owned positions are
        // committed.
        self.drain_group_events();
        if self.group.is_some() {
            let offsets = if self.options.auto_commit_interval_ms.is_some() {
                self.offsets_to_commit(true)
            } else {
                Vec::new()
            };
            let g = self.group.as_ref().expect("checked");
            let (reply, answer) = tokio::sync::oneshot::channel();
            let _ = g.cmds.send(Cmd::Close {
                incarnation: g.incarnation,
                offsets,
                reply,
            });
            return answer.await.unwrap_or(Err(Error::Closed));
        }
        Ok(())
    }

    /// Group mode: a receiver of the consumer's partition changes, as the consumer applies
    /// them (while it is polled). Only the first call gets one; later calls, and calls in
    /// broadcast mode, get `None`.
    pub fn rebalance_events(&mut self) -> Option<mpsc::UnboundedReceiver<Rebalance>> {
        let g = self.group.as_mut()?;
        if g.rebalances.is_some() {
            return None;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        g.rebalances = Some(tx);
        Some(rx)
    }

    /// Group mode: commits the position of every partition the consumer reads (the offset
    /// of the next record it will yield), as this member. Returns once the broker stored them.
    pub async fn commit(&mut self) -> Result<()> {
        self.drain_group_events();
        let offsets = self.offsets_to_commit(true);
        self.send_commit(offsets).await
    }

    /// Group mode: commits these (topic, partition, next offset to consume) triples as this
    /// member.
    pub async fn commit_offsets(&mut self, offsets: &[(&str, u32, u64)]) -> Result<()> {
        let offsets = offsets
            .iter()
            .map(|(topic, partition, offset)| OffsetCommit {
                topic: topic.to_string(),
                partition: *partition,
                offset: *offset,
                metadata: String::new(),
            })
            .collect();
        self.send_commit(offsets).await
    }

    async fn send_commit(&mut self, offsets: Vec<OffsetCommit>) -> Result<()> {
        let Some(g) = &self.group else {
            return Err(Error::InvalidInput(
                "commit needs a consumer in group mode (ConsumerOptions::group)".into(),
            ));
        };
        if offsets.is_empty() {
            return Ok(());
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        g.cmds
            .send(Cmd::Commit {
                incarnation: g.incarnation,
                offsets,
                reply: Some(reply),
            })
            .map_err(|_| Error::Closed)?;
        answer.await.unwrap_or(Err(Error::Closed))
    }

    /// Test hook: stops (or resumes) the group heartbeats, so that the session expires.
    #[doc(hidden)]
    pub fn pause_heartbeats(&self, paused: bool) {
        if let Some(g) = &self.group {
            g.paused.store(paused, Ordering::Relaxed);
        }
    }

    /// Positions to commit: all (`all`) or those that moved since the last commit.
    fn offsets_to_commit(&mut self, all: bool) -> Vec<OffsetCommit> {
        let Some(g) = self.group.as_mut() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (topic, state) in &self.topics {
            for (p, pos) in &state.positions {
                let key = (topic.clone(), *p);
                if !all && g.committed.get(&key) == Some(pos) {
                    continue;
                }
                g.committed.insert(key, *pos);
                out.push(OffsetCommit {
                    topic: topic.to_string(),
                    partition: *p,
                    offset: *pos,
                    metadata: String::new(),
                });
            }
        }
        out
    }

    fn drain_group_events(&mut self) {
        while let Some(event) = self.group.as_mut().and_then(|g| g.events.try_recv().ok()) {
            self.group_event(event);
        }
    }

    /// Group mode: applies assignment changes and auto-commits.
    fn poll_group(&mut self, cx: &mut Context<'_>) {
        loop {
            let Some(g) = self.group.as_mut() else {
                return;
            };
            match g.events.poll_recv(cx) {
                Poll::Ready(Some(event)) => self.group_event(event),
                _ => break,
            }
        }
        let Some(g) = self.group.as_mut() else {
            return;
        };
        let mut tick = false;
        if let Some(i) = g.auto_commit.as_mut() {
            while i.poll_tick(cx).is_ready() {
                tick = true;
            }
        }
        if tick {
            let offsets = self.offsets_to_commit(false);
            if !offsets.is_empty() {
                let g = self.group.as_ref().expect("checked");
                let _ = g.cmds.send(Cmd::Commit {
                    incarnation: g.incarnation,
                    offsets,
                    reply: None,
                });
            }
        }
    }

    fn group_event(&mut self, event: GroupEvent) {
        match event {
            GroupEvent::Error(e) => self.errors.push_back(e),
            GroupEvent::Lost { incarnation } => {
                let all: Vec<(String, u32)> = self.assignment();
                let topics: Vec<Arc<str>> = self.topics.keys().cloned().collect();
                for state in self.topics.values_mut() {
                    state.positions.clear();
                }
                self.paused.clear();
                for topic in &topics {
                    self.resubscribe(topic, Duration::ZERO);
                }
                let g = self.group.as_mut().expect("group mode");
                g.incarnation = incarnation;
                g.committed.clear();
                if !all.is_empty()
                    && let Some(tx) = &g.rebalances
                {
                    let _ = tx.send(Rebalance::Revoked(all));
                }
            }
            GroupEvent::Assignment {
                incarnation,
                assignment,
                starts,
            } => {
                let current: BTreeSet<(String, u32)> = self.assignment().into_iter().collect();
                let revoked: Vec<(String, u32)> =
                    current.difference(&assignment).cloned().collect();
                let added: Vec<(String, u32)> = assignment
                    .difference(&current)
                    .filter(|tp| starts.contains_key(*tp))
                    .cloned()
                    .collect();
                let mut offsets = Vec::new();
                let mut touched: BTreeSet<Arc<str>> = BTreeSet::new();
                for (topic, p) in &revoked {
                    let key = self
                        .topics
                        .get_key_value(topic.as_str())
                        .map(|(k, _)| k.clone());
                    if let Some(key) = key
                        && let Some(pos) = self
                            .topics
                            .get_mut(&key)
                            .and_then(|state| state.positions.remove(p))
                    {
                        offsets.push(OffsetCommit {
                            topic: topic.clone(),
                            partition: *p,
                            offset: pos,
                            metadata: String::new(),
                        });
                        touched.insert(key.clone());
                        self.paused.remove(&(key.clone(), *p));
                    }
                }
                for tp in &added {
                    let topic: Arc<str> = match self.topics.get_key_value(tp.0.as_str()) {
                        Some((k, _)) => k.clone(),
                        None => {
                            let k: Arc<str> = Arc::from(tp.0.as_str());
                            self.topics.insert(
                                k.clone(),
                                TopicState {
                                    positions: BTreeMap::new(),
                                    epoch: 0,
                                },
                            );
                            k
                        }
                    };
                    let state = self.topics.get_mut(&topic).expect("inserted");
                    state.positions.insert(tp.1, starts[tp]);
                    touched.insert(topic);
                }
                for topic in &touched {
                    self.resubscribe(topic, Duration::ZERO);
                }
                let auto = self.options.auto_commit_interval_ms.is_some();
                let g = self.group.as_mut().expect("group mode");
                g.incarnation = incarnation;
                for o in &offsets {
                    g.committed
                        .remove(&(Arc::from(o.topic.as_str()), o.partition));
                }
                if !revoked.is_empty() {
                    let _ = g.cmds.send(Cmd::Revoked {
                        incarnation,
                        offsets: if auto { offsets } else { Vec::new() },
                        revoked: revoked.clone(),
                    });
                    if let Some(tx) = &g.rebalances {
                        let _ = tx.send(Rebalance::Revoked(revoked));
                    }
                }
                if !added.is_empty()
                    && let Some(tx) = &g.rebalances
                {
                    let _ = tx.send(Rebalance::Assigned(added));
                }
            }
        }
    }

    fn unsubscribe_all(&mut self) {
        for ((generation, subscription), _) in self.subs.drain() {
            self.client
                .send_and_forget(generation, &Request::Unsubscribe { subscription });
        }
    }

    /// Replaces a topic's subscriptions by new ones starting at its positions.
    fn resubscribe(&mut self, topic: &Arc<str>, delay: Duration) {
        let Some(state) = self.topics.get_mut(topic) else {
            return;
        };
        state.epoch += 1;
        let epoch = state.epoch;
        let retired: Vec<(u64, u64)> = self
            .subs
            .iter()
            .filter(|(_, s)| &s.topic == topic)
            .map(|(k, _)| *k)
            .collect();
        for (generation, subscription) in retired {
            self.subs.remove(&(generation, subscription));
            self.client
                .send_and_forget(generation, &Request::Unsubscribe { subscription });
        }
        if self.current.as_ref().is_some_and(|c| &c.topic == topic) {
            let c = self.current.take().expect("checked");
            self.sink
                .buffered_bytes
                .fetch_sub(c.bytes, Ordering::Relaxed);
        }
        self.ready.retain(|r| &r.topic != topic);
        self.todo.retain(|p| &p.topic != topic);
        // Paused partitions keep their positions but get no subscription.
        let paused = &self.paused;
        let active: BTreeMap<u32, u64> = state
            .positions
            .iter()
            .filter(|(p, _)| !paused.contains(&(topic.clone(), **p)))
            .map(|(p, o)| (*p, *o))
            .collect();
        let filter = self.options.filter.clone();
        let map = self.options.map.clone();
        if self.group.is_some() {
            if active.is_empty() {
                return;
            }
            self.todo.push_back(Planned {
                topic: topic.clone(),
                partitions: Some(active.keys().copied().collect()),
                from: StartFrom::Latest,
                exact: true,
                window: self.options.credit_bytes,
                epoch,
                delay,
                positions: Some(
                    active
                        .iter()
                        .map(|(p, o)| RecordOffset {
                            partition: *p,
                            offset: *o,
                        })
                        .collect(),
                ),
                filter,
                map,
            });
            return;
        }
        let mut groups: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
        for (p, pos) in &active {
            groups.entry(*pos).or_default().push(*p);
        }
        if groups.is_empty() {
            return;
        }
        if groups.len() > MAX_SUBSCRIPTIONS_PER_TOPIC {
            let (&from, _) = groups.first_key_value().expect("not empty");
            self.todo.push_back(Planned {
                topic: topic.clone(),
                partitions: Some(active.keys().copied().collect()),
                from: StartFrom::Offset(from),
                exact: false,
                window: self.options.credit_bytes,
                epoch,
                delay,
                positions: None,
                filter,
                map,
            });
            return;
        }
        let window = (self.options.credit_bytes / groups.len() as u64).max(MIN_WINDOW_BYTES);
        for (pos, partitions) in groups {
            self.todo.push_back(Planned {
                topic: topic.clone(),
                partitions: Some(partitions),
                from: StartFrom::Offset(pos),
                exact: true,
                window,
                epoch,
                delay,
                positions: None,
                filter: filter.clone(),
                map: map.clone(),
            });
        }
    }

    /// Takes in the answer to a subscribe.
    fn apply(&mut self, plan: Planned, result: Result<Subscribed>) {
        let Some(state) = self.topics.get_mut(&plan.topic) else {
            if let Ok(s) = result {
                self.client.send_and_forget(
                    s.generation,
                    &Request::Unsubscribe {
                        subscription: s.subscription,
                    },
                );
            }
            return;
        };
        match result {
            Ok(s) if state.epoch != plan.epoch => {
                // Replaced meanwhile (a seek, a lost connection): undo.
                self.client.send_and_forget(
                    s.generation,
                    &Request::Unsubscribe {
                        subscription: s.subscription,
                    },
                );
            }
            Ok(s) => {
                for RecordOffset { partition, offset } in &s.positions {
                    let position = state.positions.entry(*partition).or_insert(*offset);
                    *position = if plan.exact {
                        *offset
                    } else {
                        (*position).max(*offset)
                    };
                }
                self.subs.insert(
                    (s.generation, s.subscription),
                    Sub {
                        topic: plan.topic.clone(),
                        partitions: s.positions.iter().map(|p| p.partition).collect(),
                        window: plan.window,
                        ungranted: 0,
                    },
                );
            }
            Err(e) => {
                // Not retriable: stop reading these partitions and say why.
                match &plan.partitions {
                    Some(ps) => ps.iter().for_each(|p| {
                        state.positions.remove(p);
                    }),
                    None => state.positions.clear(),
                }
                self.errors.push_back(e);
            }
        }
        // Pushes that waited for this answer.
        self.replay.extend(self.limbo.drain(..));
    }

    fn handle(&mut self, event: SubEvent) {
        let key = match &event {
            SubEvent::Records {
                generation,
                delivery,
            } => (*generation, delivery.subscription),
            SubEvent::Failed {
                generation,
                subscription,
                ..
            }
            | SubEvent::Lost {
                generation,
                subscription,
            } => (*generation, *subscription),
        };
        if !self.subs.contains_key(&key) {
            if self.op.is_some() {
                // Perhaps the subscription being made: its answer is on its way to `apply`.
                self.limbo.push(event);
            } else if let SubEvent::Records { delivery, .. } = &event {
                self.drop_delivery(delivery);
            }
            return;
        }
        match event {
            SubEvent::Records { delivery, .. } => self.start_delivery(key, delivery),
            SubEvent::Failed { error, .. } => {
                let sub = self.subs.remove(&key).expect("checked");
                tracing::warn!(topic = %sub.topic, %error, "the broker ended a subscription");
                if error.is_retriable() {
                    // Subscribe again after a pause that grows while this repeats.
                    let delay = self.failures.next_delay();
                    self.resubscribe(&sub.topic, delay);
                } else {
                    // The topic was deleted, for instance: stop reading these partitions and
                    // say why.
                    if let Some(state) = self.topics.get_mut(&sub.topic) {
                        for p in &sub.partitions {
                            state.positions.remove(p);
                        }
                    }
                    self.errors.push_back(error);
                }
            }
            SubEvent::Lost { .. } => {
                let sub = self.subs.remove(&key).expect("checked");
                self.resubscribe(&sub.topic, Duration::ZERO);
            }
        }
    }

    fn drop_delivery(&self, delivery: &Delivery) {
        self.sink
            .buffered_bytes
            .fetch_sub(delivery.bytes, Ordering::Relaxed);
    }

    fn start_delivery(&mut self, key: (u64, u64), delivery: Delivery) {
        let topic = match self.subs.get(&key) {
            Some(sub) => sub.topic.clone(),
            None => return self.drop_delivery(&delivery),
        };
        let fetch = delivery.fetch;
        self.current = Some(Current {
            key,
            topic,
            partition: fetch.partition,
            batches: Bytes::from(fetch.batches.unwrap_or_default()),
            at: 0,
            next_offset: fetch.next_offset,
            bytes: delivery.bytes,
        });
    }

    /// Decodes the next batch of the current push into `ready`, or finishes the push.
    fn decode_next_batch(&mut self) {
        if let Some(completely) = self.decode_batch() {
            self.finish_delivery(completely);
        }
    }

    /// [`Consumer::decode_next_batch`]; `Some` when the push is done with (completely read or
    /// not).
    fn decode_batch(&mut self) -> Option<bool> {
        let cur = self.current.as_mut()?;
        let position = self
            .topics
            .get(&cur.topic)
            .and_then(|t| t.positions.get(&cur.partition).copied());
        let Some(position) = position else {
            // Not (or no longer) a partition we read.
            return Some(false);
        };
        if cur.at >= cur.batches.len() {
            return Some(true);
        }
        let rest = &cur.batches[cur.at..];
        let batch = match Batch::new(rest) {
            Ok(b) => b,
            Err(e) => {
                self.errors.push_back(Error::Protocol(format!(
                    "unreadable record batch from the broker ({}/{}): {e}",
                    cur.topic, cur.partition
                )));
                return Some(false);
            }
        };
        cur.at += batch.header().total_len();
        let header = *batch.header();
        if header.is_control() {
            return None;
        }
        if self.options.check_crcs
            && let Err(e) = batch.validate()
        {
            self.errors.push_back(Error::Protocol(format!(
                "corrupt record batch from the broker ({}/{} at offset {}): {e}",
                cur.topic, cur.partition, header.base_offset
            )));
            return Some(false);
        }
        let records = match batch.records() {
            Ok(r) => r,
            Err(e) => {
                self.errors.push_back(Error::Protocol(format!(
                    "unreadable record batch from the broker ({}/{}): {e}",
                    cur.topic, cur.partition
                )));
                return Some(false);
            }
        };
        for record in records {
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    self.errors.push_back(Error::Protocol(format!(
                        "unreadable record from the broker ({}/{}): {e}",
                        cur.topic, cur.partition
                    )));
                    return Some(false);
                }
            };
            let offset = record.offset(header.base_offset);
            let Ok(offset) = u64::try_from(offset) else {
                continue;
            };
            if offset < position {
                continue;
            }
            let timestamp = if header.is_log_append_time() {
                header.max_timestamp
            } else {
                record.timestamp(header.base_timestamp)
            };
            let slice = |b: &[u8]| cur.batches.slice_ref(b);
            let headers = record
                .headers()
                .filter_map(|h| h.ok())
                .map(|(k, v)| Header {
                    key: String::from_utf8_lossy(k).into_owned(),
                    value: v.map(slice),
                })
                .collect();
            self.ready.push_back(Record {
                topic: cur.topic.clone(),
                partition: cur.partition,
                offset,
                timestamp,
                key: record.key.map(slice),
                value: record.value.map(slice),
                headers,
            });
        }
        None
    }

    /// The current push is consumed: move the position past it (compaction may leave a gap
    /// after its last record) and grant its bytes back.
    fn finish_delivery(&mut self, completely: bool) {
        let Some(cur) = self.current.take() else {
            return;
        };
        self.sink
            .buffered_bytes
            .fetch_sub(cur.bytes, Ordering::Relaxed);
        if completely {
            self.failures.reset();
        }
        if completely
            && let Some(position) = self
                .topics
                .get_mut(&cur.topic)
                .and_then(|t| t.positions.get_mut(&cur.partition))
        {
            *position = (*position).max(cur.next_offset);
        }
        if let Some(sub) = self.subs.get_mut(&cur.key) {
            sub.ungranted += cur.bytes;
            // Grant in chunks of a quarter window: few credit frames, and the broker never
            // waits while the application has consumed most of what it was sent.
            if sub.ungranted.saturating_mul(4) >= sub.window {
                let bytes = std::mem::take(&mut sub.ungranted);
                self.client.send_and_forget(
                    cur.key.0,
                    &Request::Credit {
                        subscription: cur.key.1,
                        bytes,
                    },
                );
            }
        }
    }
}

impl Stream for Consumer {
    type Item = Result<Record>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        this.poll_group(cx);
        loop {
            if let Some(e) = this.errors.pop_front() {
                return Poll::Ready(Some(Err(e)));
            }
            if let Some(record) = this.ready.pop_front() {
                if let Some(position) = this
                    .topics
                    .get_mut(&record.topic)
                    .and_then(|t| t.positions.get_mut(&record.partition))
                {
                    *position = record.offset + 1;
                }
                return Poll::Ready(Some(Ok(record)));
            }
            if this.current.is_some() {
                this.decode_next_batch();
                continue;
            }
            if this.op.is_none()
                && let Some(plan) = this.todo.pop_front()
            {
                let client = this.client.clone();
                let sink = this.sink.clone();
                let attempt_plan = plan.clone();
                this.op = Some(Box::pin(async move {
                    tokio::time::sleep(attempt_plan.delay).await;
                    let mut backoff = client.options().backoff();
                    loop {
                        match subscribe(&client, &sink, &attempt_plan).await {
                            Err(e) if e.is_retriable() => {
                                tracing::debug!(topic = %attempt_plan.topic, error = %e, "subscribe failed; retrying");
                                tokio::time::sleep(backoff.next_delay()).await;
                            }
                            result => return result,
                        }
                    }
                }));
                this.op_plan = Some(plan);
            }
            if let Some(op) = this.op.as_mut()
                && let Poll::Ready(result) = op.as_mut().poll(cx)
            {
                this.op = None;
                let plan = this.op_plan.take().expect("a plan goes with each op");
                this.apply(plan, result);
                continue;
            }
            if let Some(event) = this.replay.pop_front() {
                this.handle(event);
                continue;
            }
            match this.events.poll_recv(cx) {
                Poll::Ready(Some(event)) => this.handle(event),
                // The consumer holds a sender itself.
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.unsubscribe_all();
    }
}

/// One subscribe request.
async fn subscribe(client: &Client, sink: &SubSink, plan: &Planned) -> Result<Subscribed> {
    let request = Request::Subscribe {
        topic: plan.topic.to_string(),
        partitions: plan.partitions.clone(),
        from: plan.from,
        credit_bytes: plan.window,
        positions: plan.positions.clone(),
        filter: plan.filter.clone(),
        map: plan.map.clone(),
    };
    let (answer, generation) = client
        .request_encoded(
            |id| Message::Binary(frame::to_binary(&ClientFrame { id, request }).into()),
            false,
            Some(sink.clone()),
        )
        .await?;
    match answer {
        Response::Subscribed {
            subscription,
            positions,
        } => Ok(Subscribed {
            generation,
            subscription,
            positions,
        }),
        other => Err(unexpected("subscribe", &other)),
    }
}
