//! Partition replication, Kafka's model: followers fetch from the leader; the leader tracks
//! each follower's log end offset (LEO) and moves the high watermark (HW) to the lowest LEO in
//! the ISR; consumers read below the HW only; acks=all waits for the HW to pass the write.
//!
//! Each partition of a clustered topic has a [`Role`] on this broker, set from the applied
//! metadata by [`crate::Broker::reconcile`]:
//! - `Leader`: takes writes (stamped with its leader epoch), serves consumers and followers.
//! - `Follower`: a task fetches from the leader ([`crate::Broker`]'s follower loop), after
//!   truncating a divergent tail by leader epoch.
//! - `Offline`: not a replica here, or the partition has no leader now.
//!
//! A single broker's partitions (and internal topics) are `Standalone`: HW = LEO at once.

use std::collections::HashMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sluice_protocol::{ErrorBody, ErrorCode};
use tokio::sync::watch;

/// What one follower has shown the leader.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FollowerProgress {
    /// Its log end offset, as its last fetch said (None before its first fetch).
    pub leo: Option<u64>,
    /// When it last fetched up to the leader's log end.
    pub caught_up_at: Instant,
    /// When it last fetched at all (a follower that stopped fetching does not rejoin the ISR).
    pub fetched_at: Option<Instant>,
}

impl FollowerProgress {
    /// A follower not heard from yet (its clock for leaving the ISR starts `now`).
    pub(crate) fn new(now: Instant) -> FollowerProgress {
        FollowerProgress {
            leo: None,
            caught_up_at: now,
            fetched_at: None,
        }
    }
}

/// Leader-side state of a partition.
#[derive(Debug, Clone)]
pub(crate) struct LeaderState {
    pub epoch: i32,
    /// In-sync replicas as the metadata says (this broker included).
    pub isr: Vec<u32>,
    pub replicas: Vec<u32>,
    /// Follower ids → progress.
    pub followers: HashMap<u32, FollowerProgress>,
    /// `min.insync.replicas` of the topic.
    pub min_isr: usize,
    /// An ISR change this leader asked the controller for and has not seen applied yet.
    pub isr_change_pending: bool,
}

/// A partition's role on this broker.
#[derive(Debug)]
pub(crate) enum Role {
    /// A single broker (or an internal topic): HW follows the LEO.
    Standalone,
    /// This broker leads the partition.
    Leader(LeaderState),
    /// This broker copies the partition from `leader`; dropping `stop` ends the fetch task.
    Follower {
        leader: u32,
        epoch: i32,
        _stop: watch::Sender<()>,
    },
    /// No replica here, or no leader now.
    Offline,
}

impl Role {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Role::Standalone => "standalone",
            Role::Leader(_) => "leader",
            Role::Follower { .. } => "follower",
            Role::Offline => "offline",
        }
    }
}

/// A follower's fetch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplicaFetch {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The follower's broker id.
    pub replica: u32,
    /// The leader epoch the follower follows.
    pub leader_epoch: i32,
    /// The follower's log end offset: where to read from.
    pub offset: u64,
    /// Byte budget.
    pub max_bytes: u32,
    /// Long-poll time when nothing is new, in ms.
    pub wait_ms: u64,
}

/// The leader's answer (the batches travel next to it).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ReplicaFetched {
    /// The leader's high watermark.
    pub high_watermark: u64,
    /// The leader's log start offset.
    pub log_start_offset: u64,
    /// The leader's log end offset.
    pub log_end_offset: u64,
}

/// Where an epoch ends in the leader's log.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct EpochEnd {
    /// The largest epoch ≤ the one asked for that the leader's log knows (None if none).
    pub epoch: Option<i32>,
    /// The first offset after it.
    pub end_offset: u64,
}

/// A fetch a broker forwards to the partition leader for a client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ForwardFetch {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Offset to read from.
    pub offset: u64,
    /// Byte budget.
    pub max_bytes: u64,
    /// Long-poll time, in ms.
    pub max_wait_ms: u64,
}

/// What a forwarded fetch read (the batches travel next to it); mirrors
/// [`sluice_storage::ReadInfo`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct FetchedMeta {
    /// Base offset of the first batch returned.
    pub first_batch_offset: Option<u64>,
    /// Where to read next.
    pub next_offset: u64,
    /// Bytes returned.
    pub bytes: usize,
    /// Log start offset.
    pub log_start_offset: u64,
    /// High watermark.
    pub high_watermark: u64,
    /// Log end offset.
    pub log_end_offset: u64,
}

impl From<sluice_storage::ReadInfo> for FetchedMeta {
    fn from(i: sluice_storage::ReadInfo) -> Self {
        FetchedMeta {
            first_batch_offset: i.first_batch_offset,
            next_offset: i.next_offset,
            bytes: i.bytes,
            log_start_offset: i.log_start_offset,
            high_watermark: i.high_watermark,
            log_end_offset: i.log_end_offset,
        }
    }
}

impl From<FetchedMeta> for sluice_storage::ReadInfo {
    fn from(m: FetchedMeta) -> Self {
        sluice_storage::ReadInfo {
            first_batch_offset: m.first_batch_offset,
            next_offset: m.next_offset,
            bytes: m.bytes,
            log_start_offset: m.log_start_offset,
            high_watermark: m.high_watermark,
            log_end_offset: m.log_end_offset,
        }
    }
}

pub(crate) fn not_leader(topic: &str, partition: u32, leader: Option<(u32, String)>) -> ErrorBody {
    match leader {
        Some((id, addr)) => ErrorBody::new(
            ErrorCode::NotLeader,
            format!(
                "this broker does not lead {topic}/{partition}; broker {id} at {addr} does: send it there (GET /v1/cluster lists the leaders)"
            ),
        ),
        None => ErrorBody::new(
            ErrorCode::LeaderNotAvailable,
            format!(
                "{topic}/{partition} has no leader right now (an election is under way or its in-sync replicas are down); retry shortly"
            ),
        ),
    }
}

impl LeaderState {
    /// The high watermark the ISR allows: the lowest LEO among in-sync replicas (followers
    /// that have not fetched yet count as 0).
    pub(crate) fn isr_min_leo(&self, own_leo: u64) -> u64 {
        self.isr
            .iter()
            .filter_map(|r| self.followers.get(r))
            .map(|f| f.leo.unwrap_or(0))
            .fold(own_leo, u64::min)
    }

    /// The ISR this leader would ask for now: followers in sync that have not caught up for
    /// `lag_ms` leave it, followers out of it that reached `hw` join it. `None` when it would
    /// not change.
    pub(crate) fn wanted_isr(
        &self,
        me: u32,
        hw: u64,
        lag_ms: u64,
        now: Instant,
    ) -> Option<Vec<u32>> {
        let mut isr: Vec<u32> = self
            .replicas
            .iter()
            .copied()
            .filter(|r| {
                if *r == me {
                    return true;
                }
                let Some(f) = self.followers.get(r) else {
                    return false;
                };
                if self.isr.contains(r) {
                    now.duration_since(f.caught_up_at).as_millis() as u64 <= lag_ms
                } else {
                    // Rejoins only while it is fetching (a dead broker's last position does
                    // not count) and once it has the high watermark.
                    let fetching = f.fetched_at.is_some_and(|t| {
                        now.saturating_duration_since(t) <= std::time::Duration::from_secs(5)
                    });
                    fetching && f.leo.is_some_and(|leo| leo >= hw)
                }
            })
            .collect();
        isr.sort_unstable();
        let mut current = self.isr.clone();
        current.sort_unstable();
        (isr != current).then_some(isr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn state() -> LeaderState {
        let now = Instant::now();
        LeaderState {
            epoch: 1,
            isr: vec![1, 2, 3],
            replicas: vec![1, 2, 3],
            followers: [2, 3]
                .into_iter()
                .map(|id| (id, FollowerProgress::new(now)))
                .collect(),
            min_isr: 1,
            isr_change_pending: false,
        }
    }

    #[test]
    fn hw_is_the_lowest_leo_in_the_isr() {
        let mut s = state();
        assert_eq!(
            s.isr_min_leo(10),
            0,
            "followers that never fetched hold it back"
        );
        s.followers.get_mut(&2).unwrap().leo = Some(7);
        s.followers.get_mut(&3).unwrap().leo = Some(12);
        assert_eq!(s.isr_min_leo(10), 7);
        s.isr = vec![1, 3];
        assert_eq!(s.isr_min_leo(10), 10);
    }

    #[test]
    fn lagging_followers_leave_and_caught_up_ones_join() {
        let mut s = state();
        let later = Instant::now() + Duration::from_millis(500);
        assert_eq!(s.wanted_isr(1, 0, 1_000, later), None);
        s.followers.get_mut(&2).unwrap().caught_up_at = later;
        let much_later = later + Duration::from_millis(1_200);
        assert_eq!(s.wanted_isr(1, 0, 1_000, much_later), Some(vec![1]));
        s.isr = vec![1];
        s.followers.get_mut(&3).unwrap().leo = Some(5);
        assert_eq!(
            s.wanted_isr(1, 5, 1_000, much_later),
            None,
            "3 does not fetch (a dead broker's last position does not count)"
        );
        s.followers.get_mut(&3).unwrap().fetched_at = Some(much_later);
        assert_eq!(s.wanted_isr(1, 5, 1_000, much_later), Some(vec![1, 3]));
        assert_eq!(
            s.wanted_isr(1, 6, 1_000, much_later),
            None,
            "3 is behind the HW"
        );
    }
}
