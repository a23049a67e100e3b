//! The broker's side of partition replication (see [`crate::replica`]): roles from the
//! metadata, the leader's checks and follower bookkeeping, the follower's fetch loop, and ISR
//! maintenance.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_protocol::types::Acks;
use sluice_protocol::{ErrorBody, ErrorCode};
use sluice_storage::ReadBound;
use tokio::sync::watch;

use super::{Broker, blocking, storage_error};
use crate::cluster::{ClusterMeta, ControllerRequest, MetaCommand};
use crate::replica::{
    EpochEnd, FollowerProgress, LeaderState, ReplicaFetch, ReplicaFetched, Role, not_leader,
};
use crate::topic::{Partition, Topic};

/// Largest byte budget of one follower fetch.
const REPLICA_FETCH_BYTES: u32 = 8 << 20;
/// Long-poll of a follower fetch, in ms.
const REPLICA_FETCH_WAIT_MS: u64 = 500;

/// A leader that does not know a topic this broker's metadata has is behind on metadata (it
/// applies the same entries a moment later): say so with a retriable code.
fn lagging_leader(e: ErrorBody, topic: &str, partition: u32) -> ErrorBody {
    if matches!(
        e.code,
        ErrorCode::UnknownTopic | ErrorCode::UnknownPartition
    ) {
        ErrorBody::new(
            ErrorCode::LeaderNotAvailable,
            format!(
                "the leader of {topic}/{partition} has not applied the topic's creation yet; retry shortly"
            ),
        )
    } else {
        e
    }
}

impl Broker {
    fn leader_of(&self, topic: &str, partition: u32) -> Option<(u32, String)> {
        let cluster = self.cluster.get()?;
        let view = cluster.view();
        let p = view.meta.partition(topic, partition)?;
        let leader = p.leader?;
        let addr = view.meta.brokers.get(&leader)?.addr.clone();
        Some((leader, addr))
    }

    /// May this broker take a write for the partition now? Answers the leader epoch to stamp.
    pub(crate) fn check_writable(
        &self,
        topic: &Topic,
        part: &Partition,
        acks: Acks,
    ) -> Result<i32, ErrorBody> {
        match &*part.role.lock() {
            Role::Standalone => Ok(0),
            Role::Leader(s) => {
                if acks == Acks::All && s.isr.len() < s.min_isr {
                    return Err(ErrorBody::new(
                        ErrorCode::NotEnoughReplicas,
                        format!(
                            "{}/{} has {} in-sync replicas ({:?}) and min.insync.replicas is {}: acks=all writes are refused until replicas catch up (acks=1 still works)",
                            topic.name,
                            part.id,
                            s.isr.len(),
                            s.isr,
                            s.min_isr
                        ),
                    ));
                }
                Ok(s.epoch)
            }
            _ => Err(not_leader(
                &topic.name,
                part.id,
                self.leader_of(&topic.name, part.id),
            )),
        }
    }

    /// May consumers read the partition here? (Only its leader serves them.)
    pub(crate) fn check_readable(&self, topic: &str, part: &Partition) -> Result<(), ErrorBody> {
        match &*part.role.lock() {
            Role::Standalone | Role::Leader(_) => Ok(()),
            _ => Err(not_leader(topic, part.id, self.leader_of(topic, part.id))),
        }
    }

    /// Where to forward a request this broker cannot serve: the leader's address when `e` is
    /// `not_leader` and a leader is known; else `e` itself.
    pub(crate) fn forward_target(
        &self,
        topic: &str,
        partition: u32,
        e: ErrorBody,
    ) -> Result<String, ErrorBody> {
        if e.code != ErrorCode::NotLeader {
            return Err(e);
        }
        match self.leader_of(topic, partition) {
            Some((id, addr)) if Some(id) != self.cluster.get().map(|c| c.node_id()) => Ok(addr),
            _ => Err(e),
        }
    }

    pub(crate) async fn forward_produce(
        &self,
        addr: &str,
        topic: &str,
        partition: u32,
        batches: Vec<u8>,
        acks: Acks,
    ) -> Result<sluice_protocol::types::ProduceResponse, ErrorBody> {
        let cluster = self
            .cluster
            .get()
            .expect("forwarding happens in cluster mode");
        cluster
            .transport()
            .forward_produce(addr, topic, partition, acks, batches)
            .await
            .map_err(|e| lagging_leader(e, topic, partition))
    }

    pub(crate) async fn forward_fetch(
        &self,
        addr: &str,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: u64,
        max_wait_ms: u64,
    ) -> Result<super::Fetched, ErrorBody> {
        let cluster = self
            .cluster
            .get()
            .expect("forwarding happens in cluster mode");
        let req = crate::replica::ForwardFetch {
            topic: topic.to_string(),
            partition,
            offset,
            max_bytes,
            max_wait_ms: max_wait_ms.min(self.config.max_fetch_wait_ms),
        };
        let (meta, batches) = cluster
            .transport()
            .forward_fetch(addr, req)
            .await
            .map_err(|e| lagging_leader(e, topic, partition))?;
        Ok(super::Fetched {
            batches,
            info: meta.into(),
        })
    }

    /// Serves a fetch another broker forwarded: only if this broker leads the partition.
    pub async fn fetch_forwarded(
        &self,
        req: crate::replica::ForwardFetch,
    ) -> Result<super::Fetched, ErrorBody> {
        let part = self.topic(&req.topic)?.partition(req.partition)?;
        self.check_readable(&req.topic, &part)?;
        self.fetch_local(&part, req.offset, req.max_bytes, req.max_wait_ms)
            .await
    }

    /// Serves a follower's fetch: checks leadership and epoch, records the follower's
    /// progress, moves the high watermark, and returns batches from its offset up to the log
    /// end (long-polling when there are none).
    pub async fn replica_fetch(
        &self,
        req: ReplicaFetch,
    ) -> Result<(ReplicaFetched, Vec<u8>), ErrorBody> {
        let part = self.topic(&req.topic)?.partition(req.partition)?;
        {
            let mut role = part.role.lock();
            let Role::Leader(s) = &mut *role else {
                return Err(not_leader(
                    &req.topic,
                    req.partition,
                    self.leader_of(&req.topic, req.partition),
                ));
            };
            if req.leader_epoch != s.epoch {
                return Err(ErrorBody::new(
                    if req.leader_epoch < s.epoch {
                        ErrorCode::FencedLeaderEpoch
                    } else {
                        ErrorCode::NotLeader
                    },
                    format!(
                        "{}/{}: follower at epoch {}, leader at {}",
                        req.topic, req.partition, req.leader_epoch, s.epoch
                    ),
                ));
            }
            let Some(f) = s.followers.get_mut(&req.replica) else {
                return Err(ErrorBody::new(
                    ErrorCode::BadRequest,
                    format!(
                        "broker {} is not a replica of {}/{}",
                        req.replica, req.topic, req.partition
                    ),
                ));
            };
            f.leo = Some(req.offset);
            f.fetched_at = Some(Instant::now());
            if req.offset >= part.log.log_end_offset() {
                f.caught_up_at = Instant::now();
            }
        }
        part.update_high_watermark();
        let wait = Duration::from_millis(req.wait_ms.min(self.config.max_fetch_wait_ms));
        let deadline = tokio::time::Instant::now() + wait;
        let mut leo = part.watch_log_end();
        loop {
            let log = part.log.clone();
            let max = req.max_bytes.min(REPLICA_FETCH_BYTES) as usize;
            let offset = req.offset;
            let (bytes, info) = blocking(move || {
                let mut buf = Vec::new();
                log.read_into(offset, max, ReadBound::LogEnd, &mut buf)
                    .map(|i| (buf, i))
            })
            .await?
            .map_err(storage_error)?;
            if info.bytes > 0 || tokio::time::Instant::now() >= deadline {
                let meta = ReplicaFetched {
                    high_watermark: part.log.high_watermark(),
                    log_start_offset: info.log_start_offset,
                    log_end_offset: info.log_end_offset,
                };
                return Ok((meta, bytes));
            }
            let waited = tokio::time::timeout_at(deadline, leo.wait_for(|&l| l > req.offset)).await;
            if !matches!(waited, Ok(Ok(_))) {
                let meta = ReplicaFetched {
                    high_watermark: part.log.high_watermark(),
                    log_start_offset: part.log.log_start_offset(),
                    log_end_offset: part.log.log_end_offset(),
                };
                return Ok((meta, Vec::new()));
            }
        }
    }

    /// Where `epoch` ends in this (leader's) log.
    pub fn epoch_end(
        &self,
        topic: &str,
        partition: u32,
        epoch: i32,
    ) -> Result<EpochEnd, ErrorBody> {
        let part = self.topic(topic)?.partition(partition)?;
        if !matches!(&*part.role.lock(), Role::Leader(_)) {
            return Err(not_leader(
                topic,
                partition,
                self.leader_of(topic, partition),
            ));
        }
        Ok(match part.log.epoch_end_offset(epoch) {
            Some((e, end)) => EpochEnd {
                epoch: Some(e),
                end_offset: end,
            },
            None => EpochEnd {
                epoch: None,
                end_offset: part.log.log_start_offset(),
            },
        })
    }

    /// Sets every local partition's role from the metadata; starts a fetch task for each
    /// partition that became a follower.
    pub(crate) fn apply_roles(&self, meta: &ClusterMeta) {
        let Some(cluster) = self.cluster.get() else {
            return;
        };
        let me = cluster.node_id();
        for t in meta.topics.values() {
            let Ok(topic) = self.topic(&t.name) else {
                continue;
            };
            let min_isr = topic.settings().min_insync_replicas as usize;
            for (i, pm) in t.partitions.iter().enumerate() {
                let Ok(part) = topic.partition(i as u32) else {
                    continue;
                };
                let mut role = part.role.lock();
                let was_leader = matches!(&*role, Role::Leader(_));
                match pm.leader {
                    Some(l) if l == me => {
                        let same = matches!(&*role, Role::Leader(s) if s.epoch == pm.leader_epoch);
                        if same {
                            if let Role::Leader(s) = &mut *role {
                                s.isr = pm.isr.clone();
                                s.replicas = pm.replicas.clone();
                                s.min_isr = min_isr;
                                s.isr_change_pending = false;
                                let now = Instant::now();
                                for r in pm.replicas.iter().filter(|r| **r != me) {
                                    s.followers
                                        .entry(*r)
                                        .or_insert_with(|| FollowerProgress::new(now));
                                }
                            }
                        } else {
                            let now = Instant::now();
                            if t.name == crate::group::OFFSETS_TOPIC {
                                // Load the groups' offsets before taking requests for them.
                                self.offsets_leadership(i as u32, true);
                            }
                            tracing::info!(topic = %t.name, partition = i, epoch = pm.leader_epoch, "leading");
                            *role = Role::Leader(LeaderState {
                                epoch: pm.leader_epoch,
                                isr: pm.isr.clone(),
                                replicas: pm.replicas.clone(),
                                followers: pm
                                    .replicas
                                    .iter()
                                    .filter(|r| **r != me)
                                    .map(|r| (*r, FollowerProgress::new(now)))
                                    .collect(),
                                min_isr,
                                isr_change_pending: false,
                            });
                        }
                    }
                    Some(l) if pm.replicas.contains(&me) => {
                        let same = matches!(&*role, Role::Follower { leader, epoch, .. } if *leader == l && *epoch == pm.leader_epoch);
                        if !same {
                            let (stop, stopped) = watch::channel(());
                            *role = Role::Follower {
                                leader: l,
                                epoch: pm.leader_epoch,
                                _stop: stop,
                            };
                            tracing::info!(topic = %t.name, partition = i, leader = l, epoch = pm.leader_epoch, "following");
                            if let Some(me) = self.self_ref.get().and_then(|w| w.upgrade()) {
                                let part = part.clone();
                                let topic = t.name.clone();
                                tokio::spawn(me.follow(topic, part, l, pm.leader_epoch, stopped));
                            }
                        }
                    }
                    _ => *role = Role::Offline,
                }
                let is_leader = matches!(&*role, Role::Leader(_));
                drop(role);
                if was_leader && !is_leader && t.name == crate::group::OFFSETS_TOPIC {
                    self.offsets_leadership(i as u32, false);
                }
                part.update_high_watermark();
            }
        }
    }

    /// The follower loop of one partition: truncate by epoch, then fetch from the leader and
    /// append until the role changes.
    async fn follow(
        self: Arc<Broker>,
        topic: String,
        part: Arc<Partition>,
        leader: u32,
        epoch: i32,
        mut stop: watch::Receiver<()>,
    ) {
        let Some(cluster) = self.cluster.get().cloned() else {
            return;
        };
        let me = cluster.node_id();
        let mut backoff = Duration::from_millis(50);
        let stopped = |stop: &mut watch::Receiver<()>| stop.has_changed().is_err();
        // One follower task at a time: wait for the previous one (another leader or epoch) to
        // finish what it was appending before truncating.
        let part_for_lock = part.clone();
        let _only_follower = tokio::select! {
            g = part_for_lock.follower.lock() => g,
            _ = stop.changed() => return,
        };
        // 1. Cut a divergent tail: ask the leader where our latest epoch ends.
        loop {
            if stopped(&mut stop) {
                return;
            }
            let Some(addr) = cluster
                .view()
                .meta
                .brokers
                .get(&leader)
                .map(|b| b.addr.clone())
            else {
                return;
            };
            let Some(mine) = part.log.latest_epoch() else {
                break; // an empty log has nothing to cut
            };
            match cluster
                .transport()
                .epoch_end(&addr, &topic, part.id, mine)
                .await
            {
                Ok(end) => {
                    let cut = match end.epoch {
                        Some(_) => end.end_offset,
                        // The leader knows no epoch this old: keep only what was committed.
                        None => part.log.high_watermark(),
                    };
                    let log = part.log.clone();
                    match blocking(move || log.truncate_to(cut)).await {
                        Ok(Ok(leo)) => {
                            tracing::debug!(%topic, partition = part.id, leo, "follower truncated by epoch");
                            part.publish_high_watermark(part.log.high_watermark().min(leo));
                            break;
                        }
                        r => {
                            tracing::error!(%topic, partition = part.id, ?r, "truncation failed");
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(%topic, partition = part.id, error = %e.message, "epoch lookup failed");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
        // 2. Fetch and append.
        backoff = Duration::from_millis(50);
        loop {
            if stopped(&mut stop) {
                return;
            }
            let Some(addr) = cluster
                .view()
                .meta
                .brokers
                .get(&leader)
                .map(|b| b.addr.clone())
            else {
                return;
            };
            let req = ReplicaFetch {
                topic: topic.clone(),
                partition: part.id,
                replica: me,
                leader_epoch: epoch,
                offset: part.log.log_end_offset(),
                max_bytes: REPLICA_FETCH_BYTES,
                wait_ms: REPLICA_FETCH_WAIT_MS,
            };
            let fetched = tokio::select! {
                r = cluster.transport().replica_fetch(&addr, req) => r,
                _ = stop.changed() => return,
            };
            match fetched {
                Ok((meta, mut bytes)) => {
                    backoff = Duration::from_millis(50);
                    if !bytes.is_empty() {
                        let log = part.log.clone();
                        match blocking(move || log.append_replicated(&mut bytes)).await {
                            Ok(Ok(_)) => part.advance_high_watermark(),
                            Ok(Err(e)) => {
                                tracing::error!(%topic, partition = part.id, error = %e, "follower append failed");
                                tokio::time::sleep(backoff).await;
                            }
                            Err(_) => return,
                        }
                    }
                    part.publish_high_watermark(meta.high_watermark.min(part.log.log_end_offset()));
                }
                Err(e)
                    if e.code == ErrorCode::OffsetOutOfRange
                        && e.log_start_offset
                            .is_some_and(|s| s > part.log.log_end_offset()) =>
                {
                    // Behind the leader's retention: start over at its log start.
                    let start = e.log_start_offset.unwrap_or(0);
                    let log = part.log.clone();
                    match blocking(move || log.restart_at(start)).await {
                        Ok(Ok(())) => {
                            tracing::warn!(%topic, partition = part.id, start, "follower was behind the leader's retention; restarted at its log start");
                            part.advance_high_watermark();
                        }
                        r => {
                            tracing::error!(%topic, partition = part.id, ?r, "restarting the follower's log failed");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(%topic, partition = part.id, error = %e.message, "replica fetch failed");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Leader duty, run periodically: asks the controller to shrink the ISR of partitions
    /// whose followers fell behind for `replica.lag.time.max.ms`, and to expand it with
    /// followers that caught up.
    pub(crate) async fn maintain_isr(&self) {
        let Some(cluster) = self.cluster.get().cloned() else {
            return;
        };
        let me = cluster.node_id();
        let lag_ms = cluster.config().replica_lag_time_max_ms;
        let now = Instant::now();
        let mut changes = Vec::new();
        for topic in self.topics() {
            for part in topic.partitions() {
                let mut role = part.role.lock();
                if let Role::Leader(s) = &mut *role
                    && !s.isr_change_pending
                    && let Some(isr) = s.wanted_isr(me, part.log.high_watermark(), lag_ms, now)
                {
                    s.isr_change_pending = true;
                    changes.push((
                        part.clone(),
                        MetaCommand::UpdateIsr {
                            topic: topic.name.clone(),
                            partition: part.id,
                            leader: me,
                            leader_epoch: s.epoch,
                            isr,
                        },
                    ));
                }
            }
        }
        for (part, cmd) in changes {
            tracing::info!(?cmd, "asking the controller to change an ISR");
            if let Err(e) = cluster.submit(ControllerRequest::Command(cmd)).await {
                tracing::warn!(error = %e.message, "ISR change refused");
                if let Role::Leader(s) = &mut *part.role.lock() {
                    s.isr_change_pending = false;
                }
            }
        }
    }
}
