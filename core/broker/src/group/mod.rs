//! Consumer groups: the coordinator (membership, assignment, fencing) and committed offsets
//! kept in the internal compacted topic `__consumer_offsets`.
//!
//! # `__consumer_offsets`, format version 1
//!
//! Each commit appends one record per partition to the offsets-topic partition chosen by
//! murmur2 of the group id (so one group's commits stay in order):
//!
//! - key: JSON `["<group>", "<topic>", <partition>]`;
//! - value: JSON `{"offset": n, "metadata": "...", "commit_time_ms": t, "member_epoch": e}`, or
//!   null (a tombstone) when the offset is deleted (group deleted, offsets expired).
//!
//! The topic is compacted, so it keeps the latest commit per key. At start-up every partition
//! is read from its start into memory; afterwards reads are served from memory. The topic is
//! created with `durability=always`: a commit is answered once it is fsynced.

mod assignor;
mod coordinator;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use sluice_protocol::types::*;
use sluice_protocol::{ErrorBody, ErrorCode, partitioner};
use sluice_record::{BatchBuilder, Batches};
use sluice_storage::{ReadBound, now_ms};

pub use assignor::{AssignmentInput, Assignor, TopicPartition};
pub use coordinator::GroupConfig;
use coordinator::{Coordinator, to_lists, validate_group_id};

use crate::topic::Topic;

/// Name of the internal offsets topic.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Settings of `__consumer_offsets`: compacted, and a commit is answered once it is on disk.
pub fn offsets_topic_configs() -> BTreeMap<String, String> {
    [
        ("cleanup.policy".to_string(), "compact".to_string()),
        ("durability".to_string(), "always".to_string()),
        ("segment.bytes".to_string(), (64u64 << 20).to_string()),
    ]
    .into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredOffset {
    offset: u64,
    #[serde(default)]
    metadata: String,
    commit_time_ms: u64,
    #[serde(default)]
    member_epoch: i32,
}

/// Groups of one broker: coordinator state and committed offsets.
pub(crate) struct Groups {
    coordinator: Mutex<Coordinator>,
    /// Bumped whenever group state may have changed, so connections can push assignments.
    changes: tokio::sync::watch::Sender<u64>,
    offsets: RwLock<HashMap<String, BTreeMap<TopicPartition, StoredOffset>>>,
    topic: Arc<Topic>,
    /// Longest a commit waits for the in-sync replicas (cluster mode), in ms.
    pub(crate) replication_timeout_ms: u64,
}

fn key_bytes(group: &str, topic: &str, partition: u32) -> Vec<u8> {
    serde_json::to_vec(&(group, topic, partition)).expect("key serializes")
}

impl Groups {
    /// Loads committed offsets from `topic` (the offsets topic).
    pub(crate) fn load(config: GroupConfig, topic: Arc<Topic>) -> Result<Groups, ErrorBody> {
        let mut offsets: HashMap<String, BTreeMap<TopicPartition, StoredOffset>> = HashMap::new();
        for p in topic.partitions() {
            Self::read_partition(&p, &mut offsets)?;
            // Its records are all in memory; make them visible to the log's readers too.
            p.advance_high_watermark();
        }
        tracing::info!(groups = offsets.len(), "committed offsets loaded");
        Ok(Groups {
            coordinator: Mutex::new(Coordinator::new(config)),
            changes: tokio::sync::watch::Sender::new(0),
            offsets: RwLock::new(offsets),
            topic,
            replication_timeout_ms: 30_000,
        })
    }

    /// Reads one offsets-topic partition from its start into `offsets`.
    fn read_partition(
        p: &crate::topic::Partition,
        offsets: &mut HashMap<String, BTreeMap<TopicPartition, StoredOffset>>,
    ) -> Result<(), ErrorBody> {
        let mut buf = Vec::new();
        let mut at = p.log.log_start_offset();
        loop {
            let info = p
                .log
                .read_into(at, 4 << 20, ReadBound::LogEnd, &mut buf)
                .map_err(|e| {
                    ErrorBody::new(
                        ErrorCode::StorageError,
                        format!("loading {OFFSETS_TOPIC}: {e}"),
                    )
                })?;
            if info.bytes == 0 {
                break;
            }
            for b in Batches::new(&buf).flatten() {
                let h = *b.header();
                let Ok(records) = b.records() else { continue };
                for r in records.flatten() {
                    if (r.offset(h.base_offset) as u64) < at {
                        continue;
                    }
                    let Some(Ok((group, t, part))) =
                        r.key.map(serde_json::from_slice::<(String, String, u32)>)
                    else {
                        continue;
                    };
                    match r.value.map(serde_json::from_slice::<StoredOffset>) {
                        Some(Ok(v)) => {
                            offsets.entry(group).or_default().insert((t, part), v);
                        }
                        None => {
                            if let Some(g) = offsets.get_mut(&group) {
                                g.remove(&(t, part));
                                if g.is_empty() {
                                    offsets.remove(&group);
                                }
                            }
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "skipping an unreadable committed offset")
                        }
                    }
                }
            }
            at = info.next_offset;
        }
        Ok(())
    }

    /// The offsets-topic partition that holds `group`'s commits (and whose leader coordinates
    /// the group in a cluster).
    pub(crate) fn partition_of(&self, group: &str) -> u32 {
        partitioner::partition_for_key(group.as_bytes(), self.topic.partition_count())
    }

    /// Cluster mode: this broker now leads offsets partition `p`: (re)loads the committed
    /// offsets of its groups from the replicated log, dropping whatever was in memory for them.
    pub(crate) fn take_over_partition(&self, p: u32) -> Result<usize, ErrorBody> {
        let part = self.topic.partition(p)?;
        let mut loaded = HashMap::new();
        Self::read_partition(&part, &mut loaded)?;
        let n = loaded.len();
        let mut offsets = self.offsets.write();
        offsets.retain(|g, _| self.partition_of(g) != p);
        offsets.extend(loaded);
        drop(offsets);
        self.coordinator
            .lock()
            .forget_groups(|g| self.partition_of(g) == p);
        self.changes.send_modify(|n| *n += 1);
        Ok(n)
    }

    /// Cluster mode, at start: forget every group until this broker leads their partitions.
    pub(crate) fn forget_all(&self) {
        self.offsets.write().clear();
        self.coordinator.lock().forget_groups(|_| true);
    }

    /// Cluster mode: this broker no longer leads offsets partition `p`: forgets its groups.
    pub(crate) fn give_up_partition(&self, p: u32) {
        self.offsets
            .write()
            .retain(|g, _| self.partition_of(g) != p);
        self.coordinator
            .lock()
            .forget_groups(|g| self.partition_of(g) == p);
        self.changes.send_modify(|n| *n += 1);
    }

    /// Appends offset records for one group (tombstones for `None`) durably in order.
    async fn persist(
        &self,
        group: &str,
        entries: Vec<(String, u32, Option<StoredOffset>)>,
    ) -> Result<(), ErrorBody> {
        if entries.is_empty() {
            return Ok(());
        }
        let part = self.topic.partition(self.partition_of(group))?;
        // In a cluster only the partition's leader writes it (stamping its epoch), and a
        // commit is answered once every in-sync replica has it.
        let epoch = match &*part.role.lock() {
            crate::replica::Role::Standalone => None,
            crate::replica::Role::Leader(s) => Some(s.epoch),
            _ => {
                return Err(ErrorBody::new(
                    ErrorCode::NotLeader,
                    format!("this broker no longer coordinates group `{group}`; retry"),
                ));
            }
        };
        let now = now_ms() as i64;
        let mut bytes = Vec::new();
        let mut b = BatchBuilder::new(&mut bytes, 0, now);
        for (t, p, v) in &entries {
            let key = key_bytes(group, t, *p);
            let value = v
                .as_ref()
                .map(|v| serde_json::to_vec(v).expect("offset serializes"));
            b.push(now, Some(&key), value.as_deref(), &[]);
        }
        b.finish().expect("at least one entry");
        let writer = part.clone();
        let info = tokio::task::spawn_blocking(move || {
            let r = writer.log.append(&mut bytes, epoch.unwrap_or(0));
            if r.is_ok() {
                writer.advance_high_watermark();
            }
            r
        })
        .await
        .map_err(|e| ErrorBody::new(ErrorCode::Internal, format!("commit task failed: {e}")))?
        .map_err(|e| {
            ErrorBody::new(
                ErrorCode::StorageError,
                format!("writing {OFFSETS_TOPIC}: {e}"),
            )
        })?;
        if let Some(epoch) = epoch {
            part.wait_replicated(info.log_end_offset, epoch, self.replication_timeout_ms)
                .await?;
        }
        let mut offsets = self.offsets.write();
        for (t, p, v) in entries {
            match v {
                Some(v) => {
                    offsets
                        .entry(group.to_string())
                        .or_default()
                        .insert((t, p), v);
                }
                None => {
                    if let Some(g) = offsets.get_mut(group) {
                        g.remove(&(t, p));
                        if g.is_empty() {
                            offsets.remove(group);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    pub(crate) fn heartbeat(
        &self,
        req: &GroupHeartbeat,
        topics: &BTreeMap<String, u32>,
    ) -> Result<GroupAssignment, ErrorBody> {
        let answer = self
            .coordinator
            .lock()
            .heartbeat(req, topics, Instant::now());
        self.changes.send_modify(|n| *n += 1);
        answer
    }

    pub(crate) fn expire(&self, topics: &BTreeMap<String, u32>) -> usize {
        let removed = self.coordinator.lock().expire(topics, Instant::now());
        if removed > 0 {
            self.changes.send_modify(|n| *n += 1);
        }
        removed
    }

    pub(crate) fn peek(&self, group: &str, member_id: &str) -> Option<GroupAssignment> {
        self.coordinator.lock().peek(group, member_id)
    }

    pub(crate) fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub(crate) async fn commit(
        &self,
        req: CommitOffsets,
        topics: &BTreeMap<String, u32>,
    ) -> Result<(), ErrorBody> {
        self.coordinator.lock().check_commit(&req)?;
        let now = now_ms();
        let mut entries = Vec::with_capacity(req.offsets.len());
        for o in &req.offsets {
            match topics.get(&o.topic) {
                None => {
                    return Err(ErrorBody::new(
                        ErrorCode::UnknownTopic,
                        format!("cannot commit for unknown topic `{}`", o.topic),
                    ));
                }
                Some(&n) if o.partition >= n => {
                    return Err(ErrorBody::new(
                        ErrorCode::UnknownPartition,
                        format!("topic `{}` has no partition {}", o.topic, o.partition),
                    ));
                }
                Some(_) => {}
            }
            entries.push((
                o.topic.clone(),
                o.partition,
                Some(StoredOffset {
                    offset: o.offset,
                    metadata: o.metadata.clone(),
                    commit_time_ms: now,
                    member_epoch: req.member_epoch.unwrap_or(-1),
                }),
            ));
        }
        self.persist(&req.group, entries).await
    }

    pub(crate) fn fetch(
        &self,
        group: &str,
        topics: Option<&[String]>,
    ) -> Result<GroupOffsets, ErrorBody> {
        validate_group_id(group)?;
        let offsets = self.offsets.read();
        let list = offsets
            .get(group)
            .into_iter()
            .flatten()
            .filter(|((t, _), _)| topics.is_none_or(|ts| ts.iter().any(|x| x == t)))
            .map(|((t, p), v)| CommittedOffset {
                topic: t.clone(),
                partition: *p,
                offset: v.offset,
                metadata: v.metadata.clone(),
                commit_time_ms: v.commit_time_ms,
            })
            .collect();
        Ok(GroupOffsets {
            group: group.to_string(),
            offsets: list,
        })
    }

    /// Every group known from members or committed offsets.
    pub(crate) fn list(&self) -> GroupList {
        let mut all: BTreeMap<String, GroupSummary> = self
            .offsets
            .read()
            .keys()
            .map(|g| {
                (
                    g.clone(),
                    GroupSummary {
                        group: g.clone(),
                        state: "empty".into(),
                        members: 0,
                    },
                )
            })
            .collect();
        for (g, state, members) in self.coordinator.lock().summaries() {
            if members == 0 && !all.contains_key(&g) {
                continue;
            }
            all.insert(
                g.clone(),
                GroupSummary {
                    group: g,
                    state,
                    members,
                },
            );
        }
        GroupList {
            groups: all.into_values().collect(),
        }
    }

    /// Members, assignment, committed offsets and lag.
    pub(crate) fn describe(
        &self,
        group: &str,
        topics: &[Arc<Topic>],
    ) -> Result<GroupDescription, ErrorBody> {
        validate_group_id(group)?;
        let described = self.coordinator.lock().describe(group);
        let committed = self.offsets.read().get(group).cloned().unwrap_or_default();
        let (state, epoch, assignor, members, owners) = match described {
            Some(d) => (d.state, d.epoch, d.assignor, d.members, d.owners),
            None if committed.is_empty() => {
                return Err(ErrorBody::new(
                    ErrorCode::UnknownGroup,
                    format!("group `{group}` has no members and no committed offsets"),
                ));
            }
            None => (
                "empty".into(),
                0,
                Assignor::default().to_string(),
                vec![],
                BTreeMap::new(),
            ),
        };
        // Partitions of subscribed topics and of topics with commits.
        let mut wanted: BTreeSet<String> = members
            .iter()
            .flat_map(|m| m.topics.iter().cloned())
            .collect();
        wanted.extend(committed.keys().map(|(t, _)| t.clone()));
        let mut partitions = Vec::new();
        for t in topics.iter().filter(|t| wanted.contains(&t.name)) {
            for p in t.partitions() {
                let tp = (t.name.clone(), p.id);
                let end = p.log.high_watermark();
                let c = committed.get(&tp).map(|o| o.offset);
                let from = c.unwrap_or_else(|| p.log.log_start_offset());
                partitions.push(PartitionLag {
                    topic: t.name.clone(),
                    partition: p.id,
                    committed: c,
                    log_end_offset: end,
                    lag: end.saturating_sub(from),
                    owner: owners.get(&tp).cloned(),
                });
            }
        }
        Ok(GroupDescription {
            group: group.to_string(),
            state,
            group_epoch: epoch,
            assignor,
            members,
            partitions,
        })
    }

    pub(crate) fn ensure_inactive(&self, group: &str, action: &str) -> Result<(), ErrorBody> {
        if self.coordinator.lock().is_active(group) {
            return Err(ErrorBody::new(
                ErrorCode::GroupNotEmpty,
                format!(
                    "group `{group}` has active members; stop its consumers before you {action}"
                ),
            ));
        }
        Ok(())
    }

    pub(crate) async fn delete(&self, group: &str) -> Result<(), ErrorBody> {
        validate_group_id(group)?;
        self.ensure_inactive(group, "delete it")?;
        let keys: Vec<TopicPartition> = match self.offsets.read().get(group) {
            Some(g) => g.keys().cloned().collect(),
            None => {
                return Err(ErrorBody::new(
                    ErrorCode::UnknownGroup,
                    format!("group `{group}` has no committed offsets"),
                ));
            }
        };
        self.persist(group, keys.into_iter().map(|(t, p)| (t, p, None)).collect())
            .await?;
        self.coordinator.lock().forget(group);
        Ok(())
    }

    /// Writes new offsets for an inactive group.
    pub(crate) async fn reset(
        &self,
        group: &str,
        new: Vec<(String, u32, u64)>,
    ) -> Result<(), ErrorBody> {
        self.ensure_inactive(group, "reset its offsets")?;
        let now = now_ms();
        let entries = new
            .into_iter()
            .map(|(t, p, o)| {
                (
                    t,
                    p,
                    Some(StoredOffset {
                        offset: o,
                        metadata: String::new(),
                        commit_time_ms: now,
                        member_epoch: -1,
                    }),
                )
            })
            .collect();
        self.persist(group, entries).await
    }

    /// Topics a group has committed offsets for.
    pub(crate) fn committed_topics(&self, group: &str) -> BTreeSet<String> {
        self.offsets
            .read()
            .get(group)
            .map(|g| g.keys().map(|(t, _)| t.clone()).collect())
            .unwrap_or_default()
    }

    /// Deletes the offsets of groups without members whose newest commit is older than the
    /// retention.
    pub(crate) async fn expire_offsets(&self) -> Result<usize, ErrorBody> {
        let retention = self.coordinator.lock().config().offsets_retention_ms;
        let now = now_ms();
        let active: BTreeSet<String> = self.coordinator.lock().group_names().into_iter().collect();
        let expired: Vec<(String, Vec<TopicPartition>)> = self
            .offsets
            .read()
            .iter()
            .filter(|(g, _)| !active.contains(*g))
            .filter(|(_, o)| {
                o.values()
                    .map(|v| v.commit_time_ms)
                    .max()
                    .is_some_and(|t| now.saturating_sub(t) > retention)
            })
            .map(|(g, o)| (g.clone(), o.keys().cloned().collect()))
            .collect();
        let n = expired.len();
        for (g, keys) in expired {
            tracing::info!(group = %g, "committed offsets expired");
            self.persist(&g, keys.into_iter().map(|(t, p)| (t, p, None)).collect())
                .await?;
            self.coordinator.lock().forget(&g);
        }
        Ok(n)
    }
}

/// Answers for a group's assignment, for the transports: partitions grouped by topic.
pub fn assignment_lists(set: &BTreeSet<TopicPartition>) -> Vec<TopicPartitions> {
    to_lists(set)
}

/// The inverse of [`assignment_lists`].
pub fn assignment_set(lists: &[TopicPartitions]) -> BTreeSet<TopicPartition> {
    coordinator::to_sets(lists)
}
