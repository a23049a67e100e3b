//! `Admin` (blocking) and `AsyncAdmin` (asyncio): topics, consumer groups and plugins, over
//! `sluice_client::Admin`. Answers are the dicts and lists of the broker's JSON encoding, the
//! same shapes the HTTP API returns (docs/PROTOCOL.md).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyString, PyTuple};
use sluice_client::{AlterTopic, NewTopic, StartFrom};

use crate::convert::Json;
use crate::errors::{closed, invalid_input, raise};
use crate::options::Connect;

/// Largest plugin module read from a file (the broker's own cap is lower, 10 MiB by default,
/// and it answers `invalid_plugin` past it; this only bounds what the client reads).
const MAX_MODULE_BYTES: u64 = 64 << 20;

/// One admin call, built from Python arguments (with the GIL) and run on the runtime.
enum Op {
    CreateTopic(NewTopic),
    ListTopics,
    DescribeTopic(String),
    AlterTopic(String, AlterTopic),
    DeleteTopic(String),
    ListOffsets(String, Option<i64>),
    ListGroups,
    DescribeGroup(String),
    GroupOffsets(String, Option<Vec<String>>),
    ResetOffsets(String, StartFrom, Option<Vec<String>>),
    DeleteGroup(String),
    UploadPlugin(String, Vec<u8>),
    ListPlugins,
    DescribePlugin(String),
    DeletePlugin(String),
}

impl Op {
    /// Runs the call; the answer as JSON-shaped Python data (`None` for calls that answer
    /// nothing).
    async fn run(self, admin: &sluice_client::Admin) -> PyResult<Option<Json>> {
        fn json<T: serde::Serialize>(r: sluice_client::Result<T>) -> PyResult<Option<Json>> {
            Json::of(&r.map_err(raise)?).map(Some)
        }
        fn done(r: sluice_client::Result<()>) -> PyResult<Option<Json>> {
            r.map_err(raise).map(|()| None)
        }
        fn refs(t: &Option<Vec<String>>) -> Option<Vec<&str>> {
            t.as_ref().map(|t| t.iter().map(String::as_str).collect())
        }
        match self {
            Op::CreateTopic(t) => json(admin.create_topic(t).await),
            Op::ListTopics => json(admin.list_topics().await),
            Op::DescribeTopic(t) => json(admin.describe_topic(&t).await),
            Op::AlterTopic(t, changes) => json(admin.alter_topic(&t, changes).await),
            Op::DeleteTopic(t) => done(admin.delete_topic(&t).await),
            Op::ListOffsets(t, ts) => json(admin.list_offsets(&t, ts).await),
            Op::ListGroups => json(admin.list_groups().await),
            Op::DescribeGroup(g) => json(admin.describe_group(&g).await),
            Op::GroupOffsets(g, topics) => {
                let topics = refs(&topics);
                json(admin.group_offsets(&g, topics.as_deref()).await)
            }
            Op::ResetOffsets(g, to, topics) => {
                let topics = refs(&topics);
                json(admin.reset_offsets(&g, to, topics.as_deref()).await)
            }
            Op::DeleteGroup(g) => done(admin.delete_group(&g).await),
            Op::UploadPlugin(name, module) => json(admin.upload_plugin(&name, module).await),
            Op::ListPlugins => json(admin.list_plugins().await),
            Op::DescribePlugin(name) => json(admin.describe_plugin(&name).await),
            Op::DeletePlugin(name) => done(admin.delete_plugin(&name).await),
        }
    }
}

/// A setting's value: str, int, float or bool (as `true`/`false`).
fn config_value(v: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(if b.is_true() { "true" } else { "false" }.into());
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(s.to_cow()?.into_owned());
    }
    if v.is_instance_of::<pyo3::types::PyInt>() || v.is_instance_of::<pyo3::types::PyFloat>() {
        return Ok(v.str()?.to_cow()?.into_owned());
    }
    Err(invalid_input(format!(
        "topic settings are str, int, float or bool, not {}",
        v.get_type().name()?
    )))
}

fn name(value: String, what: &str) -> PyResult<String> {
    if value.is_empty() {
        return Err(invalid_input(format!("the {what} name is empty")));
    }
    Ok(value)
}

fn create_topic(
    topic: String,
    partitions: u32,
    replication_factor: Option<u16>,
    config: Option<&Bound<'_, PyDict>>,
) -> PyResult<Op> {
    // None lets the broker choose (1 alone, 3 in a cluster of three or more).
    let mut t = NewTopic::new(name(topic, "topic")?)
        .partitions(partitions)
        .replication_factor(replication_factor.unwrap_or(0));
    if let Some(config) = config {
        for (k, v) in config.iter() {
            t = t.config(k.extract::<String>()?, config_value(&v)?);
        }
    }
    Ok(Op::CreateTopic(t))
}

fn alter_topic(
    topic: String,
    config: Option<&Bound<'_, PyDict>>,
    partitions: Option<u32>,
) -> PyResult<Op> {
    let mut configs = BTreeMap::new();
    if let Some(config) = config {
        for (k, v) in config.iter() {
            let value = if v.is_none() {
                None
            } else {
                Some(config_value(&v)?)
            };
            configs.insert(k.extract::<String>()?, value);
        }
    }
    Ok(Op::AlterTopic(
        name(topic, "topic")?,
        AlterTopic {
            configs,
            partitions,
        },
    ))
}

/// `to`: "earliest", "latest" or an offset; or `timestamp` (ms) instead.
fn reset_offsets(
    group: String,
    to: Option<&Bound<'_, PyAny>>,
    timestamp: Option<i64>,
    topics: Option<Vec<String>>,
) -> PyResult<Op> {
    let to = match (to, timestamp) {
        (Some(_), Some(_)) => {
            return Err(invalid_input("give `to` or `timestamp`, not both"));
        }
        (None, Some(ts)) => StartFrom::Timestamp(ts),
        (None, None) => {
            return Err(invalid_input(
                "give `to` (\"earliest\", \"latest\" or an offset) or `timestamp`",
            ));
        }
        (Some(v), None) => {
            if let Ok(offset) = v.extract::<u64>() {
                StartFrom::Offset(offset)
            } else {
                match v.extract::<String>().as_deref() {
                    Ok("earliest") => StartFrom::Earliest,
                    Ok("latest") => StartFrom::Latest,
                    _ => {
                        return Err(invalid_input(
                            "to must be \"earliest\", \"latest\" or an offset >= 0",
                        ));
                    }
                }
            }
        }
    };
    Ok(Op::ResetOffsets(name(group, "group")?, to, topics))
}

/// The module: `bytes`, or a path (str or `os.PathLike`) to a `.wasm` file.
fn module_bytes(module: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(b) = module.cast::<PyBytes>() {
        return Ok(b.as_bytes().to_vec());
    }
    let path: std::path::PathBuf = module.extract().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err("module must be bytes or a path to a .wasm file")
    })?;
    let read = || -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let file = std::fs::File::open(&path)?;
        let len = file.metadata()?.len();
        if len > MAX_MODULE_BYTES {
            return Err(std::io::Error::other(format!(
                "{len} bytes, more than the {MAX_MODULE_BYTES} a plugin may have"
            )));
        }
        let mut out = Vec::with_capacity(len as usize);
        file.take(MAX_MODULE_BYTES + 1).read_to_end(&mut out)?;
        Ok(out)
    };
    read().map_err(|e| {
        pyo3::exceptions::PyOSError::new_err(format!("cannot read {}: {e}", path.display()))
    })
}

/// Administration of topics, consumer groups and plugins. Answers are dicts and lists in the
/// shapes of the broker's HTTP API (docs/PROTOCOL.md).
///
/// Args:
///     url: the broker.
///     request_timeout_ms: how long a call waits for its answer (default 30 000; uploading a
///         large plugin to a busy broker may need more).
///     connect_timeout_ms: how long connecting may take (default 10 000).
///     client_name: the name the broker logs.
#[pyclass(frozen, module = "sluice", name = "Admin")]
pub struct Admin {
    client: sluice_client::Client,
    admin: sluice_client::Admin,
    closed: AtomicBool,
}

impl Admin {
    fn call(&self, py: Python<'_>, op: Op) -> PyResult<Option<Py<PyAny>>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed("admin client"));
        }
        let admin = self.admin.clone();
        let answer = crate::block_on(py, async move { op.run(&admin).await })??;
        answer
            .map(|j| Ok(j.into_pyobject(py)?.unbind()))
            .transpose()
    }
}

#[pymethods]
impl Admin {
    #[new]
    #[pyo3(signature = (url, *, request_timeout_ms = 30_000, connect_timeout_ms = 10_000, client_name = None))]
    fn new(
        py: Python<'_>,
        url: &str,
        request_timeout_ms: u64,
        connect_timeout_ms: u64,
        client_name: Option<String>,
    ) -> PyResult<Self> {
        let connect = Connect::new(url, request_timeout_ms, connect_timeout_ms, client_name)?;
        let client = crate::block_on(py, async { connect.open().await })?.map_err(raise)?;
        Ok(Admin {
            admin: client.admin(),
            client,
            closed: AtomicBool::new(false),
        })
    }

    /// Creates a topic; returns its description.
    #[pyo3(signature = (name, partitions = 1, replication_factor = None, config = None))]
    fn create_topic(
        &self,
        py: Python<'_>,
        name: String,
        partitions: u32,
        replication_factor: Option<u16>,
        config: Option<Bound<'_, PyDict>>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let op = create_topic(name, partitions, replication_factor, config.as_ref())?;
        self.call(py, op)
    }

    /// Every topic, sorted by name.
    fn list_topics(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.call(py, Op::ListTopics)
    }

    /// A topic's partitions and settings.
    fn describe_topic(&self, py: Python<'_>, name: String) -> PyResult<Option<Py<PyAny>>> {
        self.call(py, Op::DescribeTopic(self::name(name, "topic")?))
    }

    /// Changes settings (`None` resets one) and/or grows the partition count.
    #[pyo3(signature = (name, config = None, partitions = None))]
    fn alter_topic(
        &self,
        py: Python<'_>,
        name: String,
        config: Option<Bound<'_, PyDict>>,
        partitions: Option<u32>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let op = alter_topic(name, config.as_ref(), partitions)?;
        self.call(py, op)
    }

    /// Deletes a topic and its data.
    fn delete_topic(&self, py: Python<'_>, name: String) -> PyResult<()> {
        self.call(py, Op::DeleteTopic(self::name(name, "topic")?))
            .map(drop)
    }

    /// Earliest and latest offset of each partition (and, with `timestamp` in ms, the first
    /// offset at or after it).
    #[pyo3(signature = (topic, timestamp = None))]
    fn list_offsets(
        &self,
        py: Python<'_>,
        topic: String,
        timestamp: Option<i64>,
    ) -> PyResult<Option<Py<PyAny>>> {
        self.call(py, Op::ListOffsets(name(topic, "topic")?, timestamp))
    }

    /// Every consumer group, sorted by id.
    fn list_groups(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.call(py, Op::ListGroups)
    }

    /// A group: state, members, and per partition the committed offset, end offset and lag.
    fn describe_group(&self, py: Python<'_>, group: String) -> PyResult<Option<Py<PyAny>>> {
        self.call(py, Op::DescribeGroup(name(group, "group")?))
    }

    /// A group's committed offsets (of `topics`, or of every topic).
    #[pyo3(signature = (group, topics = None))]
    fn group_offsets(
        &self,
        py: Python<'_>,
        group: String,
        topics: Option<Vec<String>>,
    ) -> PyResult<Option<Py<PyAny>>> {
        self.call(py, Op::GroupOffsets(name(group, "group")?, topics))
    }

    /// Moves a group's committed offsets (the group must have no active members).
    #[pyo3(signature = (group, to = None, *, timestamp = None, topics = None))]
    fn reset_offsets(
        &self,
        py: Python<'_>,
        group: String,
        to: Option<Bound<'_, PyAny>>,
        timestamp: Option<i64>,
        topics: Option<Vec<String>>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let op = reset_offsets(group, to.as_ref(), timestamp, topics)?;
        self.call(py, op)
    }

    /// Deletes a group's committed offsets (the group must have no active members).
    fn delete_group(&self, py: Python<'_>, group: String) -> PyResult<()> {
        self.call(py, Op::DeleteGroup(name(group, "group")?))
            .map(drop)
    }

    /// Uploads (or replaces) plugin `name` from a `.wasm` file path or bytes.
    fn upload_plugin(
        &self,
        py: Python<'_>,
        name: String,
        module: Bound<'_, PyAny>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let op = Op::UploadPlugin(self::name(name, "plugin")?, module_bytes(&module)?);
        self.call(py, op)
    }

    /// Every uploaded plugin, sorted by name.
    fn list_plugins(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.call(py, Op::ListPlugins)
    }

    /// One plugin: kind, ABI version, size, sha256 and health counters.
    fn describe_plugin(&self, py: Python<'_>, name: String) -> PyResult<Option<Py<PyAny>>> {
        self.call(py, Op::DescribePlugin(self::name(name, "plugin")?))
    }

    /// Deletes a plugin.
    fn delete_plugin(&self, py: Python<'_>, name: String) -> PyResult<()> {
        self.call(py, Op::DeletePlugin(self::name(name, "plugin")?))
            .map(drop)
    }

    /// Closes the connection. Idempotent.
    fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.client.close();
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, PyTuple>) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        format!("<sluice.Admin {}>", self.client.url())
    }
}

/// The asyncio admin client: the same methods as `Admin`, awaitable. Connects on first use.
#[pyclass(frozen, module = "sluice.aio", name = "AsyncAdmin")]
pub struct AsyncAdmin {
    connect: Arc<Connect>,
    client: Arc<tokio::sync::OnceCell<sluice_client::Client>>,
    closed: Arc<AtomicBool>,
}

impl AsyncAdmin {
    fn call<'py>(&self, py: Python<'py>, op: Op) -> PyResult<Bound<'py, PyAny>> {
        let (connect, cell, closed) = (
            self.connect.clone(),
            self.client.clone(),
            self.closed.clone(),
        );
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let client = started(&connect, &cell, &closed).await?;
            op.run(&client.admin()).await
        })
    }
}

async fn started(
    connect: &Connect,
    cell: &tokio::sync::OnceCell<sluice_client::Client>,
    closed: &AtomicBool,
) -> PyResult<sluice_client::Client> {
    if closed.load(Ordering::Acquire) {
        return Err(crate::errors::closed("admin client"));
    }
    cell.get_or_try_init(|| connect.open())
        .await
        .cloned()
        .map_err(raise)
}

#[pymethods]
impl AsyncAdmin {
    #[new]
    #[pyo3(signature = (url, *, request_timeout_ms = 30_000, connect_timeout_ms = 10_000, client_name = None))]
    fn new(
        url: &str,
        request_timeout_ms: u64,
        connect_timeout_ms: u64,
        client_name: Option<String>,
    ) -> PyResult<Self> {
        Ok(AsyncAdmin {
            connect: Arc::new(Connect::new(
                url,
                request_timeout_ms,
                connect_timeout_ms,
                client_name,
            )?),
            client: Arc::new(tokio::sync::OnceCell::new()),
            closed: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Connects (awaitable); optional, the first call connects too.
    fn start<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (connect, cell, closed) = (
            self.connect.clone(),
            self.client.clone(),
            self.closed.clone(),
        );
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            started(&connect, &cell, &closed).await.map(drop)
        })
    }

    #[pyo3(signature = (name, partitions = 1, replication_factor = None, config = None))]
    fn create_topic<'py>(
        &self,
        py: Python<'py>,
        name: String,
        partitions: u32,
        replication_factor: Option<u16>,
        config: Option<Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = create_topic(name, partitions, replication_factor, config.as_ref())?;
        self.call(py, op)
    }

    fn list_topics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, Op::ListTopics)
    }

    fn describe_topic<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, Op::DescribeTopic(self::name(name, "topic")?))
    }

    #[pyo3(signature = (name, config = None, partitions = None))]
    fn alter_topic<'py>(
        &self,
        py: Python<'py>,
        name: String,
        config: Option<Bound<'py, PyDict>>,
        partitions: Option<u32>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = alter_topic(name, config.as_ref(), partitions)?;
        self.call(py, op)
    }

    fn delete_topic<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, Op::DeleteTopic(self::name(name, "topic")?))
    }

    #[pyo3(signature = (topic, timestamp = None))]
    fn list_offsets<'py>(
        &self,
        py: Python<'py>,
        topic: String,
        timestamp: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, Op::ListOffsets(name(topic, "topic")?, timestamp))
    }

    fn list_groups<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, Op::ListGroups)
    }

    fn describe_group<'py>(&self, py: Python<'py>, group: String) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, Op::DescribeGroup(name(group, "group")?))
    }

    #[pyo3(signature = (group, topics = None))]
    fn group_offsets<'py>(
        &self,
        py: Python<'py>,
        group: String,
        topics: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, Op::GroupOffsets(name(group, "group")?, topics))
    }

    #[pyo3(signature = (group, to = None, *, timestamp = None, topics = None))]
    fn reset_offsets<'py>(
        &self,
        py: Python<'py>,
        group: String,
        to: Option<Bound<'py, PyAny>>,
        timestamp: Option<i64>,
        topics: Option<Vec<String>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = reset_offsets(group, to.as_ref(), timestamp, topics)?;
        self.call(py, op)
    }

    fn delete_group<'py>(&self, py: Python<'py>, group: String) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, Op::DeleteGroup(name(group, "group")?))
    }

    fn upload_plugin<'py>(
        &self,
        py: Python<'py>,
        name: String,
        module: Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = Op::UploadPlugin(self::name(name, "plugin")?, module_bytes(&module)?);
        self.call(py, op)
    }

    fn list_plugins<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, Op::ListPlugins)
    }

    fn describe_plugin<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, Op::DescribePlugin(self::name(name, "plugin")?))
    }

    fn delete_plugin<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyAny>> {
        self.call(py, Op::DeletePlugin(self::name(name, "plugin")?))
    }

    /// Closes the connection (awaitable). Idempotent.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (cell, closed) = (self.client.clone(), self.closed.clone());
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            if !closed.swap(true, Ordering::AcqRel)
                && let Some(client) = cell.get()
            {
                client.close();
            }
            Ok(())
        })
    }

    fn __aenter__<'py>(slf: Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let this = slf.get();
        let (connect, cell, closed) = (
            this.connect.clone(),
            this.client.clone(),
            this.closed.clone(),
        );
        let me = slf.clone().unbind();
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            started(&connect, &cell, &closed).await?;
            Ok(me)
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
        format!("<sluice.aio.Admin {}>", self.connect.url)
    }
}
