//! The instance pool of one attachment (a plugin with its params).
//!
//! Instances are created and initialised at attach time ([`crate::Limits::warm_instances`]),
//! or when more callers than that run at once (up to [`crate::Limits::max_instances`]), and
//! then reused call after call. An instance that trapped, timed out or misbehaved is thrown
//! away when it comes back, and replaced right then (on the failing caller's thread) if the
//! pool fell below its warm size: nothing is instantiated on a healthy request's path.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant as Clock};

use parking_lot::{Condvar, Mutex};

use crate::error::PluginError;
use crate::instance::Instance;
use crate::plugin::{Plugin, PluginShared};

pub(crate) struct Pool {
    shared: Arc<PluginShared>,
    params: BTreeMap<String, String>,
    encoded_params: Vec<u8>,
    state: Mutex<PoolState>,
    returned: Condvar,
}

struct PoolState {
    idle: Vec<Instance>,
    /// Instances in existence: idle plus checked out.
    live: usize,
}

impl Pool {
    pub fn new(
        shared: Arc<PluginShared>,
        params: BTreeMap<String, String>,
        encoded_params: Vec<u8>,
    ) -> Result<Arc<Pool>, PluginError> {
        let warm = shared.limits.warm_instances.max(1);
        let mut idle = Vec::with_capacity(warm);
        for _ in 0..warm {
            let instance = Instance::new(&shared, &encoded_params)
                .inspect_err(|e| shared.stats.record_error(e))?;
            idle.push(instance);
        }
        Ok(Arc::new(Pool {
            shared,
            params,
            encoded_params,
            state: Mutex::new(PoolState {
                live: idle.len(),
                idle,
            }),
            returned: Condvar::new(),
        }))
    }

    pub fn plugin(&self) -> Plugin {
        Plugin::new(self.shared.clone())
    }

    pub fn shared(&self) -> &Arc<PluginShared> {
        &self.shared
    }

    pub fn params(&self) -> &BTreeMap<String, String> {
        &self.params
    }

    /// Instances idle and in existence, for tests and metrics.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.state.lock();
        (state.idle.len(), state.live)
    }

    /// Takes an idle instance, creates one if below the cap, else waits for one.
    pub fn checkout(self: &Arc<Self>) -> Result<Lease, PluginError> {
        let limits = &self.shared.limits;
        let wait = Duration::from_millis(limits.checkout_timeout_ms);
        let started = Clock::now();
        let mut state = self.state.lock();
        loop {
            if let Some(instance) = state.idle.pop() {
                return Ok(Lease {
                    pool: self.clone(),
                    instance: Some(instance),
                });
            }
            if state.live < limits.max_instances {
                state.live += 1;
                drop(state);
                return match Instance::new(&self.shared, &self.encoded_params) {
                    Ok(instance) => Ok(Lease {
                        pool: self.clone(),
                        instance: Some(instance),
                    }),
                    Err(e) => {
                        self.shared.stats.record_error(&e);
                        self.state.lock().live -= 1;
                        self.returned.notify_one();
                        Err(e)
                    }
                };
            }
            if self
                .returned
                .wait_until(&mut state, started + wait)
                .timed_out()
            {
                return Err(PluginError::Busy {
                    plugin: self.shared.info.name.clone(),
                    max_instances: limits.max_instances,
                    waited_ms: started.elapsed().as_millis() as u64,
                });
            }
        }
    }

    fn checkin(&self, instance: Instance) {
        if !instance.is_poisoned() {
            self.state.lock().idle.push(instance);
            self.returned.notify_one();
            return;
        }
        drop(instance);
        let replace = {
            let mut state = self.state.lock();
            state.live -= 1;
            state.live < self.shared.limits.warm_instances
        };
        if replace {
            match Instance::new(&self.shared, &self.encoded_params) {
                Ok(fresh) => {
                    let mut state = self.state.lock();
                    state.live += 1;
                    state.idle.push(fresh);
                }
                Err(e) => {
                    tracing::warn!(plugin = %self.shared.info.name, error = %e, "cannot replace a failed plugin instance");
                }
            }
        }
        self.returned.notify_one();
    }
}

/// An instance checked out of a pool; goes back (or is replaced if poisoned) on drop.
pub(crate) struct Lease {
    pool: Arc<Pool>,
    instance: Option<Instance>,
}

impl Lease {
    pub fn instance(&mut self) -> &mut Instance {
        self.instance
            .as_mut()
            .expect("a lease holds its instance until dropped")
    }

    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(instance) = self.instance.take() {
            self.pool.checkin(instance);
        }
    }
}
