//! `sluice._sluice`: the native half of the Python package `sluice`.
//!
//! It wraps `sluice-client` (the project's only implementation of the client protocol) and
//! adds no protocol of its own. One multi-threaded Tokio runtime, started on first use, runs
//! every connection and background task; the synchronous classes block on it with the GIL
//! released, in short slices so that Ctrl-C (a pending signal) interrupts them, and the
//! asyncio classes hand its futures to the running event loop through `pyo3-async-runtimes`.
//!
//! What it is not: a second protocol implementation, a place for policy (batching, retries,
//! routing and group membership all live in `sluice-client`), or a public Rust API.
//!
//! Layout: [`wait`] (blocking with signals), [`errors`] (client errors to Python exceptions),
//! [`convert`] (bytes/str/headers in, records and JSON-shaped answers out), [`producer`],
//! [`consumer`], [`admin`].

use std::future::Future;
use std::time::Duration;

use pyo3::prelude::*;

mod admin;
mod consumer;
mod convert;
mod errors;
mod exit;
mod options;
mod producer;
mod wait;

/// The runtime every client of this process runs on.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    pyo3_async_runtimes::tokio::get_runtime()
}

/// Runs `fut` to completion on the runtime with the GIL released; Ctrl-C interrupts it (the
/// future is then dropped and `KeyboardInterrupt` raised).
pub(crate) fn block_on<F>(py: Python<'_>, fut: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    wait::block_on(py, fut, None).map(|out| out.expect("no deadline"))
}

/// Like [`block_on`] with a deadline: `None` when `timeout` passed first.
pub(crate) fn block_on_timeout<F>(
    py: Python<'_>,
    fut: F,
    timeout: Option<Duration>,
) -> PyResult<Option<F::Output>>
where
    F: Future + Send,
    F::Output: Send,
{
    wait::block_on(py, fut, timeout)
}

#[pymodule]
fn _sluice(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all().thread_name("sluice-io");
    pyo3_async_runtimes::tokio::init(builder);

    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    let hook = wrap_pyfunction!(exit::close_open_clients, m)?;
    m.add_function(hook.clone())?;
    m.py().import("atexit")?.call_method1("register", (hook,))?;
    m.add_class::<convert::Record>()?;
    m.add_class::<convert::RecordMetadata>()?;
    m.add_class::<producer::Producer>()?;
    m.add_class::<producer::SendFuture>()?;
    m.add_class::<producer::AsyncProducer>()?;
    m.add_class::<producer::Done>()?;
    m.add_class::<consumer::Consumer>()?;
    m.add_class::<consumer::AsyncConsumer>()?;
    m.add_class::<admin::Admin>()?;
    m.add_class::<admin::AsyncAdmin>()?;
    Ok(())
}
