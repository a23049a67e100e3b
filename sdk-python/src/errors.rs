//! `sluice_client::Error` to the exceptions of `sluice.errors` (defined in Python, so that they
//! can derive from built-in exceptions too), with the broker's error code attached.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyModule;
use sluice_client::Error;

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    ERRORS
        .get_or_try_init(py, || Ok(py.import("sluice.errors")?.unbind()))
        .map(|m| m.bind(py))
}

/// An instance of `sluice.errors.<class>(message, code, retriable)` as a `PyErr`.
fn make(
    py: Python<'_>,
    class: &str,
    message: String,
    code: Option<&str>,
    retriable: bool,
) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let class = module(py)?.getattr(class)?;
        Ok(PyErr::from_value(class.call1((message, code, retriable))?))
    };
    build().unwrap_or_else(|e| e)
}

/// The exception for a client error.
pub(crate) fn to_py(py: Python<'_>, err: Error) -> PyErr {
    let retriable = err.is_retriable();
    match err {
        Error::Broker { code, message } => {
            let code = code.as_str();
            let build = || -> PyResult<PyErr> {
                let class = module(py)?.call_method1("error_class_for_code", (code,))?;
                Ok(PyErr::from_value(class.call1((message, code, retriable))?))
            };
            build().unwrap_or_else(|e| e)
        }
        Error::Connection(m) => make(py, "ConnectionError", m, None, retriable),
        Error::Timeout(m) => make(py, "TimeoutError", m, None, retriable),
        Error::Protocol(m) => make(py, "ProtocolError", m, None, retriable),
        Error::Closed => make(py, "ClosedError", "closed".into(), None, false),
        Error::InvalidInput(m) => make(py, "InvalidInputError", m, None, false),
        other => make(py, "SluiceError", other.to_string(), None, retriable),
    }
}

/// The exception for a client error, from any thread (takes the GIL).
pub(crate) fn raise(err: Error) -> PyErr {
    Python::attach(|py| to_py(py, err))
}

/// `sluice.errors.InvalidInputError(message)`.
pub(crate) fn invalid_input(message: impl Into<String>) -> PyErr {
    raise(Error::InvalidInput(message.into()))
}

/// `sluice.errors.ClosedError`, naming what was closed.
pub(crate) fn closed(what: &str) -> PyErr {
    Python::attach(|py| {
        make(
            py,
            "ClosedError",
            format!("the {what} is closed"),
            None,
            false,
        )
    })
}

/// `sluice.errors.TimeoutError(message)`.
pub(crate) fn timeout(message: impl Into<String>) -> PyErr {
    Python::attach(|py| make(py, "TimeoutError", message.into(), None, true))
}
