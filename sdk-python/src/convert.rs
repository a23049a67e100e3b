//! Values crossing the boundary: keys, values and headers in (bytes or str), records and
//! metadata out, and the broker's descriptive answers as the dicts of its JSON encoding.

use std::sync::Arc;

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyString, PyTuple};
use sluice_client::Header;

use crate::errors::invalid_input;

/// A key, value or header value: `bytes`, `bytearray` or `str` (encoded as UTF-8); `None` is a
/// null.
pub(crate) fn payload(obj: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Option<Bytes>> {
    let Some(obj) = obj else { return Ok(None) };
    if obj.is_none() {
        return Ok(None);
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Some(Bytes::copy_from_slice(b.as_bytes())));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Some(Bytes::from(s.to_cow()?.into_owned())));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Some(Bytes::from(b.to_vec())));
    }
    Err(pyo3::exceptions::PyTypeError::new_err(format!(
        "{what} must be bytes, bytearray, str or None, not {}",
        obj.get_type().name()?
    )))
}

/// Headers: a dict of names to values, or an iterable of (name, value) pairs (names may
/// repeat). Names are `str`; values as in [`payload`].
pub(crate) fn headers(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<Header>> {
    let Some(obj) = obj else {
        return Ok(Vec::new());
    };
    if obj.is_none() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut push = |name: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>| -> PyResult<()> {
        let key: String = name
            .extract()
            .map_err(|_| pyo3::exceptions::PyTypeError::new_err("header names must be str"))?;
        out.push(Header {
            key,
            value: payload(Some(value), "a header value")?,
        });
        Ok(())
    };
    if let Ok(dict) = obj.cast::<PyDict>() {
        for (k, v) in dict.iter() {
            push(&k, &v)?;
        }
    } else {
        for item in obj.try_iter().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(
                "headers must be a dict or an iterable of (name, value) pairs",
            )
        })? {
            let item = item?;
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item.extract().map_err(|_| {
                pyo3::exceptions::PyTypeError::new_err("each header must be a (name, value) pair")
            })?;
            push(&k, &v)?;
        }
    }
    Ok(out)
}

/// A topic name argument.
pub(crate) fn topic_name(topic: &str) -> PyResult<()> {
    if topic.is_empty() {
        return Err(invalid_input("the topic name is empty"));
    }
    Ok(())
}

/// A consumed record. Keys, values and header values are `bytes` (or `None` for nulls).
#[pyclass(frozen, get_all, module = "sluice", name = "Record")]
pub struct Record {
    /// The topic.
    pub topic: Py<PyString>,
    /// The partition.
    pub partition: u32,
    /// The offset in the partition.
    pub offset: u64,
    /// The timestamp, ms since the Unix epoch.
    pub timestamp: i64,
    /// The key, `None` if null.
    pub key: Option<Py<PyBytes>>,
    /// The value, `None` if null.
    pub value: Option<Py<PyBytes>>,
    /// The headers: (name, value) pairs in order.
    pub headers: Py<PyList>,
}

#[pymethods]
impl Record {
    #[new]
    #[pyo3(signature = (topic, partition, offset, timestamp, key=None, value=None, headers=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        topic: Bound<'_, PyString>,
        partition: u32,
        offset: u64,
        timestamp: i64,
        key: Option<Bound<'_, PyAny>>,
        value: Option<Bound<'_, PyAny>>,
        headers: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let bytes = |b: Option<Bytes>| b.map(|b| PyBytes::new(py, &b).unbind());
        let list = PyList::empty(py);
        for h in self::headers(headers.as_ref())? {
            list.append((h.key, bytes(h.value)))?;
        }
        Ok(Record {
            topic: topic.unbind(),
            partition,
            offset,
            timestamp,
            key: bytes(payload(key.as_ref(), "key")?),
            value: bytes(payload(value.as_ref(), "value")?),
            headers: list.unbind(),
        })
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let repr = |o: Option<&Py<PyBytes>>| -> PyResult<String> {
            match o {
                None => Ok("None".into()),
                Some(b) => Ok(b.bind(py).repr()?.to_string()),
            }
        };
        Ok(format!(
            "Record(topic={}, partition={}, offset={}, timestamp={}, key={}, value={}, headers={})",
            self.topic.bind(py).repr()?,
            self.partition,
            self.offset,
            self.timestamp,
            repr(self.key.as_ref())?,
            repr(self.value.as_ref())?,
            self.headers.bind(py).repr()?,
        ))
    }

    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(other) = other.cast::<Record>() else {
            return Ok(false);
        };
        let other = other.get();
        let opt_eq = |a: &Option<Py<PyBytes>>, b: &Option<Py<PyBytes>>| -> PyResult<bool> {
            match (a, b) {
                (None, None) => Ok(true),
                (Some(a), Some(b)) => Ok(a.bind(py).as_bytes() == b.bind(py).as_bytes()),
                _ => Ok(false),
            }
        };
        Ok(self.partition == other.partition
            && self.offset == other.offset
            && self.timestamp == other.timestamp
            && self.topic.bind(py).to_cow()? == other.topic.bind(py).to_cow()?
            && opt_eq(&self.key, &other.key)?
            && opt_eq(&self.value, &other.value)?
            && PyAnyMethods::eq(self.headers.bind(py).as_any(), other.headers.bind(py))?)
    }
}

/// Reuses the Python string of the last topic seen, so that records of one topic share it.
#[derive(Default)]
pub(crate) struct TopicCache {
    last: Option<(Arc<str>, Py<PyString>)>,
}

impl TopicCache {
    fn get(&mut self, py: Python<'_>, topic: &Arc<str>) -> Py<PyString> {
        if let Some((name, s)) = &self.last
            && (Arc::ptr_eq(name, topic) || name == topic)
        {
            return s.clone_ref(py);
        }
        let s = PyString::new(py, topic).unbind();
        self.last = Some((topic.clone(), s.clone_ref(py)));
        s
    }
}

/// A Python `Record` for a consumed record.
pub(crate) fn record(
    py: Python<'_>,
    r: sluice_client::Record,
    topics: &mut TopicCache,
) -> PyResult<Py<Record>> {
    let bytes = |b: Option<Bytes>| b.map(|b| PyBytes::new(py, &b).unbind());
    let headers = if r.headers.is_empty() {
        PyList::empty(py)
    } else {
        let items = r
            .headers
            .into_iter()
            .map(|h| {
                PyTuple::new(
                    py,
                    [
                        h.key.into_pyobject(py)?.into_any(),
                        bytes_or_none(py, h.value),
                    ],
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)?
    };
    Py::new(
        py,
        Record {
            topic: topics.get(py, &r.topic),
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp,
            key: bytes(r.key),
            value: bytes(r.value),
            headers: headers.unbind(),
        },
    )
}

fn bytes_or_none(py: Python<'_>, b: Option<Bytes>) -> Bound<'_, PyAny> {
    match b {
        Some(b) => PyBytes::new(py, &b).into_any(),
        None => py.None().into_bound(py),
    }
}

/// A consumed record on its way to Python from a Tokio task (asyncio): converted when the
/// result is handed to the event loop.
pub(crate) struct RecordOut(pub sluice_client::Record);

impl<'py> IntoPyObject<'py> for RecordOut {
    type Target = Record;
    type Output = Bound<'py, Record>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, Record>> {
        Ok(record(py, self.0, &mut TopicCache::default())?.into_bound(py))
    }
}

/// Several consumed records on their way to Python (a list).
pub(crate) struct RecordsOut(pub Vec<sluice_client::Record>);

impl<'py> IntoPyObject<'py> for RecordsOut {
    type Target = PyList;
    type Output = Bound<'py, PyList>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let mut topics = TopicCache::default();
        let items = self
            .0
            .into_iter()
            .map(|r| record(py, r, &mut topics))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }
}

/// Where a produced record went.
#[pyclass(frozen, get_all, module = "sluice", name = "RecordMetadata")]
pub struct RecordMetadata {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The offset; `None` with `acks=0`, where the broker does not say.
    pub offset: Option<u64>,
    /// The record's timestamp (ms since the Unix epoch), as sent.
    pub timestamp: i64,
}

#[pymethods]
impl RecordMetadata {
    fn __repr__(&self) -> String {
        format!(
            "RecordMetadata(topic={:?}, partition={}, offset={}, timestamp={})",
            self.topic,
            self.partition,
            self.offset.map_or("None".to_string(), |o| o.to_string()),
            self.timestamp
        )
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        let Ok(other) = other.cast::<RecordMetadata>() else {
            return false;
        };
        let other = other.get();
        self.topic == other.topic
            && self.partition == other.partition
            && self.offset == other.offset
            && self.timestamp == other.timestamp
    }
}

impl From<sluice_client::RecordMetadata> for RecordMetadata {
    fn from(m: sluice_client::RecordMetadata) -> Self {
        RecordMetadata {
            topic: m.topic.to_string(),
            partition: m.partition,
            offset: m.offset,
            timestamp: m.timestamp,
        }
    }
}

static JSON_LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A broker answer (topic descriptions, offsets, groups, plugins) as the dicts and lists of its
/// JSON encoding: the same shape the HTTP API returns (docs/PROTOCOL.md).
pub(crate) struct Json(pub String);

impl Json {
    pub(crate) fn of(value: &impl serde::Serialize) -> PyResult<Json> {
        serde_json::to_string(value)
            .map(Json)
            .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(format!("encode answer: {e}")))
    }
}

impl<'py> IntoPyObject<'py> for Json {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let loads = JSON_LOADS.get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("json")?.getattr("loads")?.unbind())
        })?;
        loads.bind(py).call1((self.0,))
    }
}
