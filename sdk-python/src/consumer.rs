//! `Consumer` (blocking iteration) and `AsyncConsumer` (`async for`), over
//! `sluice_client::Consumer`: subscriptions, credit-based flow control, group membership and
//! commits all happen there.
//!
//! A record is taken from the Rust consumer only when Python asks for it, so the consumer's
//! position (what `commit` stores) never runs ahead of what the application has seen.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use pyo3::exceptions::{PyStopAsyncIteration, PyStopIteration};
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};
use sluice_client::{Assignor, ConsumerOptions, OffsetReset, StartFrom};

use crate::convert::{Record, RecordOut, RecordsOut, TopicCache, record};
use crate::errors::{closed, invalid_input, raise, to_py};
use crate::exit::CloseAtExit;
use crate::options::Connect;
use crate::runtime;
use crate::wait::{self, seconds};

/// Most records one `poll_batch` returns.
const MAX_POLL_RECORDS: usize = 100_000;

struct Settings {
    connect: Connect,
    options: ConsumerOptions,
    group: Option<String>,
}

/// `topics`: one name or an iterable of names.
fn topic_list(topics: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    let names: Vec<String> = if let Ok(s) = topics.cast::<PyString>() {
        vec![s.to_cow()?.into_owned()]
    } else {
        topics
            .try_iter()
            .map_err(|_| invalid_input("topics must be a str or an iterable of str"))?
            .map(|t| t?.extract::<String>())
            .collect::<PyResult<_>>()
            .map_err(|_| invalid_input("topics must be a str or an iterable of str"))?
    };
    if names.is_empty() {
        return Err(invalid_input("a consumer needs at least one topic"));
    }
    if names.iter().any(String::is_empty) {
        return Err(invalid_input("a topic name is empty"));
    }
    Ok(names)
}

/// The keyword arguments both consumers take, as settings.
#[allow(clippy::too_many_arguments)]
fn settings(
    url: &str,
    topics: &Bound<'_, PyAny>,
    group: Option<String>,
    auto_offset_reset: &str,
    filter: Option<String>,
    filter_params: Option<std::collections::BTreeMap<String, String>>,
    partitions: Option<Vec<u32>>,
    enable_auto_commit: bool,
    auto_commit_interval_ms: u64,
    session_timeout_ms: Option<u64>,
    instance_id: Option<String>,
    assignor: &str,
    credit_bytes: u64,
    request_timeout_ms: u64,
    connect_timeout_ms: u64,
    client_name: Option<String>,
) -> PyResult<Settings> {
    let connect = Connect::new(url, request_timeout_ms, connect_timeout_ms, client_name)?;
    let mut options = ConsumerOptions::new(topic_list(topics)?).credit_bytes(credit_bytes);
    let (start, reset) = match auto_offset_reset {
        "earliest" => (StartFrom::Earliest, OffsetReset::Earliest),
        "latest" => (StartFrom::Latest, OffsetReset::Latest),
        "none" if group.is_some() => (StartFrom::Latest, OffsetReset::None),
        "none" => {
            return Err(invalid_input(
                "auto_offset_reset=\"none\" needs a group (a consumer without one starts at \
                 \"earliest\" or \"latest\")",
            ));
        }
        other => {
            return Err(invalid_input(format!(
                "auto_offset_reset must be \"earliest\", \"latest\" or \"none\", not {other:?}"
            )));
        }
    };
    options = options.start(start).auto_offset_reset(reset);
    if let Some(group) = &group {
        if group.is_empty() {
            return Err(invalid_input("the group name is empty"));
        }
        if partitions.is_some() {
            return Err(invalid_input(
                "partitions cannot be chosen in a group: the broker assigns them",
            ));
        }
        options = options
            .group(group.clone())
            .auto_commit_interval_ms(enable_auto_commit.then_some(auto_commit_interval_ms))
            .assignor(match assignor {
                "sticky" => Assignor::Sticky,
                "range" => Assignor::Range,
                "roundrobin" => Assignor::RoundRobin,
                other => {
                    return Err(invalid_input(format!(
                        "assignor must be \"sticky\", \"range\" or \"roundrobin\", not {other:?}"
                    )));
                }
            });
        if let Some(ms) = session_timeout_ms {
            options = options.session_timeout_ms(ms);
        }
        if let Some(id) = instance_id {
            options = options.instance_id(id);
        }
    } else if let Some(p) = partitions {
        options = options.partitions(p);
    }
    match (filter, filter_params) {
        (Some(name), params) => {
            if name.is_empty() {
                return Err(invalid_input("the filter plugin name is empty"));
            }
            options = options.filter(name, params.unwrap_or_default());
        }
        (None, Some(_)) => {
            return Err(invalid_input("filter_params needs a filter"));
        }
        (None, None) => {}
    }
    Ok(Settings {
        connect,
        options,
        group,
    })
}

/// Reads records of one or more topics: iterate over it (blocks until a record comes; Ctrl-C
/// interrupts), or call `poll`.
///
/// Without `group` it reads every partition of its topics itself and commits nothing
/// (broadcast). With `group` it is a member of that consumer group: the broker shares the
/// partitions among the members, each partition starts at the group's committed offset (else
/// per `auto_offset_reset`), and positions are committed every `auto_commit_interval_ms`, when
/// partitions move, and at `close()`.
///
/// Args:
///     url: the broker.
///     topics: a topic name or several.
///     group: the consumer group to join, or None.
///     auto_offset_reset: where to start without a committed offset: "earliest", "latest"
///         (default) or "none" (groups only: report an error instead).
///     filter: an uploaded filter plugin to run in the broker on this consumer's records.
///     filter_params: the filter's parameters (str to str).
///     partitions: without a group, read only these partitions.
///     enable_auto_commit, auto_commit_interval_ms, session_timeout_ms, instance_id,
///     assignor ("sticky", "range", "roundrobin"): group settings.
///     credit_bytes: bytes the broker may push ahead of the application, per topic.
///
/// Raises:
///     sluice.UnknownTopicError: a topic does not exist (without a group).
///     sluice.ConnectionError: the broker cannot be reached.
#[pyclass(frozen, module = "sluice", name = "Consumer")]
pub struct Consumer {
    client: sluice_client::Client,
    group: Option<String>,
    state: Arc<SyncState>,
    topics: Mutex<TopicCache>,
}

/// The Rust consumer of a `Consumer`; `None` once closed. Locked only without the GIL (or
/// with `try_lock`), so a thread waiting for it never holds the GIL. `closing` makes a poll
/// blocked in another thread give the lock up within a slice, so `close` never waits for a
/// record to come.
struct SyncState {
    consumer: Mutex<Option<sluice_client::Consumer>>,
    closing: AtomicBool,
}

impl std::ops::Deref for SyncState {
    type Target = Mutex<Option<sluice_client::Consumer>>;
    fn deref(&self) -> &Self::Target {
        &self.consumer
    }
}

impl CloseAtExit for SyncState {
    fn close_at_exit(self: Arc<Self>) -> Option<BoxFuture<'static, ()>> {
        self.closing.store(true, Ordering::Release);
        let consumer = self.consumer.try_lock().ok()?.take()?;
        Some(Box::pin(async move {
            let _ = consumer.close().await;
        }))
    }
}

impl CloseAtExit for tokio::sync::Mutex<AsyncState> {
    fn close_at_exit(self: Arc<Self>) -> Option<BoxFuture<'static, ()>> {
        let mut state = self.try_lock().ok()?;
        state.closed = true;
        let consumer = state.consumer.take()?;
        Some(Box::pin(async move {
            let _ = consumer.close().await;
        }))
    }
}

/// What waiting for the next record gave.
enum Next {
    Record(sluice_client::Record),
    /// The consumer ended (closed).
    End,
    /// Nothing within the timeout.
    Timeout,
}

impl Consumer {
    /// The next record, waiting up to `limit`.
    fn next_record(&self, py: Python<'_>, limit: Option<Duration>) -> PyResult<Next> {
        if let Ok(mut state) = self.state.try_lock() {
            let Some(consumer) = state.as_mut() else {
                return Ok(Next::End);
            };
            let _enter = runtime().enter();
            match consumer.next().now_or_never() {
                Some(Some(Ok(r))) => return Ok(Next::Record(r)),
                Some(Some(Err(e))) => return Err(to_py(py, e)),
                Some(None) => return Ok(Next::End),
                None => {}
            }
        }
        if limit.is_some_and(|l| l.is_zero()) {
            return Ok(Next::Timeout);
        }
        let deadline = limit.map(|l| Instant::now() + l);
        let got = wait::detach(py, || -> PyResult<Result<Next, sluice_client::Error>> {
            let mut state = self.state.lock().expect("consumer lock");
            let Some(consumer) = state.as_mut() else {
                return Ok(Ok(Next::End));
            };
            let next = std::pin::pin!(consumer.next());
            let closing = || self.state.closing.load(Ordering::Acquire);
            Ok(match wait::drive_unless(next, deadline, closing)? {
                Some(Some(Ok(r))) => Ok(Next::Record(r)),
                Some(Some(Err(e))) => Err(e),
                Some(None) => Ok(Next::End),
                None if closing() => Ok(Next::End),
                None => Ok(Next::Timeout),
            })
        })?;
        got.map_err(|e| to_py(py, e))
    }

    fn to_record(&self, py: Python<'_>, r: sluice_client::Record) -> PyResult<Py<Record>> {
        match self.topics.try_lock() {
            Ok(mut topics) => record(py, r, &mut topics),
            Err(_) => record(py, r, &mut TopicCache::default()),
        }
    }

    /// Runs `f` on the Rust consumer with the GIL released.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut sluice_client::Consumer) -> PyResult<T> + Send,
    ) -> PyResult<T> {
        wait::detach(py, || {
            let mut state = self.state.lock().expect("consumer lock");
            match state.as_mut() {
                Some(c) => f(c),
                None => Err(closed("consumer")),
            }
        })
    }
}

#[pymethods]
impl Consumer {
    #[new]
    #[pyo3(signature = (
        url,
        topics,
        *,
        group = None,
        auto_offset_reset = "latest",
        filter = None,
        filter_params = None,
        partitions = None,
        enable_auto_commit = true,
        auto_commit_interval_ms = 5_000,
        session_timeout_ms = None,
        instance_id = None,
        assignor = "sticky",
        credit_bytes = 8_388_608,
        request_timeout_ms = 30_000,
        connect_timeout_ms = 10_000,
        client_name = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        url: &str,
        topics: &Bound<'_, PyAny>,
        group: Option<String>,
        auto_offset_reset: &str,
        filter: Option<String>,
        filter_params: Option<std::collections::BTreeMap<String, String>>,
        partitions: Option<Vec<u32>>,
        enable_auto_commit: bool,
        auto_commit_interval_ms: u64,
        session_timeout_ms: Option<u64>,
        instance_id: Option<String>,
        assignor: &str,
        credit_bytes: u64,
        request_timeout_ms: u64,
        connect_timeout_ms: u64,
        client_name: Option<String>,
    ) -> PyResult<Self> {
        let settings = settings(
            url,
            topics,
            group,
            auto_offset_reset,
            filter,
            filter_params,
            partitions,
            enable_auto_commit,
            auto_commit_interval_ms,
            session_timeout_ms,
            instance_id,
            assignor,
            credit_bytes,
            request_timeout_ms,
            connect_timeout_ms,
            client_name,
        )?;
        let (client, consumer) = crate::block_on(py, async {
            let client = settings.connect.open().await?;
            let consumer = client.consumer(settings.options.clone()).await?;
            Ok::<_, sluice_client::Error>((client, consumer))
        })?
        .map_err(|e| to_py(py, e))?;
        let state = Arc::new(SyncState {
            consumer: Mutex::new(Some(consumer)),
            closing: AtomicBool::new(false),
        });
        crate::exit::track(&state);
        Ok(Consumer {
            client,
            group: settings.group,
            state,
            topics: Mutex::new(TopicCache::default()),
        })
    }

    /// The next record, waiting up to `timeout` seconds (`None`: until one comes); `None` if
    /// none came in time.
    #[pyo3(signature = (timeout = None))]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Py<Record>>> {
        match self.next_record(py, seconds(timeout)?)? {
            Next::Record(r) => Ok(Some(self.to_record(py, r)?)),
            Next::Timeout => Ok(None),
            Next::End => Err(closed("consumer")),
        }
    }

    /// Waits up to `timeout` seconds for a first record, then takes up to `max_records` that
    /// are already at hand; an empty list if none came in time.
    #[pyo3(signature = (max_records = 500, timeout = None))]
    fn poll_batch(
        &self,
        py: Python<'_>,
        max_records: usize,
        timeout: Option<f64>,
    ) -> PyResult<Vec<Py<Record>>> {
        if max_records == 0 || max_records > MAX_POLL_RECORDS {
            return Err(invalid_input(format!(
                "max_records must be 1 to {MAX_POLL_RECORDS}"
            )));
        }
        let mut out = Vec::new();
        match self.next_record(py, seconds(timeout)?)? {
            Next::Record(r) => out.push(self.to_record(py, r)?),
            Next::Timeout => return Ok(out),
            Next::End => return Err(closed("consumer")),
        }
        while out.len() < max_records {
            match self.next_record(py, Some(Duration::ZERO)) {
                Ok(Next::Record(r)) => out.push(self.to_record(py, r)?),
                // An error after some records: they are returned, the error comes next time.
                Err(e) if !out.is_empty() => {
                    drop(e);
                    break;
                }
                Err(e) => return Err(e),
                Ok(_) => break,
            }
        }
        Ok(out)
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<Record>> {
        match self.next_record(py, None)? {
            Next::Record(r) => self.to_record(py, r),
            Next::End | Next::Timeout => Err(PyStopIteration::new_err(())),
        }
    }

    /// Group mode: commits the position of every partition read (`offsets=None`), or the
    /// given (topic, partition, next offset to read) triples.
    #[pyo3(signature = (offsets = None))]
    fn commit(&self, py: Python<'_>, offsets: Option<Vec<(String, u32, u64)>>) -> PyResult<()> {
        let result = self.with(py, |c| {
            let out = match &offsets {
                None => wait::drive(std::pin::pin!(c.commit()), None)?,
                Some(list) => {
                    let refs: Vec<(&str, u32, u64)> =
                        list.iter().map(|(t, p, o)| (t.as_str(), *p, *o)).collect();
                    wait::drive(std::pin::pin!(c.commit_offsets(&refs)), None)?
                }
            };
            Ok(out.expect("no deadline"))
        })?;
        result.map_err(|e| to_py(py, e))
    }

    /// Moves a partition's position: the next record read from it is the one at `offset`.
    fn seek(&self, py: Python<'_>, topic: String, partition: u32, offset: u64) -> PyResult<()> {
        self.with(py, |c| Ok(c.seek(&topic, partition, offset)))?
            .map_err(|e| to_py(py, e))
    }

    /// The offset of the next record to read from a partition, or `None` if this consumer
    /// does not read it.
    fn position(&self, py: Python<'_>, topic: String, partition: u32) -> PyResult<Option<u64>> {
        self.with(py, |c| Ok(c.position(&topic, partition)))
    }

    /// The (topic, partition) pairs this consumer reads now.
    fn assignment(&self, py: Python<'_>) -> PyResult<Vec<(String, u32)>> {
        self.with(py, |c| Ok(c.assignment()))
    }

    /// Stops reading these (topic, partition) pairs until `resume`; positions are kept.
    fn pause(&self, py: Python<'_>, partitions: Vec<(String, u32)>) -> PyResult<()> {
        self.with(py, |c| {
            let refs: Vec<(&str, u32)> = partitions.iter().map(|(t, p)| (t.as_str(), *p)).collect();
            Ok(c.pause(&refs))
        })?
        .map_err(|e| to_py(py, e))
    }

    /// Reads paused partitions again, from their positions.
    fn resume(&self, py: Python<'_>, partitions: Vec<(String, u32)>) -> PyResult<()> {
        self.with(py, |c| {
            let refs: Vec<(&str, u32)> = partitions.iter().map(|(t, p)| (t.as_str(), *p)).collect();
            Ok(c.resume(&refs))
        })?
        .map_err(|e| to_py(py, e))
    }

    /// The paused (topic, partition) pairs.
    fn paused(&self, py: Python<'_>) -> PyResult<Vec<(String, u32)>> {
        self.with(py, |c| Ok(c.paused()))
    }

    /// Ends the subscriptions; in a group, commits the positions (with auto-commit) and leaves
    /// the group. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.state.closing.store(true, Ordering::Release);
        let taken = wait::detach(py, || self.state.lock().expect("consumer lock").take());
        let Some(consumer) = taken else {
            return Ok(());
        };
        let result = crate::block_on(py, consumer.close());
        self.client.close();
        result?.map_err(|e| to_py(py, e))
    }

    /// The group this consumer is a member of, or `None` (it reads every partition itself).
    #[getter]
    fn group(&self) -> Option<String> {
        self.group.clone()
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        wait::detach(py, || self.state.lock().expect("consumer lock").is_none())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "<sluice.Consumer {}{}{}>",
            self.client.url(),
            self.group
                .as_ref()
                .map_or(String::new(), |g| format!(" group={g}")),
            if self.closed(py) { " closed" } else { "" }
        )
    }
}

/// The asyncio consumer: the same as `Consumer`, with `async for` and awaitable methods.
/// Connects and subscribes on first use (or `await consumer.start()`, or `async with`).
#[pyclass(frozen, module = "sluice.aio", name = "AsyncConsumer")]
pub struct AsyncConsumer {
    settings: Arc<Settings>,
    state: Arc<tokio::sync::Mutex<AsyncState>>,
    /// Set by `close`: a read waiting for records (holding `state`) ends at once.
    closing: tokio::sync::watch::Sender<bool>,
}

#[derive(Default)]
struct AsyncState {
    client: Option<sluice_client::Client>,
    consumer: Option<sluice_client::Consumer>,
    closed: bool,
}

impl AsyncState {
    async fn started(&mut self, settings: &Settings) -> PyResult<&mut sluice_client::Consumer> {
        if self.closed {
            return Err(closed("consumer"));
        }
        if self.consumer.is_none() {
            let client = settings.connect.open().await.map_err(raise)?;
            let consumer = client
                .consumer(settings.options.clone())
                .await
                .map_err(raise)?;
            self.client = Some(client);
            self.consumer = Some(consumer);
        }
        Ok(self.consumer.as_mut().expect("set above"))
    }
}

impl AsyncConsumer {
    /// An awaitable running `f` on the started consumer.
    fn run<'py, T, F>(&self, py: Python<'py>, f: F) -> PyResult<Bound<'py, PyAny>>
    where
        T: for<'a> IntoPyObject<'a> + Send + 'static,
        F: for<'a> FnOnce(
                &'a mut sluice_client::Consumer,
            ) -> futures_util::future::BoxFuture<'a, PyResult<T>>
            + Send
            + 'static,
    {
        let settings = self.settings.clone();
        let state = self.state.clone();
        let mut closing = self.closing.subscribe();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let mut state = state.lock().await;
            let consumer = state.started(&settings).await?;
            tokio::select! {
                biased;
                out = f(consumer) => out,
                _ = closing.wait_for(|c| *c) => Err(closed("consumer")),
            }
        })
    }
}

#[pymethods]
impl AsyncConsumer {
    #[new]
    #[pyo3(signature = (
        url,
        topics,
        *,
        group = None,
        auto_offset_reset = "latest",
        filter = None,
        filter_params = None,
        partitions = None,
        enable_auto_commit = true,
        auto_commit_interval_ms = 5_000,
        session_timeout_ms = None,
        instance_id = None,
        assignor = "sticky",
        credit_bytes = 8_388_608,
        request_timeout_ms = 30_000,
        connect_timeout_ms = 10_000,
        client_name = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        url: &str,
        topics: &Bound<'_, PyAny>,
        group: Option<String>,
        auto_offset_reset: &str,
        filter: Option<String>,
        filter_params: Option<std::collections::BTreeMap<String, String>>,
        partitions: Option<Vec<u32>>,
        enable_auto_commit: bool,
        auto_commit_interval_ms: u64,
        session_timeout_ms: Option<u64>,
        instance_id: Option<String>,
        assignor: &str,
        credit_bytes: u64,
        request_timeout_ms: u64,
        connect_timeout_ms: u64,
        client_name: Option<String>,
    ) -> PyResult<Self> {
        let settings = settings(
            url,
            topics,
            group,
            auto_offset_reset,
            filter,
            filter_params,
            partitions,
            enable_auto_commit,
            auto_commit_interval_ms,
            session_timeout_ms,
            instance_id,
            assignor,
            credit_bytes,
            request_timeout_ms,
            connect_timeout_ms,
            client_name,
        )?;
        let state = Arc::new(tokio::sync::Mutex::new(AsyncState::default()));
        crate::exit::track(&state);
        Ok(AsyncConsumer {
            settings: Arc::new(settings),
            state,
            closing: tokio::sync::watch::Sender::new(false),
        })
    }

    /// Connects and subscribes (awaitable); optional, the first read does it too.
    fn start<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.run(py, |_| Box::pin(async { Ok(()) }))
    }

    /// The next record, waiting up to `timeout` seconds (`None`: until one comes); resolves to
    /// `None` if none came in time.
    #[pyo3(signature = (timeout = None))]
    fn poll<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        let limit = seconds(timeout)?;
        self.run(py, move |c| {
            Box::pin(async move {
                let next = match limit {
                    Some(l) => match tokio::time::timeout(l, c.next()).await {
                        Ok(n) => n,
                        Err(_) => return Ok(None),
                    },
                    None => c.next().await,
                };
                match next {
                    Some(Ok(r)) => Ok(Some(RecordOut(r))),
                    Some(Err(e)) => Err(raise(e)),
                    None => Err(closed("consumer")),
                }
            })
        })
    }

    /// Waits up to `timeout` seconds for a first record, then takes up to `max_records` that
    /// are already at hand; resolves to a list (empty if none came in time).
    #[pyo3(signature = (max_records = 500, timeout = None))]
    fn poll_batch<'py>(
        &self,
        py: Python<'py>,
        max_records: usize,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if max_records == 0 || max_records > MAX_POLL_RECORDS {
            return Err(invalid_input(format!(
                "max_records must be 1 to {MAX_POLL_RECORDS}"
            )));
        }
        let limit = seconds(timeout)?.unwrap_or(Duration::MAX / 4);
        self.run(py, move |c| {
            Box::pin(async move {
                c.poll_batch(max_records, limit)
                    .await
                    .map(RecordsOut)
                    .map_err(raise)
            })
        })
    }

    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let settings = self.settings.clone();
        let state = self.state.clone();
        let mut closing = self.closing.subscribe();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let mut state = state.lock().await;
            if state.closed {
                return Err(PyStopAsyncIteration::new_err(()));
            }
            let consumer = state.started(&settings).await?;
            tokio::select! {
                biased;
                next = consumer.next() => match next {
                    Some(Ok(r)) => Ok(RecordOut(r)),
                    Some(Err(e)) => Err(raise(e)),
                    None => Err(PyStopAsyncIteration::new_err(())),
                },
                _ = closing.wait_for(|c| *c) => Err(PyStopAsyncIteration::new_err(())),
            }
        })
    }

    /// Group mode: commits the position of every partition read (`offsets=None`), or the
    /// given (topic, partition, next offset to read) triples (awaitable).
    #[pyo3(signature = (offsets = None))]
    fn commit<'py>(
        &self,
        py: Python<'py>,
        offsets: Option<Vec<(String, u32, u64)>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run(py, move |c| {
            Box::pin(async move {
                match offsets {
                    None => c.commit().await,
                    Some(list) => {
                        let refs: Vec<(&str, u32, u64)> =
                            list.iter().map(|(t, p, o)| (t.as_str(), *p, *o)).collect();
                        c.commit_offsets(&refs).await
                    }
                }
                .map_err(raise)
            })
        })
    }

    /// Moves a partition's position (awaitable).
    fn seek<'py>(
        &self,
        py: Python<'py>,
        topic: String,
        partition: u32,
        offset: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run(py, move |c| {
            Box::pin(async move { c.seek(&topic, partition, offset).map_err(raise) })
        })
    }

    /// The offset of the next record to read from a partition, or `None` (awaitable).
    fn position<'py>(
        &self,
        py: Python<'py>,
        topic: String,
        partition: u32,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run(py, move |c| {
            Box::pin(async move { Ok(c.position(&topic, partition)) })
        })
    }

    /// The (topic, partition) pairs this consumer reads now (awaitable).
    fn assignment<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.run(py, |c| Box::pin(async move { Ok(c.assignment()) }))
    }

    /// Stops reading these (topic, partition) pairs until `resume` (awaitable).
    fn pause<'py>(
        &self,
        py: Python<'py>,
        partitions: Vec<(String, u32)>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run(py, move |c| {
            Box::pin(async move {
                let refs: Vec<(&str, u32)> =
                    partitions.iter().map(|(t, p)| (t.as_str(), *p)).collect();
                c.pause(&refs).map_err(raise)
            })
        })
    }

    /// Reads paused partitions again (awaitable).
    fn resume<'py>(
        &self,
        py: Python<'py>,
        partitions: Vec<(String, u32)>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.run(py, move |c| {
            Box::pin(async move {
                let refs: Vec<(&str, u32)> =
                    partitions.iter().map(|(t, p)| (t.as_str(), *p)).collect();
                c.resume(&refs).map_err(raise)
            })
        })
    }

    /// The paused (topic, partition) pairs (awaitable).
    fn paused<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.run(py, |c| Box::pin(async move { Ok(c.paused()) }))
    }

    /// Ends the subscriptions; in a group, commits (with auto-commit) and leaves (awaitable).
    /// Idempotent.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.closing.send_replace(true);
        let state = self.state.clone();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let mut state = state.lock().await;
            state.closed = true;
            let consumer = state.consumer.take();
            let client = state.client.take();
            drop(state);
            let result = match consumer {
                Some(c) => c.close().await,
                None => Ok(()),
            };
            if let Some(client) = client {
                client.close();
            }
            result.map_err(raise)
        })
    }

    /// The group this consumer is a member of, or `None`.
    #[getter]
    fn group(&self) -> Option<String> {
        self.settings.group.clone()
    }

    fn __aenter__<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let settings = slf.get().settings.clone();
        let state = slf.get().state.clone();
        let this = slf.unbind();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            state.lock().await.started(&settings).await?;
            Ok(this)
        })
    }

    #[pyo3(signature = (*_exc))]
    fn __aexit__<'py>(
        &self,
        py: Python<'py>,
        _exc: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.close(py)
    }

    fn __repr__(&self) -> String {
        format!(
            "<sluice.aio.Consumer {}{}>",
            self.settings.connect.url,
            self.settings
                .group
                .as_ref()
                .map_or(String::new(), |g| format!(" group={g}")),
        )
    }
}
