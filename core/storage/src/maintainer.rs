//! [`Maintainer`]: the background thread that flushes, applies retention and compacts.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::log::{Log, now_ms};

/// How often the maintainer looks at its logs.
#[derive(Debug, Clone, Copy)]
pub struct MaintainerConfig {
    /// Period of the interval-durability flush check, in ms (the finest interval it honours).
    pub tick_ms: u64,
    /// Period of retention and compaction checks, in ms (Kafka's
    /// `log.retention.check.interval.ms`).
    pub retention_check_interval_ms: u64,
}

impl Default for MaintainerConfig {
    fn default() -> Self {
        MaintainerConfig {
            tick_ms: 100,
            retention_check_interval_ms: 5 * 60 * 1000,
        }
    }
}

/// A thread that runs [`Log::flush_if_due`] on every tick and [`Log::maintain`] (retention,
/// compaction) every `retention_check_interval_ms` for each registered log. It holds logs
/// weakly: dropping a log unregisters it. Dropping the `Maintainer` stops the thread.
pub struct Maintainer {
    logs: Arc<Mutex<Vec<Weak<Log>>>>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Maintainer {
    /// Starts the thread.
    pub fn spawn(config: MaintainerConfig) -> Maintainer {
        let logs: Arc<Mutex<Vec<Weak<Log>>>> = Arc::default();
        let (stop, stopped) = mpsc::channel::<()>();
        let shared = logs.clone();
        let thread = std::thread::Builder::new()
            .name("sluice-log-maintainer".into())
            .spawn(move || {
                let tick = Duration::from_millis(config.tick_ms.max(1));
                let full = Duration::from_millis(config.retention_check_interval_ms.max(1));
                let mut last_full = Instant::now();
                loop {
                    match stopped.recv_timeout(tick) {
                        Err(RecvTimeoutError::Timeout) => {}
                        _ => return,
                    }
                    let live: Vec<Arc<Log>> = {
                        let mut logs = shared.lock();
                        logs.retain(|w| w.strong_count() > 0);
                        logs.iter().filter_map(Weak::upgrade).collect()
                    };
                    let run_full = last_full.elapsed() >= full;
                    if run_full {
                        last_full = Instant::now();
                    }
                    for log in live {
                        let result = if run_full {
                            log.maintain(now_ms())
                        } else {
                            log.flush_if_due().map(|_| ())
                        };
                        if let Err(e) = result {
                            tracing::error!(dir = %log.dir().display(), error = %e, "log maintenance failed");
                        }
                    }
                }
            })
            .expect("spawning a thread");
        Maintainer {
            logs,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Adds a log to look after.
    pub fn register(&self, log: &Arc<Log>) {
        self.logs.lock().push(Arc::downgrade(log));
    }
}

impl Drop for Maintainer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
