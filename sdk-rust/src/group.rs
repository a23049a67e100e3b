//! Consumer-group membership: the background task that joins, heartbeats, commits and leaves
//! for a group-mode [`Consumer`](crate::Consumer) (docs/PROTOCOL.md §9).
//!
//! The task owns the member id and epoch. It tells the consumer what to consume through
//! [`GroupEvent`]s (with the start offset of every newly assigned partition, from the group's
//! committed offsets or the reset policy), and the consumer tells it what it gave up and what
//! to commit through [`Cmd`]s. The task learns of assignment changes from its heartbeat answers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sluice_protocol::ErrorCode;
use sluice_protocol::frame::{Request, Response};
use sluice_protocol::types::{
    CommitOffsets, GroupAssignment, GroupHeartbeat, OffsetCommit, TopicPartitions,
};
use tokio::sync::{mpsc, oneshot};

use crate::admin::unexpected;
use crate::client::Client;
use crate::error::{Error, Result};

/// Where a group consumer starts in a partition the group has no committed offset for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// The partition's first offset.
    Earliest,
    /// The partition's end: only records produced from then on (the default).
    #[default]
    Latest,
    /// Neither: the consumer reports an error and does not read the partition.
    None,
}

/// How the group shares partitions among its members; only the group's first member's
/// choice counts (docs/PROTOCOL.md §9.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Assignor {
    /// Balanced, moving as few partitions as possible (the broker's default).
    #[default]
    Sticky,
    /// Contiguous ranges per topic.
    Range,
    /// Partitions dealt to members in turn.
    RoundRobin,
}

impl Assignor {
    fn name(self) -> &'static str {
        match self {
            Assignor::Sticky => "sticky",
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
        }
    }
}

/// A change of a group consumer's partitions, from [`Consumer::rebalance_events`](crate::Consumer::rebalance_events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rebalance {
    /// The consumer now reads these (topic, partition) pairs too.
    Assigned(Vec<(String, u32)>),
    /// The consumer no longer reads these: given to another member, or lost (fenced, session
    /// expired, reconnected).
    Revoked(Vec<(String, u32)>),
}

pub(crate) type Tp = (String, u32);

/// From the task to the consumer.
pub(crate) enum GroupEvent {
    /// Consume exactly `assignment`; partitions new to the consumer start at `starts`.
    Assignment {
        incarnation: u64,
        assignment: BTreeSet<Tp>,
        starts: HashMap<Tp, u64>,
    },
    /// Membership was lost: drop every partition without committing.
    Lost { incarnation: u64 },
    /// Something to report to the application.
    Error(Error),
}

/// From the consumer to the task.
pub(crate) enum Cmd {
    Commit {
        incarnation: u64,
        offsets: Vec<OffsetCommit>,
        reply: Option<oneshot::Sender<Result<()>>>,
    },
    /// The consumer stopped reading `revoked`: commit `offsets`, then report it at once.
    Revoked {
        incarnation: u64,
        offsets: Vec<OffsetCommit>,
        revoked: Vec<Tp>,
    },
    /// Commit `offsets` (if any), leave, and stop.
    Close {
        incarnation: u64,
        offsets: Vec<OffsetCommit>,
        reply: oneshot::Sender<Result<()>>,
    },
}

pub(crate) struct GroupConfig {
    pub group: String,
    pub topics: Vec<String>,
    pub instance_id: Option<String>,
    pub session_timeout_ms: Option<u64>,
    pub reset: OffsetReset,
    pub assignor: Assignor,
}

struct Task {
    client: Client,
    config: GroupConfig,
    events: mpsc::UnboundedSender<GroupEvent>,
    paused: Arc<AtomicBool>,
    member_id: Option<String>,
    member_epoch: i32,
    interval: Duration,
    /// Connection generation the member joined on.
    joined_on: Option<u64>,
    /// What the consumer consumes (reported as `owned`).
    owned: BTreeSet<Tp>,
    /// The last assignment sent to the consumer.
    sent: BTreeSet<Tp>,
    /// Bumped whenever membership is lost; commands of older incarnations are dropped.
    incarnation: u64,
    pushes: mpsc::UnboundedReceiver<GroupAssignment>,
}

/// Joins the group and spawns the task; returns its command sender.
pub(crate) async fn start(
    client: Client,
    config: GroupConfig,
    events: mpsc::UnboundedSender<GroupEvent>,
    paused: Arc<AtomicBool>,
) -> Result<mpsc::UnboundedSender<Cmd>> {
    let pushes = client.group_pushes();
    let mut task = Task {
        pushes,
        client,
        config,
        events,
        paused,
        member_id: None,
        member_epoch: 0,
        interval: Duration::from_secs(3),
        joined_on: None,
        owned: BTreeSet::new(),
        sent: BTreeSet::new(),
        incarnation: 0,
    };
    // The first join fails here (a bad group id, for instance).
    let answer = task.heartbeat().await?;
    task.take(answer).await;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(task.run(rx));
    Ok(tx)
}

fn to_tps(set: &BTreeSet<Tp>) -> Vec<TopicPartitions> {
    let mut by_topic: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (t, p) in set {
        by_topic.entry(t).or_default().push(*p);
    }
    by_topic
        .into_iter()
        .map(|(topic, partitions)| TopicPartitions {
            topic: topic.to_string(),
            partitions,
        })
        .collect()
}

impl Task {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        let mut backoff = self.client.options().backoff();
        let mut next = tokio::time::Instant::now() + self.interval;
        loop {
            // Wait for a push, a command or the next heartbeat.
            tokio::select! {
                Some(push) = self.pushes.recv() => {
                    // Apply a push like an answer (the broker sends them only to the
                    // connection the member joined on).
                    if self.member_id.as_deref() == Some(push.member_id.as_str())
                        && push.member_epoch >= self.member_epoch
                    {
                        self.take(push).await;
                    }
                    continue;
                }
                cmd = rx.recv() => match cmd {
                    None => {
                        // The consumer was dropped: leave without committing.
                        let _ = self.leave().await;
                        return;
                    }
                    Some(Cmd::Commit { incarnation, offsets, reply }) => {
                        let result = if incarnation == self.incarnation {
                            self.commit(offsets).await
                        } else {
                            Err(Error::InvalidInput("the group membership changed; these positions are no longer this consumer's".into()))
                        };
                        if let Some(reply) = reply {
                            let _ = reply.send(result);
                        } else if let Err(e) = result {
                            tracing::debug!(error = %e, "auto-commit failed");
                        }
                        continue;
                    }
                    Some(Cmd::Revoked { incarnation, offsets, revoked }) => {
                        if incarnation != self.incarnation {
                            continue;
                        }
                        if !offsets.is_empty()
                            && let Err(e) = self.commit(offsets).await
                        {
                            tracing::debug!(error = %e, "commit of revoked partitions failed");
                        }
                        for tp in revoked {
                            self.owned.remove(&tp);
                        }
                        // Heartbeat at once: another member waits for them.
                    }
                    Some(Cmd::Close { incarnation, offsets, reply }) => {
                        let mut result = Ok(());
                        if incarnation == self.incarnation && !offsets.is_empty() {
                            result = self.commit(offsets).await;
                        }
                        let left = self.leave().await;
                        let _ = reply.send(result.and(left));
                        return;
                    }
                },
                _ = tokio::time::sleep_until(next) => {}
            }
            next = tokio::time::Instant::now() + self.interval;
            if self.paused.load(Ordering::Relaxed) {
                continue;
            }
            if self.member_id.is_some() && self.client.generation() != self.joined_on {
                // Reconnected: join again (leaving first frees the partitions at once).
                tracing::debug!(group = %self.config.group, "reconnected; joining the group again");
                self.lose().await;
                let _ = self.leave().await;
            }
            match self.heartbeat().await {
                Ok(answer) => {
                    backoff.reset();
                    self.take(answer).await;
                    next = tokio::time::Instant::now() + self.interval;
                }
                Err(e) => match e.code() {
                    Some(ErrorCode::FencedMemberEpoch) => {
                        tracing::warn!(group = %self.config.group, "fenced; joining again");
                        self.lose().await;
                        let _ = self.leave().await;
                        next = tokio::time::Instant::now();
                    }
                    Some(ErrorCode::UnknownMember) => {
                        tracing::warn!(group = %self.config.group, "no longer a member; joining again");
                        self.lose().await;
                        self.member_id = None;
                        self.member_epoch = 0;
                        next = tokio::time::Instant::now();
                    }
                    _ => {
                        if !e.is_retriable() {
                            let _ = self.events.send(GroupEvent::Error(e));
                        } else {
                            tracing::debug!(group = %self.config.group, error = %e, "heartbeat failed");
                        }
                        next = tokio::time::Instant::now() + backoff.next_delay();
                    }
                },
            }
        }
    }

    /// Drops every partition (without committing).
    async fn lose(&mut self) {
        self.incarnation += 1;
        self.owned.clear();
        self.sent.clear();
        let _ = self.events.send(GroupEvent::Lost {
            incarnation: self.incarnation,
        });
    }

    async fn leave(&mut self) -> Result<()> {
        let Some(member_id) = self.member_id.take() else {
            return Ok(());
        };
        self.member_epoch = 0;
        self.joined_on = None;
        let request = Request::GroupHeartbeat(GroupHeartbeat {
            group: self.config.group.clone(),
            member_id: Some(member_id),
            member_epoch: -1,
            ..Default::default()
        });
        match self.client.request(request).await? {
            Response::GroupAssignment(_) => Ok(()),
            other => Err(unexpected("group_heartbeat", &other)),
        }
    }

    async fn heartbeat(&mut self) -> Result<GroupAssignment> {
        let joining = self.member_id.is_none();
        let generation = self.client.generation();
        let request = if joining {
            GroupHeartbeat {
                group: self.config.group.clone(),
                member_id: None,
                member_epoch: 0,
                instance_id: self.config.instance_id.clone(),
                topics: Some(self.config.topics.clone()),
                topic_pattern: None,
                owned: None,
                assignor: Some(self.config.assignor.name().to_string()),
                session_timeout_ms: self.config.session_timeout_ms,
            }
        } else {
            GroupHeartbeat {
                group: self.config.group.clone(),
                member_id: self.member_id.clone(),
                member_epoch: self.member_epoch,
                owned: Some(to_tps(&self.owned)),
                ..Default::default()
            }
        };
        match self
            .client
            .request(Request::GroupHeartbeat(request))
            .await?
        {
            Response::GroupAssignment(a) => {
                if joining {
                    self.joined_on = generation;
                }
                // Pushes received before this answer are older than it.
                while self.pushes.try_recv().is_ok() {}
                Ok(a)
            }
            other => Err(unexpected("group_heartbeat", &other)),
        }
    }

    async fn commit(&self, offsets: Vec<OffsetCommit>) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let Some(member_id) = self.member_id.clone() else {
            return Err(Error::InvalidInput(
                "not a member of the group right now".into(),
            ));
        };
        let request = Request::CommitOffsets(CommitOffsets {
            group: self.config.group.clone(),
            member_id: Some(member_id),
            member_epoch: Some(self.member_epoch),
            offsets,
        });
        match self.client.request(request).await? {
            Response::Done => Ok(()),
            other => Err(unexpected("commit_offsets", &other)),
        }
    }

    /// Takes in a heartbeat answer: tells the consumer of a changed assignment, with where
    /// to start the partitions new to it.
    async fn take(&mut self, answer: GroupAssignment) {
        if answer.member_epoch < 0 {
            return;
        }
        self.member_id = Some(answer.member_id);
        self.member_epoch = answer.member_epoch;
        if answer.heartbeat_interval_ms > 0 {
            self.interval = Duration::from_millis(answer.heartbeat_interval_ms);
        }
        let assignment: BTreeSet<Tp> = answer
            .assignment
            .into_iter()
            .flat_map(|tp| {
                let topic = tp.topic;
                tp.partitions.into_iter().map(move |p| (topic.clone(), p))
            })
            .collect();
        if assignment == self.sent {
            return;
        }
        let added: Vec<Tp> = assignment.difference(&self.sent).cloned().collect();
        let mut starts = HashMap::new();
        let mut assignment = assignment;
        if !added.is_empty() {
            match self.starts(&added).await {
                Ok(s) => starts = s,
                Err(e) => {
                    // Not startable now: leave them out, and say why; the next heartbeat
                    // answer offers them again.
                    let _ = self.events.send(GroupEvent::Error(e));
                    for tp in &added {
                        assignment.remove(tp);
                    }
                }
            }
            for tp in &added {
                if !starts.contains_key(tp) {
                    assignment.remove(tp);
                }
            }
        }
        for tp in starts.keys() {
            self.owned.insert(tp.clone());
        }
        self.sent = assignment.clone();
        let _ = self.events.send(GroupEvent::Assignment {
            incarnation: self.incarnation,
            assignment,
            starts,
        });
    }

    /// Start offsets: the group's committed offsets, else the reset policy.
    async fn starts(&self, added: &[Tp]) -> Result<HashMap<Tp, u64>> {
        let topics: BTreeSet<&String> = added.iter().map(|(t, _)| t).collect();
        let answer = self
            .client
            .request(Request::FetchOffsets {
                group: self.config.group.clone(),
                topics: Some(topics.iter().map(|t| t.to_string()).collect()),
            })
            .await?;
        let committed: HashMap<Tp, u64> = match answer {
            Response::GroupOffsets(o) => o
                .offsets
                .into_iter()
                .map(|c| ((c.topic, c.partition), c.offset))
                .collect(),
            other => return Err(unexpected("fetch_offsets", &other)),
        };
        let mut starts = HashMap::new();
        let mut ends: HashMap<String, HashMap<u32, (u64, u64)>> = HashMap::new();
        for tp in added {
            if let Some(offset) = committed.get(tp) {
                starts.insert(tp.clone(), *offset);
                continue;
            }
            if self.config.reset == OffsetReset::None {
                return Err(Error::InvalidInput(format!(
                    "group `{}` has no committed offset for {}/{} and auto_offset_reset is None",
                    self.config.group, tp.0, tp.1
                )));
            }
            if !ends.contains_key(&tp.0) {
                let offsets = self.client.admin().list_offsets(&tp.0, None).await?;
                ends.insert(
                    tp.0.clone(),
                    offsets
                        .into_iter()
                        .map(|o| (o.partition, (o.earliest, o.latest)))
                        .collect(),
                );
            }
            if let Some((earliest, latest)) = ends[&tp.0].get(&tp.1) {
                let start = if self.config.reset == OffsetReset::Earliest {
                    *earliest
                } else {
                    *latest
                };
                starts.insert(tp.clone(), start);
            }
        }
        Ok(starts)
    }
}
