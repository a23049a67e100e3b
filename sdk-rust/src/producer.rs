//! [`Producer`]: routes records to partitions on the client, gathers them per partition into
//! record batches, and sends each partition's batches in order, retrying what can be retried.
//!
//! How a record travels:
//!
//! 1. [`Producer::send`] waits for room in the producer's buffer (`buffer_bytes`), picks the
//!    partition (explicit > murmur2 of the key, as Kafka > sticky per batch for keyless
//!    records), and appends the record to that partition's open batch. It returns a
//!    [`SendHandle`] at once. A topic with a partitioner plugin (its `partitioner` setting)
//!    is routed by the broker instead, as the broker routes every client: records without an
//!    explicit partition gather in one queue per topic whose batches are sent without a
//!    partition, and the broker's answer gives each record's partition and offset.
//! 2. A batch closes when the next record would not fit `batch_bytes` (or the topic's
//!    `max.message.bytes`), when it is `linger_ms` old, or at [`Producer::flush`].
//! 3. One background task sends closed batches: per partition at most one produce request is
//!    in flight, carrying every closed batch of that partition that fits one request, encoded
//!    straight into the WebSocket frame. So the records of a partition are appended in the
//!    order they were sent, retries included.
//! 4. The answer gives the offset of the request's first record; each record's offset follows
//!    from its place. Retriable failures (connection lost, timeout, `shutting_down`,
//!    `storage_error`, `too_many_requests`) are retried with backoff for up to
//!    `delivery_timeout_ms`; anything else fails the records of that request.
//!
//! Delivery is at least once: a request whose answer was lost (the connection broke, or the
//! answer was late) is sent again, and may then be appended twice.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use sluice_protocol::ErrorCode;
use sluice_protocol::frame::{Request, Response};
use sluice_protocol::partitioner::partition_for_key;
use sluice_protocol::types::{Acks, RecordOffset};
use sluice_record::BatchBuilder;
use sluice_record::varint::varint_len;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::admin::unexpected;
use crate::client::{Backoff, Client, cheap_random};
use crate::error::{Error, Result};
use crate::record::{Header, ProducerRecord, RecordMetadata, now_ms};

/// Producer settings, with defaults for everything.
///
/// ```
/// use sluice_client::{Acks, ProducerOptions};
///
/// let options = ProducerOptions::new().acks(Acks::Leader).linger_ms(10).batch_bytes(256 << 10);
/// ```
#[derive(Debug, Clone)]
pub struct ProducerOptions {
    acks: Acks,
    linger_ms: u64,
    batch_bytes: usize,
    buffer_bytes: usize,
    request_bytes: usize,
    delivery_timeout_ms: u64,
    retry_backoff_min_ms: u64,
    retry_backoff_max_ms: u64,
    metadata_max_age_ms: u64,
}

impl Default for ProducerOptions {
    fn default() -> Self {
        ProducerOptions {
            acks: Acks::All,
            linger_ms: 5,
            batch_bytes: 1 << 20,
            buffer_bytes: 32 << 20,
            request_bytes: 8 << 20,
            delivery_timeout_ms: 120_000,
            retry_backoff_min_ms: 100,
            retry_backoff_max_ms: 1_000,
            metadata_max_age_ms: 300_000,
        }
    }
}

impl ProducerOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// When the broker answers (default [`Acks::All`]); with [`Acks::None`] it answers before
    /// writing, so write errors go unseen and offsets are unknown.
    pub fn acks(mut self, acks: Acks) -> Self {
        self.acks = acks;
        self
    }

    /// How long a batch may wait for more records before it is sent (default 5 ms). 0 sends as
    /// soon as the background task gets to it; records sent meanwhile still share a batch.
    pub fn linger_ms(mut self, ms: u64) -> Self {
        self.linger_ms = ms;
        self
    }

    /// Largest record batch, in bytes (default 1 MiB; the topic's `max.message.bytes` caps it).
    pub fn batch_bytes(mut self, bytes: usize) -> Self {
        self.batch_bytes = bytes.max(sluice_record::HEADER_LEN + 64);
        self
    }

    /// Most bytes of records accepted and not yet acknowledged (default 32 MiB); `send` waits
    /// when they are all taken.
    pub fn buffer_bytes(mut self, bytes: usize) -> Self {
        self.buffer_bytes = bytes.clamp(1, u32::MAX as usize);
        self
    }

    /// Most bytes of batches in one produce request (default 8 MiB; the broker's
    /// `max_frame_bytes` and the topic's `max.append.bytes` cap it). A partition that has
    /// several closed batches when it may send sends them together.
    pub fn request_bytes(mut self, bytes: usize) -> Self {
        self.request_bytes = bytes.max(1);
        self
    }

    /// How long a request may be retried after its first attempt before its records fail
    /// with the last error (default 120 000 ms).
    pub fn delivery_timeout_ms(mut self, ms: u64) -> Self {
        self.delivery_timeout_ms = ms;
        self
    }

    /// Wait between retries: starts at `min_ms` and doubles up to `max_ms` (defaults 100 and
    /// 1 000 ms).
    pub fn retry_backoff_ms(mut self, min_ms: u64, max_ms: u64) -> Self {
        self.retry_backoff_min_ms = min_ms.max(1);
        self.retry_backoff_max_ms = max_ms.max(self.retry_backoff_min_ms);
        self
    }

    /// How long a topic's partition count and limits are cached before being asked again
    /// (default 300 000 ms).
    pub fn metadata_max_age_ms(mut self, ms: u64) -> Self {
        self.metadata_max_age_ms = ms;
        self
    }
}

/// Sends records in batches; see the [module docs](self) for how. Cheap to clone: clones share
/// the batches, the buffer and the background task.
///
/// When the last clone is dropped, what is buffered is still sent in the background (as long
/// as the runtime runs); call [`Producer::close`] to wait for it.
///
/// ```no_run
/// use sluice_client::{Client, ProducerOptions, ProducerRecord};
///
/// # async fn run() -> sluice_client::Result<()> {
/// let client = Client::connect("http://127.0.0.1:9400").await?;
/// let producer = client.producer(ProducerOptions::new());
/// let handle = producer.send(ProducerRecord::new("orders", "hello").with_key("user-1")).await?;
/// let metadata = handle.await?;
/// println!("partition {} offset {:?}", metadata.partition, metadata.offset);
/// producer.close().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Producer {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("options", &self.handle.inner.options)
            .finish_non_exhaustive()
    }
}

/// Dropped with the last clone: lets the background task finish and stop.
struct Handle {
    inner: Arc<Inner>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.inner.closing.store(true, Ordering::Release);
        self.inner.wake.notify_one();
    }
}

struct Inner {
    client: Client,
    options: ProducerOptions,
    state: Mutex<State>,
    /// Wakes the background task: a batch opened or closed, a flush, closing.
    wake: Notify,
    /// Signalled when no record is left unacknowledged.
    idle: Notify,
    /// Bytes of records accepted and not yet acknowledged.
    buffer: Semaphore,
    closing: AtomicBool,
    meta: Mutex<HashMap<String, TopicMeta>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

#[derive(Debug, Clone, Copy)]
struct TopicMeta {
    partitions: u32,
    /// The topic has a partitioner plugin (and more than one partition): records without an
    /// explicit partition are routed by the broker.
    broker_routed: bool,
    max_message_bytes: usize,
    max_append_bytes: usize,
    fetched: Instant,
}

#[derive(Default)]
struct State {
    topics: HashMap<String, TopicQueues>,
    /// Records accepted whose outcome is not known yet.
    unfinished: u64,
    /// `flush` calls waiting: batches are sent without lingering.
    flushing: usize,
}

struct TopicQueues {
    name: Arc<str>,
    /// The partition keyless records go to until its batch closes.
    sticky: Option<u32>,
    next_sticky: u32,
    parts: Vec<PartitionQueue>,
    /// Records the broker routes (topics with a partitioner plugin).
    routed: PartitionQueue,
}

/// [`SendHandle::partition`] of a record the broker routes with the topic's partitioner
/// plugin: its partition is known only from the broker's answer ([`RecordMetadata`]), and
/// stays this value with `acks = 0`, where the broker does not answer it.
pub const ROUTED_BY_BROKER: u32 = u32::MAX;

#[derive(Default)]
struct PartitionQueue {
    open: Option<OpenBatch>,
    closed: VecDeque<OpenBatch>,
    in_flight: bool,
}

/// Records gathered for one batch, kept as given until the batch is encoded.
struct OpenBatch {
    records: Vec<PendingRecord>,
    /// Upper bound of the encoded size.
    bytes: usize,
    /// Buffer bytes this batch holds.
    permits: usize,
    created: Instant,
    done: Arc<BatchDone>,
}

struct PendingRecord {
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<Header>,
    timestamp: i64,
}

/// Where a batch's records went, as the broker answered.
#[derive(Debug, Clone)]
enum Placed {
    /// Not said (acks 0).
    Unknown,
    /// In the batch's partition, from this offset on.
    From(u64),
    /// Routed by the broker: each record's partition and offset, in order.
    Each(Vec<RecordOffset>),
}

/// The outcome of one batch, shared by the handles of its records.
#[derive(Default)]
struct BatchDone {
    /// Where its records went, or the error.
    result: OnceLock<Result<Placed>>,
    wakers: Mutex<Vec<Waker>>,
}

impl BatchDone {
    fn complete(&self, result: Result<Placed>) {
        let _ = self.result.set(result);
        let wakers = std::mem::take(&mut *self.wakers.lock().expect("wakers lock"));
        for w in wakers {
            w.wake();
        }
    }
}

/// The outcome of one sent record: a future resolving to its [`RecordMetadata`].
///
/// The record is sent whether or not the handle is awaited; dropping it only loses the
/// outcome.
#[must_use = "the record is sent anyway, but its outcome (and any error) is lost unless the handle is awaited"]
pub struct SendHandle {
    done: Arc<BatchDone>,
    index: u32,
    topic: Arc<str>,
    partition: u32,
    timestamp: i64,
}

impl std::fmt::Debug for SendHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendHandle")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("done", &self.done.result.get().is_some())
            .finish()
    }
}

impl SendHandle {
    /// The partition the record was routed to; [`ROUTED_BY_BROKER`] for a record the broker
    /// routes with the topic's partitioner plugin (the handle's [`RecordMetadata`] then has
    /// the partition).
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// Lets the record go without waiting for its outcome (fire and forget): it is still sent
    /// and retried, and [`Producer::flush`] still waits for it.
    pub fn detach(self) {}

    fn ready(&self, result: &Result<Placed>) -> Result<RecordMetadata> {
        let (partition, offset) = match result {
            Ok(Placed::Unknown) => (self.partition, None),
            Ok(Placed::From(base)) => (self.partition, Some(base + u64::from(self.index))),
            Ok(Placed::Each(each)) => match each.get(self.index as usize) {
                Some(o) => (o.partition, Some(o.offset)),
                None => {
                    return Err(Error::Protocol(
                        "the broker answered fewer offsets than records were sent".into(),
                    ));
                }
            },
            Err(e) => return Err(e.clone()),
        };
        Ok(RecordMetadata {
            topic: self.topic.clone(),
            partition,
            offset,
            timestamp: self.timestamp,
        })
    }
}

impl Future for SendHandle {
    type Output = Result<RecordMetadata>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(r) = self.done.result.get() {
            return Poll::Ready(self.ready(r));
        }
        let mut wakers = self.done.wakers.lock().expect("wakers lock");
        // Checked again under the lock: `complete` sets the result before taking it.
        if let Some(r) = self.done.result.get() {
            drop(wakers);
            return Poll::Ready(self.ready(r));
        }
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Bytes a record takes in a batch, at most: the largest varints for the deltas and lengths.
fn encoded_size_bound(r: &ProducerRecord) -> usize {
    let len = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len);
    let mut body = 1 + 10 + 5 + 5 + len(&r.key) + 5 + len(&r.value) + 5;
    for h in &r.headers {
        body += 5 + h.key.len() + 5 + len(&h.value);
    }
    varint_len(i32::try_from(body).unwrap_or(i32::MAX)) + body
}

impl Producer {
    pub(crate) fn new(client: Client, options: ProducerOptions) -> Producer {
        let inner = Arc::new(Inner {
            client,
            buffer: Semaphore::new(options.buffer_bytes),
            options,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            idle: Notify::new(),
            closing: AtomicBool::new(false),
            meta: Mutex::new(HashMap::new()),
            task: Mutex::new(None),
        });
        let task = tokio::spawn(run(inner.clone()));
        *inner.task.lock().expect("task lock") = Some(task);
        Producer {
            handle: Arc::new(Handle { inner }),
        }
    }

    /// Accepts a record for sending: waits while the buffer is full, routes the record and
    /// adds it to its partition's batch. The returned handle resolves once the batch is
    /// acknowledged (or failed).
    ///
    /// Fails at once with [`Error::Closed`] after [`Producer::close`], with
    /// [`Error::InvalidInput`] for a record larger than the topic's `max.message.bytes` or an
    /// explicit partition the topic does not have, and with the broker's error when the topic's
    /// partition count can't be learned (`unknown_topic`).
    pub async fn send(&self, record: ProducerRecord) -> Result<SendHandle> {
        let inner = &self.handle.inner;
        if inner.closing.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if record.topic.is_empty() {
            return Err(Error::InvalidInput("the record has no topic".into()));
        }
        let meta = inner.topic_meta(&record.topic).await?;
        let size = encoded_size_bound(&record);
        if size + sluice_record::HEADER_LEN > meta.max_message_bytes {
            return Err(Error::InvalidInput(format!(
                "a record of about {size} bytes does not fit topic `{}`'s max.message.bytes ({})",
                record.topic, meta.max_message_bytes
            )));
        }
        if let Some(p) = record.partition
            && p >= meta.partitions
        {
            return Err(Error::InvalidInput(format!(
                "topic `{}` has {} partitions; there is no partition {p}",
                record.topic, meta.partitions
            )));
        }
        let permits = size.min(inner.options.buffer_bytes);
        inner
            .buffer
            .acquire_many(permits as u32)
            .await
            .map_err(|_| Error::Closed)?
            .forget();
        let timestamp = record.timestamp.unwrap_or_else(now_ms);
        let batch_limit = inner.options.batch_bytes.min(meta.max_message_bytes);

        let mut wake = false;
        let mut state = inner.state.lock().expect("producer state");
        if inner.closing.load(Ordering::Acquire) {
            drop(state);
            inner.buffer.add_permits(permits);
            return Err(Error::Closed);
        }
        if !state.topics.contains_key(&record.topic) {
            let queues = TopicQueues {
                name: Arc::from(record.topic.as_str()),
                sticky: None,
                next_sticky: cheap_random() as u32,
                parts: Vec::new(),
                routed: PartitionQueue::default(),
            };
            state.topics.insert(record.topic.clone(), queues);
        }
        let topic = state.topics.get_mut(&record.topic).expect("inserted above");
        if topic.parts.len() < meta.partitions as usize {
            topic
                .parts
                .resize_with(meta.partitions as usize, Default::default);
        }
        let partition = match (record.partition, &record.key) {
            (Some(p), _) => p,
            (None, _) if meta.broker_routed => ROUTED_BY_BROKER,
            (None, Some(key)) => partition_for_key(key, meta.partitions),
            (None, None) => match topic.sticky {
                Some(p) if p < meta.partitions => p,
                _ => {
                    let p = topic.next_sticky % meta.partitions;
                    topic.next_sticky = topic.next_sticky.wrapping_add(1);
                    topic.sticky = Some(p);
                    p
                }
            },
        };
        let name = topic.name.clone();
        let queue = match partition {
            ROUTED_BY_BROKER => &mut topic.routed,
            p => &mut topic.parts[p as usize],
        };
        if let Some(open) = &queue.open
            && open.bytes + size > batch_limit
        {
            let full = queue.open.take().expect("checked");
            queue.closed.push_back(full);
            if topic.sticky == Some(partition) {
                topic.sticky = None;
            }
            wake = true;
        }
        let open = queue.open.get_or_insert_with(|| {
            wake = true;
            OpenBatch {
                records: Vec::new(),
                bytes: sluice_record::HEADER_LEN,
                permits: 0,
                created: Instant::now(),
                done: Arc::new(BatchDone::default()),
            }
        });
        open.records.push(PendingRecord {
            key: record.key,
            value: record.value,
            headers: record.headers,
            timestamp,
        });
        open.bytes += size;
        open.permits += permits;
        let index = (open.records.len() - 1) as u32;
        let done = open.done.clone();
        state.unfinished += 1;
        drop(state);
        if wake {
            inner.wake.notify_one();
        }
        Ok(SendHandle {
            done,
            index,
            topic: name,
            partition,
            timestamp,
        })
    }

    /// Sends every batch now (without lingering) and waits until every record accepted so
    /// far, and any accepted while waiting, is acknowledged or failed. Failures are reported
    /// by the records' handles, not here.
    pub async fn flush(&self) -> Result<()> {
        let inner = &self.handle.inner;
        struct Flushing<'a>(&'a Inner);
        impl Drop for Flushing<'_> {
            fn drop(&mut self) {
                self.0.state.lock().expect("producer state").flushing -= 1;
            }
        }
        inner.state.lock().expect("producer state").flushing += 1;
        let _flushing = Flushing(inner);
        inner.wake.notify_one();
        inner.wait_idle().await;
        Ok(())
    }

    /// Stops accepting records (further `send`s fail with [`Error::Closed`]), sends what is
    /// buffered, waits for it, and stops the background task.
    pub async fn close(&self) -> Result<()> {
        let inner = &self.handle.inner;
        inner.closing.store(true, Ordering::Release);
        inner.wake.notify_one();
        inner.wait_idle().await;
        let task = inner.task.lock().expect("task lock").take();
        if let Some(task) = task {
            let _ = task.await;
        }
        Ok(())
    }
}

impl Inner {
    async fn wait_idle(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.state.lock().expect("producer state").unfinished == 0 {
                return;
            }
            idle.await;
        }
    }

    /// The topic's partition count and size limits, from the cache or the broker.
    async fn topic_meta(&self, topic: &str) -> Result<TopicMeta> {
        let max_age = Duration::from_millis(self.options.metadata_max_age_ms);
        if let Some(m) = self.meta.lock().expect("meta lock").get(topic)
            && m.fetched.elapsed() < max_age
        {
            return Ok(*m);
        }
        // A connection lost under the request (a broker restart) is retried with backoff
        // within the request timeout, as produce requests are.
        let deadline = tokio::time::Instant::now() + self.client.options().request_timeout();
        let mut backoff = self.client.options().backoff();
        let answer = loop {
            match self
                .client
                .request(Request::DescribeTopic {
                    topic: topic.to_string(),
                })
                .await
            {
                Err(e) if e.is_retriable() => {
                    let delay = backoff.next_delay();
                    if tokio::time::Instant::now() + delay >= deadline {
                        return Err(e);
                    }
                    tokio::time::sleep(delay).await;
                }
                answer => break answer?,
            }
        };
        let Response::Topic(description) = answer else {
            return Err(unexpected("describe_topic", &answer));
        };
        let config = |key: &str, default: usize| {
            description
                .configs
                .get(key)
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(default)
        };
        let partitions = u32::try_from(description.partitions.len()).unwrap_or(u32::MAX);
        let broker_routed = partitions > 1
            && description
                .configs
                .get("partitioner")
                .is_some_and(|p| !p.is_empty());
        if partitions == 0 {
            return Err(Error::Protocol(format!(
                "the broker describes topic `{topic}` with no partitions"
            )));
        }
        let meta = TopicMeta {
            partitions,
            broker_routed,
            max_message_bytes: config("max.message.bytes", 1 << 20),
            max_append_bytes: config("max.append.bytes", 16 << 20),
            fetched: Instant::now(),
        };
        self.meta
            .lock()
            .expect("meta lock")
            .insert(topic.to_string(), meta);
        Ok(meta)
    }

    fn forget_meta(&self, topic: &str) {
        self.meta.lock().expect("meta lock").remove(topic);
    }

    /// Closes batches that are due and takes the requests that may go now; returns them and
    /// when the next open batch falls due.
    fn collect(&self, now: Instant) -> (Vec<Outgoing>, Option<Instant>) {
        let linger = Duration::from_millis(self.options.linger_ms);
        let closing = self.closing.load(Ordering::Acquire);
        let frame_limit = self
            .client
            .server_info()
            .map_or(usize::MAX, |h| h.max_frame_bytes as usize)
            .saturating_sub(FRAME_OVERHEAD);
        let meta = self.meta.lock().expect("meta lock").clone();
        let mut state = self.state.lock().expect("producer state");
        let urgent = closing || state.flushing > 0;
        let mut out = Vec::new();
        let mut next_due: Option<Instant> = None;
        for (name, topic) in &mut state.topics {
            let append_limit = meta.get(name).map_or(16 << 20, |m| m.max_append_bytes);
            let limit = self
                .options
                .request_bytes
                .min(frame_limit)
                .min(append_limit);
            let queues = topic
                .parts
                .iter_mut()
                .enumerate()
                .map(|(p, q)| (p as u32, q))
                .chain(std::iter::once((ROUTED_BY_BROKER, &mut topic.routed)));
            for (p, queue) in queues {
                if let Some(open) = &queue.open {
                    let due = open.created + linger;
                    if urgent || due <= now {
                        queue.closed.push_back(queue.open.take().expect("checked"));
                        if topic.sticky == Some(p) {
                            topic.sticky = None;
                        }
                    } else {
                        next_due = Some(next_due.map_or(due, |d| d.min(due)));
                    }
                }
                if queue.in_flight || queue.closed.is_empty() {
                    continue;
                }
                let mut batches = Vec::new();
                let mut bytes = 0;
                while let Some(b) = queue.closed.front() {
                    if !batches.is_empty() && bytes + b.bytes > limit {
                        break;
                    }
                    bytes += b.bytes;
                    batches.push(queue.closed.pop_front().expect("checked"));
                }
                queue.in_flight = true;
                out.push(Outgoing {
                    topic: topic.name.clone(),
                    partition: p,
                    batches,
                });
            }
        }
        (out, next_due)
    }

    /// Records the outcome of a request: completes its batches, frees its buffer bytes and
    /// lets its partition send again.
    fn complete(&self, done: Done) {
        let mut records = 0u64;
        let mut permits = 0usize;
        for batch in &done.batches {
            let at = records as usize;
            let count = batch.count as usize;
            let result = match &done.result {
                Ok(Placed::Unknown) => Ok(Placed::Unknown),
                Ok(Placed::From(first)) => Ok(Placed::From(first + at as u64)),
                Ok(Placed::Each(each)) => Ok(Placed::Each(
                    each.get(at..at + count).unwrap_or_default().to_vec(),
                )),
                Err(e) => Err(e.clone()),
            };
            batch.done.complete(result);
            records += u64::from(batch.count);
            permits += batch.permits;
        }
        if let Err(e) = &done.result
            && matches!(
                e.code(),
                Some(ErrorCode::UnknownPartition | ErrorCode::UnknownTopic)
            )
        {
            self.forget_meta(&done.topic);
        }
        let mut state = self.state.lock().expect("producer state");
        if let Some(topic) = state.topics.get_mut(&*done.topic) {
            let queue = match done.partition {
                ROUTED_BY_BROKER => Some(&mut topic.routed),
                p => topic.parts.get_mut(p as usize),
            };
            if let Some(queue) = queue {
                queue.in_flight = false;
            }
        }
        state.unfinished -= records;
        let idle = state.unfinished == 0;
        drop(state);
        self.buffer.add_permits(permits);
        if idle {
            self.idle.notify_waiters();
        }
    }
}

/// Room for the frame's fields around the batches.
const FRAME_OVERHEAD: usize = 1024;

/// A request about to be sent: closed batches of one partition (or, [`ROUTED_BY_BROKER`],
/// batches the broker routes).
struct Outgoing {
    topic: Arc<str>,
    partition: u32,
    batches: Vec<OpenBatch>,
}

/// What is left of a batch once encoded.
struct SentBatch {
    count: u32,
    permits: usize,
    done: Arc<BatchDone>,
}

/// A finished request.
struct Done {
    topic: Arc<str>,
    partition: u32,
    batches: Vec<SentBatch>,
    result: Result<Placed>,
}

/// The background task: closes batches when due, sends them, records outcomes.
async fn run(inner: Arc<Inner>) {
    let mut in_flight = FuturesUnordered::new();
    loop {
        let (outgoing, next_due) = inner.collect(Instant::now());
        for o in outgoing {
            in_flight.push(deliver(inner.clone(), o));
        }
        if inner.closing.load(Ordering::Acquire)
            && in_flight.is_empty()
            && inner.state.lock().expect("producer state").unfinished == 0
        {
            return;
        }
        let due = async {
            match next_due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = inner.wake.notified() => {}
            Some(done) = in_flight.next() => inner.complete(done),
            _ = due => {}
        }
    }
}

/// Encodes one request and sends it until it succeeds, fails for good, or runs out of time.
async fn deliver(inner: Arc<Inner>, outgoing: Outgoing) -> Done {
    let acks = inner.options.acks;
    let (frame, batches) = encode_produce(&outgoing, acks);
    let records: usize = batches.iter().map(|b| b.count as usize).sum();
    let mut frame = Frame::Fresh(frame);
    let deadline = Instant::now() + Duration::from_millis(inner.options.delivery_timeout_ms);
    let mut backoff = Backoff::new(
        inner.options.retry_backoff_min_ms,
        inner.options.retry_backoff_max_ms,
    );
    let result = loop {
        let attempt = inner
            .client
            .request_encoded(|id| frame.message(id), true, None)
            .await;
        let error = match attempt {
            Ok((Response::Produced(p), _)) if outgoing.partition == ROUTED_BY_BROKER => {
                match p.offsets.len() {
                    0 => break Ok(Placed::Unknown),
                    n if n == records => break Ok(Placed::Each(p.offsets)),
                    n => {
                        break Err(Error::Protocol(format!(
                            "a produce of {records} records was answered with {n} offsets"
                        )));
                    }
                }
            }
            Ok((Response::Produced(p), _)) => match p.offsets.first() {
                None => break Ok(Placed::Unknown),
                Some(o) if o.partition == outgoing.partition => break Ok(Placed::From(o.offset)),
                Some(o) => {
                    break Err(Error::Protocol(format!(
                        "produce to partition {} was answered for partition {}",
                        outgoing.partition, o.partition
                    )));
                }
            },
            Ok((other, _)) => break Err(unexpected("produce", &other)),
            Err(e) => e,
        };
        let delay = backoff.next_delay();
        if !error.is_retriable() || Instant::now() + delay >= deadline {
            break Err(error);
        }
        tracing::debug!(topic = %outgoing.topic, partition = outgoing.partition, %error, "retrying a produce");
        tokio::time::sleep(delay).await;
    };
    Done {
        topic: outgoing.topic,
        partition: outgoing.partition,
        batches,
        result,
    }
}

/// An encoded produce frame, reused for retries with a new correlation id.
enum Frame {
    Fresh(Vec<u8>),
    Sent(Bytes),
}

impl Frame {
    fn message(&mut self, id: u64) -> Message {
        let mut bytes = match std::mem::replace(self, Frame::Sent(Bytes::new())) {
            Frame::Fresh(v) => v,
            // A retry: the first bytes may still be queued for the socket, so copy.
            Frame::Sent(b) => b.to_vec(),
        };
        bytes[ID_AT..ID_AT + 8].copy_from_slice(&id.to_be_bytes());
        let bytes = Bytes::from(bytes);
        *self = Frame::Sent(bytes.clone());
        Message::Binary(bytes)
    }
}

/// Where the correlation id sits in an encoded produce frame (after the map header and the
/// `id` key, as a MessagePack uint64).
const ID_AT: usize = 1 + 3 + 1;

/// Encodes `{"id", "op": "produce", "topic", "acks", "partition", "batches"}` (without
/// `partition` for batches the broker routes) as MessagePack
/// (named fields, as `rmp_serde::to_vec_named` would) with the record batches written straight
/// into the frame's `batches` bin by [`BatchBuilder`]: no copy of the records between the
/// producer's buffers and the socket.
fn encode_produce(outgoing: &Outgoing, acks: Acks) -> (Vec<u8>, Vec<SentBatch>) {
    let bytes: usize = outgoing.batches.iter().map(|b| b.bytes).sum();
    let mut out = Vec::with_capacity(bytes + 64 + outgoing.topic.len());
    let routed = outgoing.partition == ROUTED_BY_BROKER;
    out.push(if routed { 0x85 } else { 0x86 }); // map of 5 or 6
    mp_str(&mut out, "id");
    out.push(0xcf); // uint64, patched per attempt
    out.extend_from_slice(&[0; 8]);
    debug_assert_eq!(out.len(), ID_AT + 8);
    mp_str(&mut out, "op");
    mp_str(&mut out, "produce");
    mp_str(&mut out, "topic");
    mp_str(&mut out, &outgoing.topic);
    mp_str(&mut out, "acks");
    mp_str(&mut out, &acks.to_string());
    if !routed {
        mp_str(&mut out, "partition");
        out.push(0xce); // uint32
        out.extend_from_slice(&outgoing.partition.to_be_bytes());
    }
    mp_str(&mut out, "batches");
    out.push(0xc6); // bin32, length patched below
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let start = out.len();
    let mut sent = Vec::with_capacity(outgoing.batches.len());
    let mut headers: Vec<(&[u8], Option<&[u8]>)> = Vec::new();
    for batch in &outgoing.batches {
        let base_timestamp = batch.records.first().map_or(0, |r| r.timestamp);
        let mut builder = BatchBuilder::new(&mut out, 0, base_timestamp);
        for r in &batch.records {
            headers.clear();
            headers.extend(
                r.headers
                    .iter()
                    .map(|h| (h.key.as_bytes(), h.value.as_deref())),
            );
            builder.push(r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers);
        }
        let _range = builder.finish();
        sent.push(SentBatch {
            count: batch.records.len() as u32,
            permits: batch.permits,
            done: batch.done.clone(),
        });
    }
    let len = u32::try_from(out.len() - start).expect("a request is far below 4 GiB");
    out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
    (out, sent)
}

/// A MessagePack string.
fn mp_str(out: &mut Vec<u8>, s: &str) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n <= u8::MAX as usize {
        out.push(0xd9);
        out.push(n as u8);
    } else {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_protocol::frame::{ClientFrame, from_binary};
    use sluice_record::{Batch, Batches};

    fn open(records: Vec<PendingRecord>) -> OpenBatch {
        OpenBatch {
            records,
            bytes: 100,
            permits: 100,
            created: Instant::now(),
            done: Arc::new(BatchDone::default()),
        }
    }

    #[test]
    fn produce_frames_decode_as_the_protocol_says() {
        let long_topic = "t".repeat(40);
        for topic in ["orders", long_topic.as_str()] {
            let outgoing = Outgoing {
                topic: Arc::from(topic),
                partition: 3,
                batches: vec![
                    open(vec![
                        PendingRecord {
                            key: Some(Bytes::from_static(b"k")),
                            value: Some(Bytes::from_static(b"v")),
                            headers: vec![Header::new("h", "x"), Header::null("n")],
                            timestamp: 1_000,
                        },
                        PendingRecord {
                            key: None,
                            value: None,
                            headers: vec![],
                            timestamp: 999,
                        },
                    ]),
                    open(vec![PendingRecord {
                        key: None,
                        value: Some(Bytes::from_static(b"second batch")),
                        headers: vec![],
                        timestamp: 5,
                    }]),
                ],
            };
            let (bytes, sent) = encode_produce(&outgoing, Acks::Leader);
            assert_eq!(sent.iter().map(|s| s.count).collect::<Vec<_>>(), [2, 1]);
            let mut frame = Frame::Fresh(bytes);
            let Message::Binary(b) = frame.message(77) else {
                panic!("binary")
            };
            let decoded: ClientFrame = from_binary(&b).expect("decodes");
            assert_eq!(decoded.id, 77);
            let Request::Produce {
                topic: t,
                acks,
                records,
                batches,
                partition,
            } = decoded.request
            else {
                panic!("produce")
            };
            assert_eq!(
                (t.as_str(), acks, partition),
                (topic, Acks::Leader, Some(3))
            );
            assert!(records.is_empty());
            let batches = batches.expect("batches");
            let all: Vec<Batch<'_>> = Batches::new(&batches).map(|b| b.unwrap()).collect();
            assert_eq!(all.len(), 2);
            for b in &all {
                b.validate().expect("valid batch");
            }
            let first: Vec<_> = all[0].records().unwrap().map(|r| r.unwrap()).collect();
            assert_eq!(first[0].key, Some(&b"k"[..]));
            assert_eq!(first[0].headers().count(), 2);
            assert_eq!(first[1].value, None);
            assert_eq!(first[1].timestamp(all[0].header().base_timestamp), 999);
            // A retry gets a new id on a copy.
            let Message::Binary(again) = frame.message(78) else {
                panic!("binary")
            };
            assert_eq!(from_binary::<ClientFrame>(&again).unwrap().id, 78);
            assert_eq!(from_binary::<ClientFrame>(&b).unwrap().id, 77);
        }
    }

    #[test]
    fn batches_the_broker_routes_go_without_a_partition() {
        let outgoing = Outgoing {
            topic: Arc::from("orders"),
            partition: ROUTED_BY_BROKER,
            batches: vec![open(vec![PendingRecord {
                key: Some(Bytes::from_static(b"k")),
                value: Some(Bytes::from_static(b"{}")),
                headers: vec![],
                timestamp: 1,
            }])],
        };
        let (bytes, _) = encode_produce(&outgoing, Acks::All);
        let decoded: ClientFrame = from_binary(&bytes).expect("decodes");
        let Request::Produce {
            partition, batches, ..
        } = decoded.request
        else {
            panic!("produce")
        };
        assert_eq!(partition, None);
        assert_eq!(Batches::new(&batches.unwrap()).count(), 1);
    }

    #[test]
    fn the_size_bound_holds() {
        let record = ProducerRecord::new("t", vec![7u8; 300])
            .with_key("key")
            .with_header("a", "b");
        let bound = encoded_size_bound(&record);
        let mut out = Vec::new();
        let mut b = BatchBuilder::new(&mut out, 0, 0);
        b.push(
            i64::MAX,
            Some(b"key"),
            Some(&[7u8; 300]),
            &[(b"a", Some(b"b"))],
        );
        let range = b.finish().unwrap();
        assert!(range.len() - sluice_record::HEADER_LEN <= bound);
    }

    #[tokio::test]
    async fn handles_resolve_with_their_offsets() {
        let done = Arc::new(BatchDone::default());
        let handle = |index| SendHandle {
            done: done.clone(),
            index,
            topic: Arc::from("t"),
            partition: 1,
            timestamp: 5,
        };
        let (a, b) = (handle(0), handle(2));
        let waiter = tokio::spawn(b);
        tokio::task::yield_now().await;
        done.complete(Ok(Placed::From(40)));
        assert_eq!(a.await.unwrap().offset, Some(40));
        assert_eq!(waiter.await.unwrap().unwrap().offset, Some(42));
        // Records the broker routed: each its own partition and offset.
        let routed = Arc::new(BatchDone::default());
        routed.complete(Ok(Placed::Each(vec![
            RecordOffset {
                partition: 2,
                offset: 7,
            },
            RecordOffset {
                partition: 0,
                offset: 3,
            },
        ])));
        let h = |index| SendHandle {
            done: routed.clone(),
            index,
            topic: Arc::from("t"),
            partition: ROUTED_BY_BROKER,
            timestamp: 5,
        };
        let m = h(1).await.unwrap();
        assert_eq!((m.partition, m.offset), (0, Some(3)));
        assert!(matches!(h(2).await, Err(Error::Protocol(_))));
        let failed = Arc::new(BatchDone::default());
        failed.complete(Err(Error::Closed));
        let h = SendHandle {
            done: failed,
            index: 0,
            topic: Arc::from("t"),
            partition: 0,
            timestamp: 0,
        };
        assert_eq!(h.await, Err(Error::Closed));
    }
}
