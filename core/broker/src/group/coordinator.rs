//! The group coordinator: membership, broker-side assignment with incremental reconciliation,
//! epochs that fence zombies, liveness, and committed offsets.
//!
//! # How a rebalance goes (KIP-848)
//!
//! Every change of membership or subscriptions bumps the *group epoch*; the assignor then
//! computes a *target assignment* for that epoch. Each member moves toward its target one
//! heartbeat at a time:
//!
//! 1. partitions it owns but should not are revoked first: its answer lists only what it may
//!    keep; it stops consuming the rest, commits, and reports its smaller `owned` set;
//! 2. partitions it should get are granted only once no other member owns them (their old owner
//!    confirmed the revocation, left, or was removed after its session timeout);
//! 3. when it owns exactly its target, its *member epoch* becomes the target's epoch.
//!
//! So a partition never has two owners at once. A heartbeat or commit with a stale member
//! epoch is refused (`fenced_member_epoch`); an unknown member id (removed member) gets
//! `unknown_member`. Either way the client drops its partitions and rejoins.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use sluice_protocol::types::*;
use sluice_protocol::{ErrorBody, ErrorCode};

use super::assignor::{AssignmentInput, Assignor, TopicPartition};

/// Group settings (broker-wide).
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// Smallest session timeout a member may ask for, in ms.
    pub min_session_timeout_ms: u64,
    /// Largest session timeout a member may ask for, in ms.
    pub max_session_timeout_ms: u64,
    /// Session timeout of members that ask for none, in ms.
    pub default_session_timeout_ms: u64,
    /// Heartbeat interval told to members, in ms (capped at a third of their session timeout).
    pub heartbeat_interval_ms: u64,
    /// Committed offsets of a group without members expire this long after their last commit.
    pub offsets_retention_ms: u64,
    /// Partitions of `__consumer_offsets`.
    pub offsets_partitions: u32,
    /// Most members one group may have.
    pub max_members: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 100,
            max_session_timeout_ms: 300_000,
            default_session_timeout_ms: 45_000,
            heartbeat_interval_ms: 3_000,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            offsets_partitions: 8,
            max_members: 1000,
        }
    }
}

#[derive(Debug, Clone)]
struct Member {
    id: String,
    instance_id: Option<String>,
    epoch: i32,
    previous_epoch: i32,
    topics: Option<BTreeSet<String>>,
    /// The subscribed pattern as given, and compiled.
    pattern: Option<(String, regex_lite::Regex)>,
    /// What the member may consume now (the broker's view, including partitions whose
    /// revocation it has not confirmed yet).
    owned: BTreeSet<TopicPartition>,
    session_timeout: Duration,
    last_seen: Instant,
    /// A static member that left temporarily (epoch -2): its partitions wait for it.
    away: bool,
}

impl Member {
    fn subscribes(&self, topic: &str) -> bool {
        self.topics.as_ref().is_some_and(|t| t.contains(topic))
            || self
                .pattern
                .as_ref()
                .is_some_and(|(_, re)| re.is_match(topic))
    }
}

#[derive(Debug, Default)]
struct Group {
    epoch: i32,
    assignor: Assignor,
    members: BTreeMap<String, Member>,
    target: BTreeMap<String, BTreeSet<TopicPartition>>,
    target_epoch: i32,
    /// The topic partition counts the target was computed for.
    target_topics: BTreeMap<String, u32>,
    next_member: u64,
}

impl Group {
    fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "empty"
        } else if self.target_epoch == self.epoch
            && self.members.values().all(|m| {
                m.epoch >= self.target_epoch
                    && self.target.get(&m.id).is_some_and(|t| *t == m.owned)
            })
        {
            "stable"
        } else {
            "reconciling"
        }
    }

    fn owner_of(&self, tp: &TopicPartition) -> Option<&str> {
        self.members
            .values()
            .find(|m| m.owned.contains(tp))
            .map(|m| m.id.as_str())
    }

    /// Asserts the invariant: no partition has two owners.
    fn check_single_owners(&self) {
        let mut seen = BTreeSet::new();
        for m in self.members.values() {
            for tp in &m.owned {
                assert!(seen.insert(tp), "partition {tp:?} owned twice in a group");
            }
        }
    }
}

/// A snapshot of a group for descriptions.
pub(crate) struct GroupView {
    pub(crate) state: String,
    pub(crate) epoch: i32,
    pub(crate) assignor: String,
    pub(crate) members: Vec<MemberDescription>,
    pub(crate) owners: BTreeMap<TopicPartition, String>,
}

/// All groups of a broker.
pub(crate) struct Coordinator {
    config: GroupConfig,
    groups: HashMap<String, Group>,
}

pub(crate) fn to_sets(list: &[TopicPartitions]) -> BTreeSet<TopicPartition> {
    list.iter()
        .flat_map(|tp| tp.partitions.iter().map(move |p| (tp.topic.clone(), *p)))
        .collect()
}

/// Groups partitions by topic, for answers.
pub(crate) fn to_lists(set: &BTreeSet<TopicPartition>) -> Vec<TopicPartitions> {
    let mut out: Vec<TopicPartitions> = Vec::new();
    for (t, p) in set {
        match out.last_mut() {
            Some(last) if &last.topic == t => last.partitions.push(*p),
            _ => out.push(TopicPartitions {
                topic: t.clone(),
                partitions: vec![*p],
            }),
        }
    }
    out
}

fn err(code: ErrorCode, message: impl Into<String>) -> ErrorBody {
    ErrorBody::new(code, message)
}

impl Coordinator {
    pub(crate) fn new(config: GroupConfig) -> Coordinator {
        Coordinator {
            config,
            groups: HashMap::new(),
        }
    }

    pub(crate) fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// Handles a heartbeat (join, leave, or keep-alive) against the current topics.
    pub(crate) fn heartbeat(
        &mut self,
        req: &GroupHeartbeat,
        topics: &BTreeMap<String, u32>,
        now: Instant,
    ) -> Result<GroupAssignment, ErrorBody> {
        validate_group_id(&req.group)?;
        let config = self.config.clone();
        if req.member_epoch != 0 && !self.groups.contains_key(&req.group) {
            let id = req.member_id.as_deref().unwrap_or("");
            return Err(unknown_member(&req.group, id));
        }
        if let Some(a) = &req.assignor {
            // Checked for every member, though only the first one's choice is used.
            a.parse::<Assignor>()
                .map_err(|e: String| err(ErrorCode::BadRequest, e))?;
        }
        let group = self.groups.entry(req.group.clone()).or_default();
        let id = match req.member_epoch {
            0 => Self::join(&config, group, req, now)?,
            -1 | -2 => {
                let id = req
                    .member_id
                    .as_deref()
                    .ok_or_else(|| err(ErrorCode::BadRequest, "leaving needs member_id"))?;
                let member = group
                    .members
                    .get_mut(id)
                    .ok_or_else(|| unknown_member(&req.group, id))?;
                if req.member_epoch == -2 && member.instance_id.is_some() {
                    member.away = true;
                    member.last_seen = now;
                } else {
                    group.members.remove(id);
                    group.epoch += 1;
                }
                let id = id.to_string();
                Self::advance(group, topics);
                if group.members.is_empty() {
                    self.groups.remove(&req.group);
                }
                return Ok(GroupAssignment {
                    member_id: id,
                    member_epoch: req.member_epoch,
                    heartbeat_interval_ms: 0,
                    assignment: vec![],
                });
            }
            epoch if epoch > 0 => {
                let id = req.member_id.as_deref().ok_or_else(|| {
                    err(
                        ErrorCode::BadRequest,
                        "a heartbeat needs member_id (or member_epoch 0 to join)",
                    )
                })?;
                let member = group
                    .members
                    .get_mut(id)
                    .ok_or_else(|| unknown_member(&req.group, id))?;
                if epoch != member.epoch && epoch != member.previous_epoch {
                    return Err(fenced(&req.group, id, epoch, member.epoch));
                }
                member.last_seen = now;
                member.away = false;
                if let Some(owned) = &req.owned {
                    // Partitions the member no longer lists are revoked; it cannot claim more
                    // than it was given.
                    let reported = to_sets(owned);
                    member.owned = member.owned.intersection(&reported).cloned().collect();
                }
                if Self::update_subscription(member, req)? {
                    group.epoch += 1;
                }
                id.to_string()
            }
            other => {
                return Err(err(
                    ErrorCode::BadRequest,
                    format!("member_epoch {other} is not valid: use 0 to join, -1 or -2 to leave"),
                ));
            }
        };
        Self::advance(group, topics);
        group.check_single_owners();
        let target = group.target.get(&id).cloned().unwrap_or_default();
        let target_epoch = group.target_epoch;
        let member = group.members.get_mut(&id).expect("member present");
        // The member's epoch moves only in its own answers (so other members' heartbeats never
        // fence it): to the target's epoch once it has nothing left to revoke. Epochs never go
        // back (a static member's new incarnation may be ahead of the group).
        if member.owned.is_subset(&target) && member.epoch < target_epoch {
            member.previous_epoch = member.epoch;
            member.epoch = target_epoch;
        }
        let member = &group.members[&id];
        let interval = config
            .heartbeat_interval_ms
            .min(member.session_timeout.as_millis() as u64 / 3)
            .max(1);
        let assignment = to_lists(&member.owned.intersection(&target).cloned().collect());
        Ok(GroupAssignment {
            member_id: id,
            member_epoch: member.epoch,
            heartbeat_interval_ms: interval,
            assignment,
        })
    }

    /// Adds a member (or takes a static one over); returns its id.
    fn join(
        config: &GroupConfig,
        group: &mut Group,
        req: &GroupHeartbeat,
        now: Instant,
    ) -> Result<String, ErrorBody> {
        let session = req
            .session_timeout_ms
            .unwrap_or(config.default_session_timeout_ms)
            .clamp(config.min_session_timeout_ms, config.max_session_timeout_ms);
        if req.topics.is_none() && req.topic_pattern.is_none() {
            return Err(err(
                ErrorCode::BadRequest,
                "joining needs `topics` or `topic_pattern`",
            ));
        }
        if group.members.is_empty()
            && let Some(a) = &req.assignor
        {
            group.assignor = a
                .parse()
                .map_err(|e: String| err(ErrorCode::BadRequest, e))?;
        }
        // Static member coming back: a new member id takes over the old one's partitions and
        // target without a rebalance; the previous incarnation (old id) is now unknown, so its
        // heartbeats, commits and leaves are refused.
        if let Some(instance) = &req.instance_id
            && let Some(old_id) = group
                .members
                .values()
                .find(|m| m.instance_id.as_ref() == Some(instance))
                .map(|m| m.id.clone())
        {
            let mut member = group.members.remove(&old_id).expect("found above");
            let new_id = Self::new_member_id(group, &req.group);
            member.id = new_id.clone();
            member.previous_epoch = -1;
            member.epoch += 1;
            member.last_seen = now;
            member.away = false;
            member.session_timeout = Duration::from_millis(session);
            let changed = Self::update_subscription(&mut member, req)?;
            if let Some(t) = group.target.remove(&old_id) {
                group.target.insert(new_id.clone(), t);
            }
            group.members.insert(new_id.clone(), member);
            if changed {
                group.epoch += 1;
            }
            return Ok(new_id);
        }
        if group.members.len() >= config.max_members {
            return Err(err(
                ErrorCode::TooManyRequests,
                format!(
                    "group `{}` has its maximum of {} members",
                    req.group, config.max_members
                ),
            ));
        }
        let id = Self::new_member_id(group, &req.group);
        let mut member = Member {
            id: id.clone(),
            instance_id: req.instance_id.clone(),
            epoch: 0,
            previous_epoch: 0,
            topics: None,
            pattern: None,
            owned: BTreeSet::new(),
            session_timeout: Duration::from_millis(session),
            last_seen: now,
            away: false,
        };
        Self::update_subscription(&mut member, req)?;
        group.members.insert(id.clone(), member);
        group.epoch += 1;
        Ok(id)
    }

    /// A member id unique across broker restarts too, so a zombie from before a restart never
    /// matches a new member.
    fn new_member_id(group: &mut Group, name: &str) -> String {
        use std::hash::{BuildHasher, Hasher};
        group.next_member += 1;
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(group.next_member);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        format!("{name}-{}-{:016x}", group.next_member, h.finish())
    }

    /// Applies a subscription change; whether it changed.
    fn update_subscription(member: &mut Member, req: &GroupHeartbeat) -> Result<bool, ErrorBody> {
        let mut changed = false;
        if let Some(topics) = &req.topics {
            let set: BTreeSet<String> = topics.iter().cloned().collect();
            if member.topics.as_ref() != Some(&set) {
                member.topics = Some(set);
                changed = true;
            }
        }
        if let Some(p) = &req.topic_pattern
            && member.pattern.as_ref().map(|(raw, _)| raw.as_str()) != Some(p.as_str())
        {
            let re = regex_lite::Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                err(
                    ErrorCode::BadRequest,
                    format!("topic_pattern `{p}` is not a valid regular expression: {e}"),
                )
            })?;
            member.pattern = Some((p.clone(), re));
            changed = true;
        }
        Ok(changed)
    }

    /// Recomputes the target when the epoch or the topics moved, then lets every member take
    /// what has become free. Cheap when nothing changed.
    fn advance(group: &mut Group, topics: &BTreeMap<String, u32>) {
        let subscribed: BTreeMap<String, u32> = topics
            .iter()
            .filter(|(t, _)| group.members.values().any(|m| m.subscribes(t)))
            .map(|(t, n)| (t.clone(), *n))
            .collect();
        if group.target_epoch != group.epoch || subscribed != group.target_topics {
            if subscribed != group.target_topics && group.target_epoch == group.epoch {
                // Partitions were added or topics appeared: a new epoch.
                group.epoch += 1;
            }
            let members: BTreeMap<String, BTreeSet<String>> = group
                .members
                .values()
                .map(|m| {
                    (
                        m.id.clone(),
                        subscribed
                            .keys()
                            .filter(|t| m.subscribes(t))
                            .cloned()
                            .collect(),
                    )
                })
                .collect();
            group.target = group.assignor.assign(&AssignmentInput {
                members: &members,
                partitions: &subscribed,
                previous: &group.target,
            });
            group.target_epoch = group.epoch;
            group.target_topics = subscribed;
        }
        // Partitions of topics that vanished are no longer owned.
        for m in group.members.values_mut() {
            m.owned
                .retain(|tp| group.target_topics.get(&tp.0).is_some_and(|&n| tp.1 < n));
        }
        // Grant free partitions to members whose revocations are done.
        let ids: Vec<String> = group.members.keys().cloned().collect();
        for id in ids {
            let target = group.target.get(&id).cloned().unwrap_or_default();
            let member = &group.members[&id];
            if member.away {
                continue;
            }
            let revoking = member.owned.difference(&target).next().is_some();
            if revoking {
                continue; // step 1 first: the member must give up partitions before it gets any
            }
            let wanted: Vec<TopicPartition> = target.difference(&member.owned).cloned().collect();
            let free: Vec<TopicPartition> = wanted
                .into_iter()
                .filter(|tp| group.owner_of(tp).is_none())
                .collect();
            let member = group.members.get_mut(&id).expect("member");
            member.owned.extend(free);
        }
    }

    /// The assignment a member should have now, without touching its liveness (for pushes).
    pub(crate) fn peek(&self, group: &str, member_id: &str) -> Option<GroupAssignment> {
        let g = self.groups.get(group)?;
        let m = g.members.get(member_id)?;
        let target = g.target.get(member_id).cloned().unwrap_or_default();
        Some(GroupAssignment {
            member_id: m.id.clone(),
            member_epoch: m.epoch,
            heartbeat_interval_ms: self
                .config
                .heartbeat_interval_ms
                .min(m.session_timeout.as_millis() as u64 / 3)
                .max(1),
            assignment: to_lists(&m.owned.intersection(&target).cloned().collect()),
        })
    }

    /// Removes members whose session expired; returns how many.
    pub(crate) fn expire(&mut self, topics: &BTreeMap<String, u32>, now: Instant) -> usize {
        let mut removed = 0;
        for (name, group) in self.groups.iter_mut() {
            let dead: Vec<String> = group
                .members
                .values()
                .filter(|m| now.saturating_duration_since(m.last_seen) > m.session_timeout)
                .map(|m| m.id.clone())
                .collect();
            if dead.is_empty() {
                continue;
            }
            for id in &dead {
                tracing::info!(group = %name, member = %id, "member removed after its session timeout");
                group.members.remove(id);
            }
            removed += dead.len();
            group.epoch += 1;
            Self::advance(group, topics);
        }
        self.groups.retain(|_, g| !g.members.is_empty());
        removed
    }

    /// Checks that a commit comes from a current member (or that the group has none).
    pub(crate) fn check_commit(&self, req: &CommitOffsets) -> Result<(), ErrorBody> {
        validate_group_id(&req.group)?;
        let group = self.groups.get(&req.group);
        let active = group.is_some_and(|g| !g.members.is_empty());
        match (&req.member_id, group) {
            (None, _) if active => Err(err(
                ErrorCode::UnknownMember,
                format!(
                    "group `{}` has active members; commit as one of them (member_id and member_epoch)",
                    req.group
                ),
            )),
            (None, _) => Ok(()),
            (Some(id), None) => Err(unknown_member(&req.group, id)),
            (Some(id), Some(g)) => {
                let m = g
                    .members
                    .get(id)
                    .ok_or_else(|| unknown_member(&req.group, id))?;
                let epoch = req.member_epoch.unwrap_or(-1);
                if epoch != m.epoch && epoch != m.previous_epoch {
                    return Err(fenced(&req.group, id, epoch, m.epoch));
                }
                Ok(())
            }
        }
    }

    /// Whether the group has active members.
    pub(crate) fn is_active(&self, group: &str) -> bool {
        self.groups
            .get(group)
            .is_some_and(|g| !g.members.is_empty())
    }

    /// Names of groups with members.
    pub(crate) fn group_names(&self) -> Vec<String> {
        self.groups
            .iter()
            .filter(|(_, g)| !g.members.is_empty())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Drops the in-memory state of an empty group.
    pub(crate) fn forget(&mut self, group: &str) {
        if self.groups.get(group).is_some_and(|g| g.members.is_empty()) {
            self.groups.remove(group);
        }
    }

    /// State, epoch, assignor, members and the owner of each partition.
    pub(crate) fn describe(&self, group: &str) -> Option<GroupView> {
        let g = self.groups.get(group)?;
        let members = g
            .members
            .values()
            .map(|m| MemberDescription {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                member_epoch: m.epoch,
                topics: g
                    .target_topics
                    .keys()
                    .filter(|t| m.subscribes(t))
                    .cloned()
                    .collect(),
                assigned: to_lists(&m.owned),
                target: to_lists(&g.target.get(&m.id).cloned().unwrap_or_default()),
            })
            .collect();
        let owners = g
            .members
            .values()
            .flat_map(|m| m.owned.iter().map(move |tp| (tp.clone(), m.id.clone())))
            .collect();
        Some(GroupView {
            state: g.state().to_string(),
            epoch: g.epoch,
            assignor: g.assignor.to_string(),
            members,
            owners,
        })
    }

    /// Summary line per known group.
    /// Drops the membership state of the groups `which` selects (their coordinator moved).
    pub(crate) fn forget_groups(&mut self, which: impl Fn(&str) -> bool) {
        self.groups.retain(|g, _| !which(g));
    }

    pub(crate) fn summaries(&self) -> Vec<(String, String, u32)> {
        self.groups
            .iter()
            .map(|(n, g)| (n.clone(), g.state().to_string(), g.members.len() as u32))
            .collect()
    }
}

fn unknown_member(group: &str, id: &str) -> ErrorBody {
    err(
        ErrorCode::UnknownMember,
        format!(
            "group `{group}` has no member `{id}` (it left or its session expired); rejoin with member_epoch 0"
        ),
    )
}

fn fenced(group: &str, id: &str, got: i32, current: i32) -> ErrorBody {
    err(
        ErrorCode::FencedMemberEpoch,
        format!(
            "member `{id}` of group `{group}` sent epoch {got} but is at epoch {current}; stop consuming and rejoin with member_epoch 0"
        ),
    )
}

/// Group ids: 1 to 249 characters, no control characters.
pub(crate) fn validate_group_id(group: &str) -> Result<(), ErrorBody> {
    if group.is_empty() || group.len() > 249 || group.chars().any(char::is_control) {
        return Err(err(
            ErrorCode::BadRequest,
            "a group id is 1 to 249 printable characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(n: u32) -> BTreeMap<String, u32> {
        [("t".to_string(), n)].into()
    }

    fn join(c: &mut Coordinator, now: Instant) -> GroupAssignment {
        c.heartbeat(
            &GroupHeartbeat {
                group: "g".into(),
                member_epoch: 0,
                topics: Some(vec!["t".into()]),
                session_timeout_ms: Some(1000),
                ..Default::default()
            },
            &topics(12),
            now,
        )
        .unwrap()
    }

    fn beat(
        c: &mut Coordinator,
        a: &GroupAssignment,
        owned: &[TopicPartitions],
        now: Instant,
    ) -> Result<GroupAssignment, ErrorBody> {
        c.heartbeat(
            &GroupHeartbeat {
                group: "g".into(),
                member_id: Some(a.member_id.clone()),
                member_epoch: a.member_epoch,
                owned: Some(owned.to_vec()),
                ..Default::default()
            },
            &topics(12),
            now,
        )
    }

    fn count(a: &[TopicPartitions]) -> usize {
        a.iter().map(|t| t.partitions.len()).sum()
    }

    /// Members that follow the protocol (revoke, then report) converge to a balanced, complete
    /// assignment, and at no step does a partition have two owners (asserted inside).
    #[test]
    fn members_converge_without_double_ownership() {
        let mut c = Coordinator::new(GroupConfig::default());
        let now = Instant::now();
        let mut members: Vec<GroupAssignment> = vec![join(&mut c, now)];
        for _ in 0..3 {
            members.push(join(&mut c, now));
            for _round in 0..4 {
                for m in members.iter_mut() {
                    let owned = m.assignment.clone();
                    *m = beat(&mut c, m, &owned, now).unwrap();
                }
            }
            let total: usize = members.iter().map(|m| count(&m.assignment)).sum();
            assert_eq!(total, 12);
        }
        assert!(members.iter().all(|m| count(&m.assignment) == 3));
        let state = c.describe("g").unwrap().state;
        assert_eq!(state, "stable");
    }

    /// Other members' heartbeats never move a member's epoch, so a member that heartbeats on
    /// time is never fenced, however many rebalances happened in between.
    #[test]
    fn a_member_is_not_fenced_by_other_members_rebalances() {
        let mut c = Coordinator::new(GroupConfig::default());
        let now = Instant::now();
        let topics2: BTreeMap<String, u32> = [("t".to_string(), 12), ("u".to_string(), 4)].into();
        let a = c
            .heartbeat(
                &GroupHeartbeat {
                    group: "g".into(),
                    member_epoch: 0,
                    topics: Some(vec!["t".into()]),
                    ..Default::default()
                },
                &topics2,
                now,
            )
            .unwrap();
        for _ in 0..3 {
            c.heartbeat(
                &GroupHeartbeat {
                    group: "g".into(),
                    member_epoch: 0,
                    topics: Some(vec!["u".into()]),
                    ..Default::default()
                },
                &topics2,
                now,
            )
            .unwrap();
        }
        let again = c.heartbeat(
            &GroupHeartbeat {
                group: "g".into(),
                member_id: Some(a.member_id.clone()),
                member_epoch: a.member_epoch,
                owned: Some(a.assignment.clone()),
                ..Default::default()
            },
            &topics2,
            now,
        );
        assert!(again.is_ok(), "{again:?}");
        assert!(again.unwrap().member_epoch > a.member_epoch);
    }

    #[test]
    fn stale_epochs_and_removed_members_are_refused() {
        let mut c = Coordinator::new(GroupConfig::default());
        let now = Instant::now();
        let a = join(&mut c, now);
        let a = beat(&mut c, &a, &[], now).unwrap();
        let mut old = a.clone();
        old.member_epoch += 7;
        let e = beat(&mut c, &old, &[], now).unwrap_err();
        assert_eq!(e.code, ErrorCode::FencedMemberEpoch);
        // After the session timeout the member is gone: its heartbeat and commit are refused.
        assert_eq!(c.expire(&topics(12), now + Duration::from_secs(5)), 1);
        assert_eq!(
            beat(&mut c, &a, &[], now).unwrap_err().code,
            ErrorCode::UnknownMember
        );
        let commit = CommitOffsets {
            group: "g".into(),
            member_id: Some(a.member_id.clone()),
            member_epoch: Some(a.member_epoch),
            offsets: vec![],
        };
        assert_eq!(
            c.check_commit(&commit).unwrap_err().code,
            ErrorCode::UnknownMember
        );
    }

    fn a_id(c: &Coordinator) -> String {
        c.groups["g"]
            .members
            .values()
            .find(|m| m.instance_id.as_deref() == Some("a"))
            .unwrap()
            .id
            .clone()
    }

    #[test]
    fn a_static_member_returns_to_its_partitions_without_a_rebalance() {
        let mut c = Coordinator::new(GroupConfig::default());
        let now = Instant::now();
        let req = |instance: &str| GroupHeartbeat {
            group: "g".into(),
            member_epoch: 0,
            instance_id: Some(instance.into()),
            topics: Some(vec!["t".into()]),
            session_timeout_ms: Some(10_000),
            ..Default::default()
        };
        let mut a = c.heartbeat(&req("a"), &topics(4), now).unwrap();
        let mut b = c.heartbeat(&req("b"), &topics(4), now).unwrap();
        for _ in 0..3 {
            for m in [&mut a, &mut b] {
                let instance = if m.member_id == a_id(&c) { "a" } else { "b" };
                *m = c
                    .heartbeat(
                        &GroupHeartbeat {
                            member_id: Some(m.member_id.clone()),
                            member_epoch: m.member_epoch,
                            owned: Some(m.assignment.clone()),
                            ..req(instance)
                        },
                        &topics(4),
                        now,
                    )
                    .unwrap();
            }
        }
        assert_eq!(count(&a.assignment) + count(&b.assignment), 4);
        let epoch_before = c.describe("g").unwrap().epoch;
        // "a" restarts: it leaves temporarily and rejoins with the same instance id.
        c.heartbeat(
            &GroupHeartbeat {
                member_id: Some(a.member_id.clone()),
                member_epoch: -2,
                ..req("a")
            },
            &topics(4),
            now,
        )
        .unwrap();
        let again = c.heartbeat(&req("a"), &topics(4), now).unwrap();
        assert_ne!(
            again.member_id, a.member_id,
            "a new incarnation, a new member id"
        );
        assert_eq!(again.assignment, a.assignment);
        let epoch_after = c.describe("g").unwrap().epoch;
        assert_eq!(epoch_before, epoch_after, "no rebalance");
        // The previous incarnation is refused, whatever epoch it sends: heartbeat, leave, commit.
        for epoch in [a.member_epoch, a.member_epoch + 1, -1] {
            let e = c
                .heartbeat(
                    &GroupHeartbeat {
                        member_id: Some(a.member_id.clone()),
                        member_epoch: epoch,
                        ..req("a")
                    },
                    &topics(4),
                    now,
                )
                .unwrap_err();
            assert_eq!(e.code, ErrorCode::UnknownMember);
        }
        let commit = CommitOffsets {
            group: "g".into(),
            member_id: Some(a.member_id.clone()),
            member_epoch: Some(a.member_epoch),
            offsets: vec![],
        };
        assert_eq!(
            c.check_commit(&commit).unwrap_err().code,
            ErrorCode::UnknownMember
        );
        // The new one keeps working.
        let ok = c.heartbeat(
            &GroupHeartbeat {
                member_id: Some(again.member_id.clone()),
                member_epoch: again.member_epoch,
                owned: Some(again.assignment.clone()),
                ..req("a")
            },
            &topics(4),
            now,
        );
        assert!(ok.is_ok(), "{ok:?}");
    }
}
