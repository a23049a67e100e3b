//! Interpreter exit with clients still open.
//!
//! An `atexit` hook (registered when the module is imported) closes every producer and
//! consumer still open, bounded by [`EXIT_TIMEOUT`] in total: producers send what they buffer,
//! group consumers commit (with auto-commit) and leave their group at once instead of holding
//! their partitions until the session times out. Consumers busy in a blocking poll on another
//! thread are skipped.
//!
//! After the hook, Python finalizes; a daemon thread that would take the GIL back then would be
//! ended by CPython (before 3.14) with `pthread_exit`, unwinding through Rust frames. So from
//! then on a thread waiting in this module's code parks for good instead of returning to
//! Python, as CPython 3.14 itself does with such threads; the process exits around it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::ThreadId;
use std::time::Duration;

use futures_util::future::BoxFuture;
use pyo3::prelude::*;

/// Longest wait at exit for open clients to close.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Something to close at exit.
pub(crate) trait CloseAtExit: Send + Sync {
    /// The closing, or `None` when it cannot be done now (busy, closed already).
    fn close_at_exit(self: Arc<Self>) -> Option<BoxFuture<'static, ()>>;
}

static OPEN: Mutex<Vec<Weak<dyn CloseAtExit>>> = Mutex::new(Vec::new());
static EXITING: AtomicBool = AtomicBool::new(false);
static EXIT_THREAD: OnceLock<ThreadId> = OnceLock::new();

/// Remembers `obj` for the exit hook (weakly: dropping it forgets it).
pub(crate) fn track<T: CloseAtExit + 'static>(obj: &Arc<T>) {
    let weak: Weak<dyn CloseAtExit> = Arc::downgrade(obj) as Weak<dyn CloseAtExit>;
    let mut open = OPEN.lock().expect("exit registry");
    // Dropped entries are swept whenever the list doubles, so it stays near the live count.
    if open.len() >= 64 && open.len().is_power_of_two() {
        open.retain(|w| w.strong_count() > 0);
    }
    open.push(weak);
}

/// The `atexit` hook.
#[pyfunction(name = "_close_open_clients")]
pub(crate) fn close_open_clients(py: Python<'_>) -> PyResult<()> {
    let closings: Vec<BoxFuture<'static, ()>> = {
        let open = std::mem::take(&mut *OPEN.lock().expect("exit registry"));
        open.into_iter()
            .filter_map(|w| w.upgrade())
            .filter_map(|c| c.close_at_exit())
            .collect()
    };
    let result = if closings.is_empty() {
        Ok(None)
    } else {
        crate::block_on_timeout(
            py,
            futures_util::future::join_all(closings),
            Some(EXIT_TIMEOUT),
        )
    };
    let _ = EXIT_THREAD.set(std::thread::current().id());
    EXITING.store(true, Ordering::Release);
    result.map(drop)
}

/// Called by waiting threads without the GIL: past the exit hook, any thread but the one
/// finalizing the interpreter never returns to Python.
pub(crate) fn park_if_exiting() {
    if EXITING.load(Ordering::Acquire) && EXIT_THREAD.get() != Some(&std::thread::current().id()) {
        loop {
            std::thread::park();
        }
    }
}
