//! Blocking on the runtime from Python threads: the GIL released, Ctrl-C honoured.
//!
//! A blocked call waits in slices of [`SLICE`]; between slices it takes the GIL back for a
//! moment to run pending signal handlers, so Ctrl-C raises `KeyboardInterrupt` within about
//! one slice. The future is dropped then; every future handed in here is cancel-safe (stream
//! polls, send handles, requests whose answers are simply not awaited).

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use pyo3::prelude::*;

use crate::runtime;

/// Longest stretch without checking for signals.
const SLICE: Duration = Duration::from_millis(50);

/// Polls `fut` once with the GIL held (most sends and polls are ready at once), then drives it
/// with the GIL released until it completes, `timeout` passes (`None` returned) or a signal
/// handler raises.
pub(crate) fn block_on<F>(
    py: Python<'_>,
    fut: F,
    timeout: Option<Duration>,
) -> PyResult<Option<F::Output>>
where
    F: Future + Send,
    F::Output: Send,
{
    let rt = runtime();
    let mut fut = std::pin::pin!(fut);
    {
        let _enter = rt.enter();
        if let Some(out) = fut.as_mut().now_or_never() {
            return Ok(Some(out));
        }
    }
    let deadline = timeout.map(|t| Instant::now() + t);
    detach(py, || drive(fut.as_mut(), deadline))
}

/// `py.detach(f)`, except that a thread still in `f` when the interpreter exits never takes
/// the GIL back (see [`crate::exit`]).
pub(crate) fn detach<T, F>(py: Python<'_>, f: F) -> T
where
    F: Send + FnOnce() -> T,
    T: Send,
{
    py.detach(|| {
        let out = f();
        crate::exit::park_if_exiting();
        out
    })
}

/// Drives `fut` on the runtime; called without the GIL. Takes the GIL between slices to run
/// signal handlers.
pub(crate) fn drive<F: Future>(
    fut: Pin<&mut F>,
    deadline: Option<Instant>,
) -> PyResult<Option<F::Output>> {
    drive_unless(fut, deadline, || false)
}

/// [`drive`], also giving up (`None`) within a slice of `stop()` becoming true.
pub(crate) fn drive_unless<F: Future>(
    mut fut: Pin<&mut F>,
    deadline: Option<Instant>,
    stop: impl Fn() -> bool,
) -> PyResult<Option<F::Output>> {
    let rt = runtime();
    loop {
        if stop() {
            return Ok(None);
        }
        let slice = match deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(None);
                }
                left.min(SLICE)
            }
            None => SLICE,
        };
        if let Ok(out) = rt.block_on(async { tokio::time::timeout(slice, fut.as_mut()).await }) {
            return Ok(Some(out));
        }
        crate::exit::park_if_exiting();
        Python::attach(|py| py.check_signals())?;
    }
}

/// Seconds from Python (`None`: no limit) as a duration; negative or NaN is refused.
pub(crate) fn seconds(timeout: Option<f64>) -> PyResult<Option<Duration>> {
    match timeout {
        None => Ok(None),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(Some(Duration::from_secs_f64(s.min(1e9)))),
        Some(s) if s == f64::INFINITY => Ok(None),
        Some(s) => Err(crate::errors::invalid_input(format!(
            "timeout must be a number of seconds >= 0 or None, not {s}"
        ))),
    }
}
