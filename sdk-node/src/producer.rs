//! [`NativeProducer`]: batches of records from JavaScript into the SDK's producer, in order.
//!
//! Each call's records are copied out of their JavaScript buffers on the JavaScript thread (so
//! no JavaScript value is held by Rust), and queued to one task per producer that hands them
//! to `sluice_client::Producer::send` one after the other: the order of the calls is the order
//! of the records. The task does not wait for acknowledgements before taking the next batch;
//! a spawned task collects them and resolves the call's promise.
//!
//! The queue is bounded by bytes (`maxQueuedBytes`, default 64 MiB): past it `sendBatch`
//! fails at once with `queue_full` instead of buffering without limit. Records leave the queue
//! as soon as the SDK producer accepts them, which it does while its own buffer
//! (`bufferBytes`) has room.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use napi::bindgen_prelude::{
    BufferSlice, Either3, Env, Float64Array, Null, PromiseRaw, Uint32Array,
};
use napi_derive::napi;
use sluice_client::{Acks, Client, Header, Producer, ProducerOptions, ProducerRecord};
use tokio::sync::{mpsc, oneshot};

use crate::error::{from_sdk, invalid, js_error};

/// Default bound of the queue in front of the SDK producer.
const DEFAULT_MAX_QUEUED_BYTES: usize = 64 << 20;

/// Producer settings; every field is optional.
#[napi(object)]
pub struct ProducerOptionsJs {
    /// `0`, `1` or `all` (default `all`).
    pub acks: Option<String>,
    /// How long a batch may wait for more records.
    pub linger_ms: Option<u32>,
    /// Largest batch.
    pub batch_bytes: Option<u32>,
    /// Bytes of records the SDK producer buffers before `send` waits.
    pub buffer_bytes: Option<u32>,
    /// Largest produce request.
    pub request_bytes: Option<u32>,
    /// How long a record may take, retries included, before it fails.
    pub delivery_timeout_ms: Option<u32>,
    /// Bytes of records queued in front of the SDK producer before `sendBatch` fails with
    /// `queue_full` (default 64 MiB).
    pub max_queued_bytes: Option<u32>,
}

/// The SDK's options and this binding's queue bound.
pub struct Options {
    sdk: ProducerOptions,
    max_queued_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sdk: ProducerOptions::new(),
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
        }
    }
}

impl ProducerOptionsJs {
    pub fn into_sdk(self) -> napi::Result<Options> {
        let mut o = ProducerOptions::new();
        if let Some(acks) = self.acks {
            let acks: Acks = acks.parse().map_err(invalid)?;
            o = o.acks(acks);
        }
        if let Some(ms) = self.linger_ms {
            o = o.linger_ms(ms.into());
        }
        if let Some(b) = self.batch_bytes {
            o = o.batch_bytes(b as usize);
        }
        if let Some(b) = self.buffer_bytes {
            o = o.buffer_bytes(b as usize);
        }
        if let Some(b) = self.request_bytes {
            o = o.request_bytes(b as usize);
        }
        if let Some(ms) = self.delivery_timeout_ms {
            o = o.delivery_timeout_ms(ms.into());
        }
        Ok(Options {
            sdk: o,
            max_queued_bytes: self
                .max_queued_bytes
                .map_or(DEFAULT_MAX_QUEUED_BYTES, |b| b as usize),
        })
    }
}

/// A record from JavaScript. Values, keys and header values are `Buffer`s (any `Uint8Array`)
/// or strings (UTF-8).
#[napi(object)]
pub struct RecordIn<'a> {
    pub topic: String,
    pub value: Option<Value<'a>>,
    pub key: Option<Value<'a>>,
    /// Headers in order (names may repeat).
    pub headers: Option<Vec<HeaderIn<'a>>>,
    pub partition: Option<u32>,
    /// ms since the Unix epoch (default: the time of sending).
    pub timestamp: Option<i64>,
}

/// A record header from JavaScript; a `null` value is a null value.
#[napi(object)]
pub struct HeaderIn<'a> {
    pub key: String,
    pub value: Option<Value<'a>>,
}

/// Bytes from JavaScript: a string (UTF-8), a `Buffer`/`Uint8Array`, or `null`.
type Value<'a> = Either3<BufferSlice<'a>, String, Null>;

/// The bytes of a value; `None` for `null` or `undefined`.
fn bytes_of(v: Option<Value<'_>>) -> Option<Bytes> {
    match v? {
        Either3::A(b) => Some(Bytes::copy_from_slice(&b)),
        Either3::B(s) => Some(Bytes::from(s)),
        Either3::C(Null) => None,
    }
}

/// Where each record of a batch went, as parallel arrays (index `i` is the batch's record
/// `i`). A failed record has partition `0xFFFF_FFFF`, offset `NaN`, and its error in
/// `errors` at the same index; `errors` is empty when no record failed.
#[napi(object)]
pub struct SendResults {
    pub partitions: Uint32Array,
    /// `-1` where the broker does not say (`acks = 0`), `NaN` for failures.
    pub offsets: Float64Array,
    pub timestamps: Float64Array,
    /// Empty, or one entry per record: `null` for a sent one, the error message otherwise.
    pub errors: Vec<Option<String>>,
}

/// What the queue task hands back, converted to [`SendResults`] on the JavaScript thread.
#[derive(Default)]
struct Outcome {
    partitions: Vec<u32>,
    offsets: Vec<f64>,
    timestamps: Vec<f64>,
    errors: Vec<Option<String>>,
}

impl Outcome {
    fn with_capacity(n: usize) -> Self {
        Outcome {
            partitions: Vec::with_capacity(n),
            offsets: Vec::with_capacity(n),
            timestamps: Vec::with_capacity(n),
            errors: Vec::new(),
        }
    }

    fn push(&mut self, result: sluice_client::Result<sluice_client::RecordMetadata>) {
        let i = self.partitions.len();
        match result {
            Ok(m) => {
                self.partitions.push(m.partition);
                self.offsets.push(m.offset.map_or(-1.0, |o| o as f64));
                self.timestamps.push(m.timestamp as f64);
                if !self.errors.is_empty() {
                    self.errors.push(None);
                }
            }
            Err(e) => {
                self.partitions.push(u32::MAX);
                self.offsets.push(f64::NAN);
                self.timestamps.push(f64::NAN);
                if self.errors.is_empty() {
                    self.errors.resize(i, None);
                }
                self.errors.push(Some(from_sdk(e).reason));
            }
        }
    }
}

enum Cmd {
    Batch {
        records: Vec<ProducerRecord>,
        bytes: usize,
        reply: oneshot::Sender<Outcome>,
    },
    Flush(oneshot::Sender<sluice_client::Result<()>>),
    Close(oneshot::Sender<sluice_client::Result<()>>),
}

/// A producer: see the [module docs](self).
#[napi]
pub struct NativeProducer {
    tx: mpsc::UnboundedSender<Cmd>,
    queued_bytes: Arc<AtomicUsize>,
    max_queued_bytes: usize,
}

impl NativeProducer {
    /// Starts the SDK producer and the queue task; call within the runtime.
    pub fn start(client: &Client, options: Options) -> NativeProducer {
        let producer = client.producer(options.sdk);
        let (tx, rx) = mpsc::unbounded_channel();
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        tokio::spawn(run(producer, rx, queued_bytes.clone()));
        NativeProducer {
            tx,
            queued_bytes,
            max_queued_bytes: options.max_queued_bytes,
        }
    }
}

fn closed() -> napi::Error {
    js_error("closed", "", false, "the producer is closed")
}

#[napi]
impl NativeProducer {
    /// Queues records for sending, in order; resolves once every one of them is acknowledged
    /// or failed. Fails at once (nothing queued) for a malformed record, with `queue_full`
    /// past `maxQueuedBytes`, and with `closed` after `close`.
    #[napi(ts_return_type = "Promise<SendResults>")]
    pub fn send_batch<'env>(
        &self,
        env: &'env Env,
        records: Vec<RecordIn<'_>>,
    ) -> napi::Result<PromiseRaw<'env, SendResults>> {
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            if r.topic.is_empty() {
                return Err(invalid("a record needs a topic"));
            }
            let mut record = ProducerRecord::null_value(r.topic);
            record.value = bytes_of(r.value);
            record.key = bytes_of(r.key);
            record.partition = r.partition;
            record.timestamp = r.timestamp;
            if let Some(headers) = r.headers {
                record.headers = headers
                    .into_iter()
                    .map(|h| Header {
                        key: h.key,
                        value: bytes_of(h.value),
                    })
                    .collect();
            }
            out.push(record);
        }
        self.enqueue(env, out)
    }

    /// The fast path of [`send_batch`](Self::send_batch) for records with only a value and
    /// maybe a key, all to one topic: the topic crosses once, values and keys as arrays
    /// (`keys` absent: no record has a key; a `null` entry: that one has none).
    #[napi(ts_return_type = "Promise<SendResults>")]
    pub fn send_values<'env>(
        &self,
        env: &'env Env,
        topic: String,
        values: Vec<Value<'_>>,
        keys: Option<Vec<Value<'_>>>,
    ) -> napi::Result<PromiseRaw<'env, SendResults>> {
        if topic.is_empty() {
            return Err(invalid("a record needs a topic"));
        }
        if keys.as_ref().is_some_and(|k| k.len() != values.len()) {
            return Err(invalid("keys and values differ in length"));
        }
        let mut keys = keys.map(Vec::into_iter);
        let out = values
            .into_iter()
            .map(|value| ProducerRecord {
                topic: topic.clone(),
                value: bytes_of(Some(value)),
                key: keys.as_mut().and_then(|k| bytes_of(k.next())),
                ..Default::default()
            })
            .collect();
        self.enqueue(env, out)
    }

    fn enqueue<'env>(
        &self,
        env: &'env Env,
        records: Vec<ProducerRecord>,
    ) -> napi::Result<PromiseRaw<'env, SendResults>> {
        let bytes = records
            .iter()
            .map(|r| {
                r.value.as_ref().map_or(0, Bytes::len)
                    + r.key.as_ref().map_or(0, Bytes::len)
                    + r.headers
                        .iter()
                        .map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len))
                        .sum::<usize>()
            })
            .sum();
        let queued = self.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
        if queued > 0 && queued + bytes > self.max_queued_bytes {
            self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            return Err(js_error(
                "queue_full",
                "",
                true,
                format!(
                    "{queued} bytes are queued for sending, and maxQueuedBytes is {}: await earlier sends",
                    self.max_queued_bytes
                ),
            ));
        }
        let (reply, answer) = oneshot::channel();
        if self
            .tx
            .send(Cmd::Batch {
                records,
                bytes,
                reply,
            })
            .is_err()
        {
            self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            return Err(closed());
        }
        env.spawn_future_with_callback(
            async move { answer.await.map_err(|_| closed()) },
            |_env, o| {
                Ok(SendResults {
                    partitions: Uint32Array::new(o.partitions),
                    offsets: Float64Array::new(o.offsets),
                    timestamps: Float64Array::new(o.timestamps),
                    errors: o.errors,
                })
            },
        )
    }

    /// Sends everything queued so far without lingering, and resolves once it is all
    /// acknowledged or failed.
    #[napi]
    pub async fn flush(&self) -> napi::Result<()> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Cmd::Flush(reply)).map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?.map_err(from_sdk)
    }

    /// Sends what is queued and buffered, waits for it, and stops: later sends fail with
    /// `closed`. Closing twice is fine.
    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        let (reply, answer) = oneshot::channel();
        if self.tx.send(Cmd::Close(reply)).is_err() {
            return Ok(());
        }
        match answer.await {
            Ok(result) => result.map_err(from_sdk),
            Err(_) => Ok(()),
        }
    }
}

/// The queue task: accepts each batch's records in order, then lets a spawned task wait for
/// their acknowledgements.
async fn run(producer: Producer, mut rx: mpsc::UnboundedReceiver<Cmd>, queued: Arc<AtomicUsize>) {
    while let Some(cmd) = rx.recv().await {
        match cmd {
            Cmd::Batch {
                records,
                bytes,
                reply,
            } => {
                let mut handles = Vec::with_capacity(records.len());
                for record in records {
                    handles.push(producer.send(record).await);
                }
                queued.fetch_sub(bytes, Ordering::AcqRel);
                tokio::spawn(async move {
                    let mut outcome = Outcome::with_capacity(handles.len());
                    for handle in handles {
                        outcome.push(match handle {
                            Ok(handle) => handle.await,
                            Err(e) => Err(e),
                        });
                    }
                    let _ = reply.send(outcome);
                });
            }
            Cmd::Flush(reply) => {
                let producer = producer.clone();
                tokio::spawn(async move {
                    let _ = reply.send(producer.flush().await);
                });
            }
            Cmd::Close(reply) => {
                // What was queued before the close is in the SDK producer now; what comes
                // after fails with `closed` (its reply is dropped).
                rx.close();
                let _ = reply.send(producer.close().await);
                return;
            }
        }
    }
    // Every handle was dropped without `close`: what the SDK buffers is still sent.
}
