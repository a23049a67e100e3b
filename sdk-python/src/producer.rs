//! `Producer` (blocking), `AsyncProducer` (asyncio) and `SendFuture`, over
//! `sluice_client::Producer`: routing, batching per partition, ordering and retries all happen
//! there, in Rust; a `send` only hands one record over.
//!
//! Fire-and-forget records (`produce`, `produce_batch`) keep their Rust send handles in a
//! bounded list instead of a Python future each; `flush` and `close` report the first failure
//! among them.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use pyo3::prelude::*;
use pyo3::types::PyString;
use sluice_client::{Error, ProducerOptions, ProducerRecord, SendHandle};

use crate::convert::{RecordMetadata, headers, payload, topic_name};
use crate::errors::{closed, invalid_input, raise, timeout, to_py};
use crate::exit::CloseAtExit;
use crate::options::{Connect, acks};
use crate::wait::{self, seconds};
use crate::{block_on, block_on_timeout};

/// Fire-and-forget handles are checked (and the finished ones dropped) when this many are
/// held; the threshold then doubles past what is still pending. The producer's `buffer_bytes`
/// bounds how many can be pending.
const DETACHED_CHECK_AT: usize = 16_384;

/// Most records one `produce_batch` call takes.
const MAX_BATCH_RECORDS: usize = 1_000_000;

struct Settings {
    connect: Connect,
    producer: ProducerOptions,
}

/// A connected producer: shared by the Python object and its in-flight calls.
struct Core {
    client: sluice_client::Client,
    producer: sluice_client::Producer,
    detached: Mutex<Detached>,
}

struct Detached {
    pending: Vec<SendHandle>,
    check_at: usize,
    failed: u64,
    first_error: Option<Error>,
}

impl Core {
    /// Connects; the producer is closed at interpreter exit if it is still open then.
    async fn connect(settings: &Settings) -> sluice_client::Result<Arc<Core>> {
        let client = settings.connect.open().await?;
        let producer = client.producer(settings.producer.clone());
        let core = Arc::new(Core {
            client,
            producer,
            detached: Mutex::new(Detached {
                pending: Vec::new(),
                check_at: DETACHED_CHECK_AT,
                failed: 0,
                first_error: None,
            }),
        });
        crate::exit::track(&core);
        Ok(core)
    }

    fn keep_detached(&self, handles: impl IntoIterator<Item = SendHandle>) {
        let mut d = self.detached.lock().expect("detached lock");
        d.pending.extend(handles);
        if d.pending.len() >= d.check_at {
            d.check();
            d.check_at = DETACHED_CHECK_AT.max(d.pending.len() * 2);
        }
    }

    /// The first failure among fire-and-forget records since the last call, with how many
    /// failed; checks only records that are finished.
    fn take_failure(&self) -> Option<Error> {
        let mut d = self.detached.lock().expect("detached lock");
        d.check();
        let failed = std::mem::take(&mut d.failed);
        let error = d.first_error.take()?;
        Some(with_context(
            error,
            &format!("{failed} fire-and-forget record(s) failed; the first: "),
        ))
    }

    /// Stops accepting records, sends what is buffered and waits for it; then closes the
    /// connection.
    async fn close(&self) {
        let _ = self.producer.close().await;
        self.client.close();
    }
}

impl CloseAtExit for Core {
    fn close_at_exit(self: Arc<Self>) -> Option<BoxFuture<'static, ()>> {
        Some(Box::pin(async move { self.close().await }))
    }
}

impl Detached {
    fn check(&mut self) {
        let mut failed = 0;
        let mut first = None;
        self.pending.retain_mut(|h| match h.now_or_never() {
            None => true,
            Some(Ok(_)) => false,
            Some(Err(e)) => {
                failed += 1;
                first.get_or_insert(e);
                false
            }
        });
        self.failed += failed;
        if self.first_error.is_none() {
            self.first_error = first;
        }
    }
}

/// The same error with a prefix on its message.
fn with_context(error: Error, prefix: &str) -> Error {
    match error {
        Error::Broker { code, message } => Error::Broker {
            code,
            message: format!("{prefix}{message}"),
        },
        Error::Connection(m) => Error::Connection(format!("{prefix}{m}")),
        Error::Timeout(m) => Error::Timeout(format!("{prefix}{m}")),
        Error::Protocol(m) => Error::Protocol(format!("{prefix}{m}")),
        Error::InvalidInput(m) => Error::InvalidInput(format!("{prefix}{m}")),
        other => other,
    }
}

/// The keyword arguments both producers take, as settings.
#[allow(clippy::too_many_arguments)]
fn settings(
    url: &str,
    acks_value: &Bound<'_, PyAny>,
    linger_ms: u64,
    batch_bytes: usize,
    buffer_bytes: usize,
    request_bytes: usize,
    delivery_timeout_ms: u64,
    request_timeout_ms: u64,
    connect_timeout_ms: u64,
    client_name: Option<String>,
) -> PyResult<Settings> {
    Ok(Settings {
        connect: Connect::new(url, request_timeout_ms, connect_timeout_ms, client_name)?,
        producer: ProducerOptions::new()
            .acks(acks(acks_value)?)
            .linger_ms(linger_ms)
            .batch_bytes(batch_bytes)
            .buffer_bytes(buffer_bytes)
            .request_bytes(request_bytes)
            .delivery_timeout_ms(delivery_timeout_ms),
    })
}

/// One record from `send`'s arguments.
fn record(
    topic: String,
    value: Option<&Bound<'_, PyAny>>,
    key: Option<&Bound<'_, PyAny>>,
    header_items: Option<&Bound<'_, PyAny>>,
    partition: Option<u32>,
    timestamp: Option<i64>,
) -> PyResult<ProducerRecord> {
    topic_name(&topic)?;
    Ok(ProducerRecord {
        topic,
        key: payload(key, "key")?,
        value: payload(value, "value")?,
        headers: headers(header_items)?,
        partition,
        timestamp,
    })
}

/// Sends records to a Sluice broker, batching them per partition in the background.
///
/// Records are routed (explicit partition > murmur2 of the key, as Kafka > sticky per batch)
/// and batched in Rust; `send` only hands one over. Use it as a context manager, or call
/// `close()`, so that what is buffered is sent.
///
/// Args:
///     url: `http://host:port`, `ws://host:port` or `host:port`.
///     acks: 0 (no wait), 1 (the leader wrote it) or "all" (default).
///     linger_ms: how long a batch waits for more records (default 5).
///     batch_bytes: largest batch (default 1 MiB; the topic's `max.message.bytes` caps it).
///     buffer_bytes: most bytes accepted and not yet acknowledged (default 32 MiB); sends
///         block while it is full.
///     request_bytes: most bytes of batches in one request (default 8 MiB).
///     delivery_timeout_ms: how long failed sends are retried (default 120 000).
///     request_timeout_ms: how long a request waits for its answer (default 30 000).
///     connect_timeout_ms: how long connecting may take (default 10 000).
///     client_name: the name the broker logs (default `sluice-python/<version>`).
///
/// Raises:
///     sluice.ConnectionError: the broker cannot be reached.
#[pyclass(frozen, module = "sluice", name = "Producer")]
pub struct Producer {
    core: Arc<Core>,
    closed: AtomicBool,
}

impl Producer {
    fn core(&self) -> PyResult<&Arc<Core>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed("producer"));
        }
        Ok(&self.core)
    }

    fn hand_over(&self, py: Python<'_>, record: ProducerRecord) -> PyResult<SendHandle> {
        let core = self.core()?;
        block_on(py, core.producer.send(record))?.map_err(|e| to_py(py, e))
    }
}

#[pymethods]
impl Producer {
    #[new]
    #[pyo3(signature = (
        url,
        *,
        acks = None,
        linger_ms = 5,
        batch_bytes = 1_048_576,
        buffer_bytes = 33_554_432,
        request_bytes = 8_388_608,
        delivery_timeout_ms = 120_000,
        request_timeout_ms = 30_000,
        connect_timeout_ms = 10_000,
        client_name = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        url: &str,
        acks: Option<Bound<'_, PyAny>>,
        linger_ms: u64,
        batch_bytes: usize,
        buffer_bytes: usize,
        request_bytes: usize,
        delivery_timeout_ms: u64,
        request_timeout_ms: u64,
        connect_timeout_ms: u64,
        client_name: Option<String>,
    ) -> PyResult<Self> {
        let all = PyString::new(py, "all").into_any();
        let settings = settings(
            url,
            acks.as_ref().unwrap_or(&all),
            linger_ms,
            batch_bytes,
            buffer_bytes,
            request_bytes,
            delivery_timeout_ms,
            request_timeout_ms,
            connect_timeout_ms,
            client_name,
        )?;
        let core =
            block_on(py, async { Core::connect(&settings).await })?.map_err(|e| to_py(py, e))?;
        Ok(Producer {
            core,
            closed: AtomicBool::new(false),
        })
    }

    /// Sends one record; returns a `SendFuture` of its `RecordMetadata`.
    #[pyo3(signature = (topic, value, key = None, headers = None, partition = None, timestamp = None))]
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        py: Python<'_>,
        topic: String,
        value: Option<Bound<'_, PyAny>>,
        key: Option<Bound<'_, PyAny>>,
        headers: Option<Bound<'_, PyAny>>,
        partition: Option<u32>,
        timestamp: Option<i64>,
    ) -> PyResult<SendFuture> {
        let record = record(
            topic,
            value.as_ref(),
            key.as_ref(),
            headers.as_ref(),
            partition,
            timestamp,
        )?;
        let handle = self.hand_over(py, record)?;
        Ok(SendFuture::new(handle))
    }

    /// Sends one record without a future: failures are raised by the next `flush` or `close`.
    #[pyo3(signature = (topic, value, key = None, headers = None, partition = None, timestamp = None))]
    #[allow(clippy::too_many_arguments)]
    fn produce(
        &self,
        py: Python<'_>,
        topic: String,
        value: Option<Bound<'_, PyAny>>,
        key: Option<Bound<'_, PyAny>>,
        headers: Option<Bound<'_, PyAny>>,
        partition: Option<u32>,
        timestamp: Option<i64>,
    ) -> PyResult<()> {
        let record = record(
            topic,
            value.as_ref(),
            key.as_ref(),
            headers.as_ref(),
            partition,
            timestamp,
        )?;
        let handle = self.hand_over(py, record)?;
        self.core.keep_detached([handle]);
        Ok(())
    }

    /// Sends many values (and optionally keys) to one topic without futures.
    #[pyo3(signature = (topic, values, keys = None, partition = None))]
    fn produce_batch(
        &self,
        py: Python<'_>,
        topic: String,
        values: Bound<'_, PyAny>,
        keys: Option<Bound<'_, PyAny>>,
        partition: Option<u32>,
    ) -> PyResult<()> {
        topic_name(&topic)?;
        let core = self.core()?.clone();
        let mut keys = match &keys {
            Some(k) if !k.is_none() => Some(k.try_iter()?),
            _ => None,
        };
        let mut handles = Vec::new();
        let mut result = Ok(());
        for (i, value) in values.try_iter()?.enumerate() {
            if i >= MAX_BATCH_RECORDS {
                result = Err(invalid_input(format!(
                    "produce_batch takes at most {MAX_BATCH_RECORDS} records per call"
                )));
                break;
            }
            let step = (|| -> PyResult<SendHandle> {
                let value = value?;
                let key = match keys.as_mut() {
                    Some(keys) => Some(
                        keys.next()
                            .ok_or_else(|| invalid_input("keys has fewer items than values"))??,
                    ),
                    None => None,
                };
                let record = ProducerRecord {
                    topic: topic.clone(),
                    key: payload(key.as_ref(), "key")?,
                    value: payload(Some(&value), "value")?,
                    headers: Vec::new(),
                    partition,
                    timestamp: None,
                };
                block_on(py, core.producer.send(record))?.map_err(|e| to_py(py, e))
            })();
            match step {
                Ok(h) => handles.push(h),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        // Records handed over before a failure are sent all the same.
        core.keep_detached(handles);
        result
    }

    /// Sends every buffered record now and waits until all are acknowledged or failed.
    #[pyo3(signature = (timeout = None))]
    fn flush(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let limit = seconds(timeout)?;
        let core = self.core.clone();
        if block_on_timeout(py, async move { core.producer.flush().await }, limit)?.is_none() {
            return Err(self::timeout(format!(
                "flush did not finish within {} s",
                timeout.unwrap_or_default()
            )));
        }
        match self.core.take_failure() {
            Some(e) => Err(to_py(py, e)),
            None => Ok(()),
        }
    }

    /// Sends what is buffered, waits for it and closes the connection. Idempotent.
    #[pyo3(signature = (timeout = None))]
    fn close(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let limit = seconds(timeout)?;
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let core = self.core.clone();
        if block_on_timeout(py, async move { core.close().await }, limit)?.is_none() {
            self.core.client.close();
            return Err(self::timeout(format!(
                "close did not finish within {} s; records still buffered were dropped",
                timeout.unwrap_or_default()
            )));
        }
        match self.core.take_failure() {
            Some(e) => Err(to_py(py, e)),
            None => Ok(()),
        }
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py, None)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!(
            "<sluice.Producer {}{}>",
            self.core.client.url(),
            if self.closed() { " closed" } else { "" }
        )
    }
}

/// The outcome of one sent record.
#[pyclass(frozen, module = "sluice", name = "SendFuture")]
pub struct SendFuture {
    handle: Mutex<SendHandle>,
    outcome: OnceLock<sluice_client::Result<sluice_client::RecordMetadata>>,
    partition: u32,
}

impl SendFuture {
    fn new(handle: SendHandle) -> SendFuture {
        SendFuture {
            partition: handle.partition(),
            handle: Mutex::new(handle),
            outcome: OnceLock::new(),
        }
    }

    /// The outcome, waiting up to `limit`; `None` if it is not known by then.
    fn wait(
        &self,
        py: Python<'_>,
        limit: Option<std::time::Duration>,
    ) -> PyResult<Option<&sluice_client::Result<sluice_client::RecordMetadata>>> {
        if let Some(o) = self.outcome.get() {
            return Ok(Some(o));
        }
        if let Ok(mut h) = self.handle.try_lock()
            && let Some(r) = (&mut *h).now_or_never()
        {
            let _ = self.outcome.set(r);
            return Ok(self.outcome.get());
        }
        if limit.is_some_and(|l| l.is_zero()) {
            return Ok(None);
        }
        let deadline = limit.map(|l| std::time::Instant::now() + l);
        let done = wait::detach(py, || -> PyResult<bool> {
            let mut h = self.handle.lock().expect("send handle lock");
            if self.outcome.get().is_some() {
                return Ok(true);
            }
            match wait::drive(Pin::new(&mut *h), deadline)? {
                Some(r) => {
                    let _ = self.outcome.set(r);
                    Ok(true)
                }
                None => Ok(false),
            }
        })?;
        Ok(if done { self.outcome.get() } else { None })
    }
}

#[pymethods]
impl SendFuture {
    /// Waits for the record's outcome: its `RecordMetadata`, or raises its error.
    #[pyo3(signature = (timeout = None))]
    fn result(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<RecordMetadata> {
        match self.wait(py, seconds(timeout)?)? {
            Some(Ok(m)) => Ok(m.clone().into()),
            Some(Err(e)) => Err(to_py(py, e.clone())),
            None => Err(self::timeout(format!(
                "the record's outcome was not known within {} s",
                timeout.unwrap_or_default()
            ))),
        }
    }

    /// Waits like `result` but returns the error instead of raising it (`None` on success).
    #[pyo3(signature = (timeout = None))]
    fn exception(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Py<PyAny>>> {
        match self.wait(py, seconds(timeout)?)? {
            Some(Ok(_)) => Ok(None),
            Some(Err(e)) => Ok(Some(to_py(py, e.clone()).into_value(py).into_any())),
            None => Err(self::timeout(format!(
                "the record's outcome was not known within {} s",
                timeout.unwrap_or_default()
            ))),
        }
    }

    /// Whether the outcome is known (without waiting).
    fn done(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.wait(py, Some(std::time::Duration::ZERO))?.is_some())
    }

    /// The partition the record was routed to: known at once, except on a topic whose
    /// partitioner plugin runs in the broker (`None` there until the outcome is known).
    #[getter]
    fn partition(&self) -> Option<u32> {
        match self.outcome.get() {
            Some(Ok(m)) => Some(m.partition),
            _ if self.partition == sluice_client::ROUTED_BY_BROKER => None,
            _ => Some(self.partition),
        }
    }

    fn __repr__(&self) -> String {
        let state = match self.outcome.get() {
            None => "pending".to_string(),
            Some(Ok(m)) => format!("offset={:?}", m.offset),
            Some(Err(e)) => format!("error={e}"),
        };
        match self.partition() {
            Some(p) => format!("<sluice.SendFuture partition={p} {state}>"),
            None => format!("<sluice.SendFuture {state}>"),
        }
    }
}

/// The asyncio producer: the same as `Producer`, with awaitable methods. Connects on first use
/// (or `await producer.start()`, or `async with`).
#[pyclass(frozen, module = "sluice.aio", name = "AsyncProducer")]
pub struct AsyncProducer {
    settings: Arc<Settings>,
    core: Arc<tokio::sync::OnceCell<Arc<Core>>>,
    closed: Arc<AtomicBool>,
}

/// The connected core of an asyncio producer, connecting on first use.
async fn started(
    settings: &Settings,
    cell: &tokio::sync::OnceCell<Arc<Core>>,
    closed: &AtomicBool,
) -> PyResult<Arc<Core>> {
    if closed.load(Ordering::Acquire) {
        return Err(crate::errors::closed("producer"));
    }
    cell.get_or_try_init(|| Core::connect(settings))
        .await
        .cloned()
        .map_err(raise)
}

impl AsyncProducer {
    fn parts(
        &self,
    ) -> (
        Arc<Settings>,
        Arc<tokio::sync::OnceCell<Arc<Core>>>,
        Arc<AtomicBool>,
    ) {
        (
            self.settings.clone(),
            self.core.clone(),
            self.closed.clone(),
        )
    }
}

#[pymethods]
impl AsyncProducer {
    #[new]
    #[pyo3(signature = (
        url,
        *,
        acks = None,
        linger_ms = 5,
        batch_bytes = 1_048_576,
        buffer_bytes = 33_554_432,
        request_bytes = 8_388_608,
        delivery_timeout_ms = 120_000,
        request_timeout_ms = 30_000,
        connect_timeout_ms = 10_000,
        client_name = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        url: &str,
        acks: Option<Bound<'_, PyAny>>,
        linger_ms: u64,
        batch_bytes: usize,
        buffer_bytes: usize,
        request_bytes: usize,
        delivery_timeout_ms: u64,
        request_timeout_ms: u64,
        connect_timeout_ms: u64,
        client_name: Option<String>,
    ) -> PyResult<Self> {
        let all = PyString::new(py, "all").into_any();
        let settings = settings(
            url,
            acks.as_ref().unwrap_or(&all),
            linger_ms,
            batch_bytes,
            buffer_bytes,
            request_bytes,
            delivery_timeout_ms,
            request_timeout_ms,
            connect_timeout_ms,
            client_name,
        )?;
        Ok(AsyncProducer {
            settings: Arc::new(settings),
            core: Arc::new(tokio::sync::OnceCell::new()),
            closed: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Connects (awaitable); optional, the first send connects too.
    fn start<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (settings, cell, closed) = self.parts();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            started(&settings, &cell, &closed).await.map(|_| ())
        })
    }

    /// Sends one record; the awaitable resolves to its `RecordMetadata` once the broker
    /// acknowledged it.
    #[pyo3(signature = (topic, value, key = None, headers = None, partition = None, timestamp = None))]
    #[allow(clippy::too_many_arguments)]
    fn send<'py>(
        &self,
        py: Python<'py>,
        topic: String,
        value: Option<Bound<'py, PyAny>>,
        key: Option<Bound<'py, PyAny>>,
        headers: Option<Bound<'py, PyAny>>,
        partition: Option<u32>,
        timestamp: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let record = record(
            topic,
            value.as_ref(),
            key.as_ref(),
            headers.as_ref(),
            partition,
            timestamp,
        )?;
        let (settings, cell, closed) = self.parts();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let core = started(&settings, &cell, &closed).await?;
            let handle = core.producer.send(record).await.map_err(raise)?;
            let metadata = handle.await.map_err(raise)?;
            Ok(RecordMetadata::from(metadata))
        })
    }

    /// Hands one record over without waiting for its acknowledgement (the awaitable resolves
    /// once the producer took it, which waits only while its buffer is full); failures are
    /// raised by the next `flush` or `close`.
    #[pyo3(signature = (topic, value, key = None, headers = None, partition = None, timestamp = None))]
    #[allow(clippy::too_many_arguments)]
    fn produce<'py>(
        &self,
        py: Python<'py>,
        topic: String,
        value: Option<Bound<'py, PyAny>>,
        key: Option<Bound<'py, PyAny>>,
        headers: Option<Bound<'py, PyAny>>,
        partition: Option<u32>,
        timestamp: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let record = record(
            topic,
            value.as_ref(),
            key.as_ref(),
            headers.as_ref(),
            partition,
            timestamp,
        )?;
        let (settings, cell, closed) = self.parts();
        // Connected and the buffer has room (the usual case): hand the record over now and
        // return an awaitable that is already done, without a future on the event loop.
        if let Some(core) = cell
            .get()
            .filter(|_| !closed.load(Ordering::Acquire))
            .cloned()
        {
            let producer = core.producer.clone();
            let mut send = Box::pin(async move { producer.send(record).await });
            let ready = {
                let _enter = crate::runtime().enter();
                send.as_mut().now_or_never()
            };
            return match ready {
                Some(Ok(handle)) => {
                    core.keep_detached([handle]);
                    Ok(Bound::new(py, Done)?.into_any())
                }
                Some(Err(e)) => Err(to_py(py, e)),
                None => pyo3_async_runtimes::tokio::future_into_py(py, async move {
                    let handle = send.await.map_err(raise)?;
                    core.keep_detached([handle]);
                    Ok(())
                }),
            };
        }
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let core = started(&settings, &cell, &closed).await?;
            let handle = core.producer.send(record).await.map_err(raise)?;
            core.keep_detached([handle]);
            Ok(())
        })
    }

    /// Sends every buffered record now and waits until all are acknowledged or failed
    /// (awaitable).
    fn flush<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (settings, cell, closed) = self.parts();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let core = started(&settings, &cell, &closed).await?;
            core.producer.flush().await.map_err(raise)?;
            match core.take_failure() {
                Some(e) => Err(raise(e)),
                None => Ok(()),
            }
        })
    }

    /// Sends what is buffered, waits for it and closes the connection (awaitable). Idempotent.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (_, cell, closed) = self.parts();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            if closed.swap(true, Ordering::AcqRel) {
                return Ok(());
            }
            let Some(core) = cell.get() else {
                return Ok(());
            };
            core.close().await;
            match core.take_failure() {
                Some(e) => Err(raise(e)),
                None => Ok(()),
            }
        })
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn __aenter__<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let (settings, cell, closed) = slf.get().parts();
        let this = slf.unbind();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            started(&settings, &cell, &closed).await?;
            Ok(this)
        })
    }

    #[pyo3(signature = (*_exc))]
    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _exc: &Bound<'py, pyo3::types::PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.close(py)
    }

    fn __repr__(&self) -> String {
        format!(
            "<sluice.aio.Producer {}{}>",
            self.settings.connect.url,
            if self.closed() { " closed" } else { "" }
        )
    }
}

/// An awaitable that is already done (`await` gives `None` at once): what
/// `AsyncProducer.produce` returns when it could hand the record over without waiting.
#[pyclass(frozen, module = "sluice.aio", name = "Done")]
pub struct Done;

#[pymethods]
impl Done {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Ends the iteration at once: the awaitable's result is `None`.
    fn __next__(&self) -> Option<()> {
        None
    }

    fn __repr__(&self) -> &'static str {
        "<sluice.aio.Done>"
    }
}
