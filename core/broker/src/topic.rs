//! Topics and partitions: settings, the on-disk topic manifest, and the per-partition log with
//! its high-watermark watch for long-polling readers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sluice_protocol::types::{PartitionInfo, TopicDescription};
use sluice_protocol::{ErrorBody, ErrorCode};
use sluice_storage::{Log, LogConfig, SETTINGS};
use tokio::sync::watch;

/// Topic-level setting that is not a log setting: the largest record batch accepted.
pub const MAX_MESSAGE_BYTES: &str = "max.message.bytes";
/// Topic setting naming a partitioner plugin for records sent without a partition.
pub const PARTITIONER: &str = "partitioner";
/// Prefix of the partitioner's parameters (`partitioner.param.region-map=...`).
pub const PARTITIONER_PARAM: &str = "partitioner.param.";

/// Topic setting: fewest in-sync replicas an acks=all write needs (default 1).
pub const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";
/// Topic setting: may an out-of-sync replica become leader when no in-sync one is alive
/// (losing acknowledged records)? Default false.
pub const UNCLEAN_LEADER_ELECTION: &str = "unclean.leader.election.enable";

/// Default of [`MAX_MESSAGE_BYTES`]: 1 MiB, as Kafka.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 1 << 20;

/// The effective settings of a topic: the broker's defaults with the topic's overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSettings {
    /// Settings of each partition's log.
    pub log: LogConfig,
    /// Largest record batch, in bytes.
    pub max_message_bytes: u64,
    /// Fewest in-sync replicas for an acks=all write.
    pub min_insync_replicas: u16,
    /// Unclean leader election allowed.
    pub unclean_leader_election: bool,
    /// Settings set explicitly on this topic (persisted), by name.
    pub overrides: BTreeMap<String, String>,
}

impl TopicSettings {
    /// Applies `overrides` on top of `defaults`.
    pub fn resolve(
        defaults: &LogConfig,
        overrides: BTreeMap<String, String>,
    ) -> Result<TopicSettings, ErrorBody> {
        let mut log = defaults.clone();
        let mut max_message_bytes = DEFAULT_MAX_MESSAGE_BYTES;
        let mut min_insync_replicas = 1u16;
        let mut unclean_leader_election = false;
        for (k, v) in &overrides {
            if k == MIN_INSYNC_REPLICAS {
                min_insync_replicas = v
                    .trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| {
                        ErrorBody::new(
                            ErrorCode::InvalidConfig,
                            format!(
                                "invalid setting {k}: `{v}` must be a whole number from 1 to 65535"
                            ),
                        )
                    })?;
                continue;
            }
            if k == UNCLEAN_LEADER_ELECTION {
                unclean_leader_election = match v.trim() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(ErrorBody::new(
                            ErrorCode::InvalidConfig,
                            format!("invalid setting {k}: `{v}` must be true or false"),
                        ));
                    }
                };
                continue;
            }
            if k == PARTITIONER || k.starts_with(PARTITIONER_PARAM) {
                // Checked against the plugin registry by the broker.
                continue;
            }
            if k == MAX_MESSAGE_BYTES {
                max_message_bytes = v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (61..=i32::MAX as u64).contains(n))
                    .ok_or_else(|| {
                        ErrorBody::new(
                            ErrorCode::InvalidConfig,
                            format!("invalid setting {k}: `{v}` must be a byte count from 61 to 2147483647"),
                        )
                    })?;
            } else {
                log.set(k, v)
                    .map_err(|e| ErrorBody::new(ErrorCode::InvalidConfig, e.to_string()))?;
            }
        }
        // One append carries at most one request's batches; let it hold a full-size batch.
        log.max_append_bytes = log.max_append_bytes.max(max_message_bytes);
        Ok(TopicSettings {
            log,
            max_message_bytes,
            min_insync_replicas,
            unclean_leader_election,
            overrides,
        })
    }

    /// The partitioner plugin and its parameters, if the topic has one.
    pub fn partitioner(&self) -> Option<(String, BTreeMap<String, String>)> {
        let name = self.overrides.get(PARTITIONER)?.clone();
        let params = self
            .overrides
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(PARTITIONER_PARAM)
                    .map(|k| (k.to_string(), v.clone()))
            })
            .collect();
        Some((name, params))
    }

    /// Every setting with its effective value.
    pub fn effective(&self) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = SETTINGS
            .iter()
            .filter_map(|d| Some((d.name.to_string(), self.log.get(d.name)?)))
            .collect();
        out.insert(
            MAX_MESSAGE_BYTES.to_string(),
            self.max_message_bytes.to_string(),
        );
        out.insert(
            MIN_INSYNC_REPLICAS.to_string(),
            self.min_insync_replicas.to_string(),
        );
        out.insert(
            UNCLEAN_LEADER_ELECTION.to_string(),
            self.unclean_leader_election.to_string(),
        );
        // The partitioner plugin and its parameters, when set: clients route by them (the SDK
        // leaves such topics' records to the broker).
        out.extend(
            self.overrides
                .iter()
                .filter(|(k, _)| *k == PARTITIONER || k.starts_with(PARTITIONER_PARAM))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        out
    }
}

/// What `topic.json` holds (format version 1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TopicManifest {
    pub(crate) version: u32,
    pub(crate) name: String,
    pub(crate) partitions: u32,
    pub(crate) replication_factor: u16,
    pub(crate) configs: BTreeMap<String, String>,
    pub(crate) created_ms: u64,
}

impl TopicManifest {
    pub(crate) const FILE: &'static str = "topic.json";

    pub(crate) fn write(&self, dir: &Path) -> std::io::Result<()> {
        let tmp = dir.join("topic.json.tmp");
        let text = serde_json::to_vec_pretty(self).expect("manifest serializes");
        std::fs::write(&tmp, text)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, dir.join(Self::FILE))?;
        std::fs::File::open(dir)?.sync_all()
    }

    pub(crate) fn read(dir: &Path) -> std::io::Result<TopicManifest> {
        let text = std::fs::read(dir.join(Self::FILE))?;
        serde_json::from_slice(&text)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

/// One partition: its log and a watch of its high watermark that long-polling fetches and
/// subscriptions wait on.
pub struct Partition {
    /// Partition number.
    pub id: u32,
    /// The log.
    pub log: Arc<Log>,
    hw: watch::Sender<u64>,
    leo: watch::Sender<u64>,
    /// Replication role on this broker.
    pub(crate) role: parking_lot::Mutex<crate::replica::Role>,
    /// Held by the partition's follower task for its whole life: a new one (after a leader
    /// change) truncates only once the old one has stopped, so a fetch answer still in flight
    /// from the old leader can never be appended after the truncation.
    pub(crate) follower: tokio::sync::Mutex<()>,
}

impl Partition {
    pub(crate) fn new(id: u32, log: Arc<Log>) -> Partition {
        let (hw, _) = watch::channel(log.high_watermark());
        let (leo, _) = watch::channel(log.log_end_offset());
        Partition {
            id,
            log,
            hw,
            leo,
            role: parking_lot::Mutex::new(crate::replica::Role::Standalone),
            follower: tokio::sync::Mutex::new(()),
        }
    }

    /// After an append: publishes the new log end and moves the high watermark as the role
    /// allows (standalone: to the log end; leader: to the lowest LEO of the ISR).
    pub(crate) fn advance_high_watermark(&self) {
        let leo = self.log.log_end_offset();
        self.leo.send_if_modified(|v| {
            let changed = *v != leo;
            *v = leo;
            changed
        });
        self.update_high_watermark();
    }

    /// Recomputes the high watermark from the role (after an append, a follower's fetch, an
    /// ISR change).
    pub(crate) fn update_high_watermark(&self) {
        let leo = self.log.log_end_offset();
        let target = match &*self.role.lock() {
            crate::replica::Role::Standalone => leo,
            crate::replica::Role::Leader(s) => s.isr_min_leo(leo).max(self.log.high_watermark()),
            _ => return,
        };
        self.publish_high_watermark(target);
    }

    /// Sets the high watermark (clamped to the log) and wakes waiting readers.
    pub(crate) fn publish_high_watermark(&self, target: u64) {
        let hw = self.log.set_high_watermark(target);
        self.hw.send_if_modified(|v| {
            let changed = *v != hw;
            *v = hw;
            changed
        });
    }

    /// acks=all: waits until the high watermark passes `end` (every in-sync replica has the
    /// write), failing if this broker stops leading at `epoch` or `timeout_ms` passes.
    pub(crate) async fn wait_replicated(
        &self,
        end: u64,
        epoch: i32,
        timeout_ms: u64,
    ) -> Result<(), ErrorBody> {
        use crate::replica::Role;
        use std::time::Duration;
        if matches!(&*self.role.lock(), Role::Standalone) {
            return Ok(());
        }
        let mut hw = self.watch_high_watermark();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
        loop {
            if *hw.borrow_and_update() >= end {
                return Ok(());
            }
            let still_leader = matches!(&*self.role.lock(), Role::Leader(s) if s.epoch == epoch);
            if !still_leader {
                return Err(ErrorBody::new(
                    ErrorCode::NotLeader,
                    format!(
                        "partition {}: leadership moved before the write reached every in-sync replica; it may be lost — retry",
                        self.id
                    ),
                ));
            }
            // Wake on a HW move, and at least every 100 ms to notice a leadership change.
            let tick = tokio::time::Instant::now() + Duration::from_millis(100);
            match tokio::time::timeout_at(deadline.min(tick), hw.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(ErrorBody::new(ErrorCode::NotLeader, "partition closed")),
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    return Err(ErrorBody::new(
                        ErrorCode::RequestTimedOut,
                        format!(
                            "partition {}: the in-sync replicas did not confirm the write within {timeout_ms} ms; it is on the leader and may or may not be kept",
                            self.id
                        ),
                    ));
                }
                Err(_) => {}
            }
        }
    }

    /// A receiver that changes when the log end moves (followers' long-polls wait on it).
    pub fn watch_log_end(&self) -> watch::Receiver<u64> {
        self.leo.subscribe()
    }

    /// The replication role on this broker: standalone, leader, follower or offline.
    pub fn role_name(&self) -> &'static str {
        self.role.lock().name()
    }

    /// Wakes everyone waiting on the high watermark (the partition is going away: their next
    /// read finds out).
    pub(crate) fn wake_watchers(&self) {
        self.hw.send_modify(|_| {});
    }

    /// A receiver that changes when the high watermark moves.
    pub fn watch_high_watermark(&self) -> watch::Receiver<u64> {
        self.hw.subscribe()
    }

    /// State for descriptions.
    pub fn info(&self) -> PartitionInfo {
        let segments = self.log.segments();
        PartitionInfo {
            partition: self.id,
            log_start_offset: self.log.log_start_offset(),
            high_watermark: self.log.high_watermark(),
            log_end_offset: self.log.log_end_offset(),
            size_bytes: segments.iter().map(|s| s.size_bytes).sum(),
            segments: segments.len() as u32,
            leader: None,
            replicas: None,
            isr: None,
            replica_role: None,
        }
    }
}

/// A topic: settings and partitions.
pub struct Topic {
    /// Name.
    pub name: String,
    pub(crate) dir: PathBuf,
    pub(crate) replication_factor: u16,
    pub(crate) created_ms: u64,
    pub(crate) settings: RwLock<TopicSettings>,
    pub(crate) partitions: RwLock<Vec<Arc<Partition>>>,
    /// Round-robin counter for keyless records (one partition per request: sticky per batch).
    pub(crate) sticky: AtomicU32,
}

impl Topic {
    /// Partition count.
    pub fn partition_count(&self) -> u32 {
        self.partitions.read().len() as u32
    }

    /// A partition by number.
    pub fn partition(&self, id: u32) -> Result<Arc<Partition>, ErrorBody> {
        self.partitions
            .read()
            .get(id as usize)
            .cloned()
            .ok_or_else(|| {
                ErrorBody::new(
                    ErrorCode::UnknownPartition,
                    format!(
                        "topic `{}` has no partition {id}; it has partitions 0 to {}",
                        self.name,
                        self.partition_count().saturating_sub(1)
                    ),
                )
            })
    }

    /// All partitions.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().clone()
    }

    /// Effective settings.
    pub fn settings(&self) -> TopicSettings {
        self.settings.read().clone()
    }

    /// The next partition for keyless records.
    pub(crate) fn next_sticky(&self, partitions: u32) -> u32 {
        self.sticky.fetch_add(1, Ordering::Relaxed) % partitions.max(1)
    }

    /// Description for clients.
    pub fn describe(&self) -> TopicDescription {
        TopicDescription {
            name: self.name.clone(),
            internal: sluice_protocol::is_internal_topic(&self.name),
            replication_factor: self.replication_factor,
            partitions: self.partitions().iter().map(|p| p.info()).collect(),
            configs: self.settings().effective(),
        }
    }

    pub(crate) fn manifest(&self) -> TopicManifest {
        TopicManifest {
            version: 1,
            name: self.name.clone(),
            partitions: self.partition_count(),
            replication_factor: self.replication_factor,
            configs: self.settings().overrides,
            created_ms: self.created_ms,
        }
    }
}
