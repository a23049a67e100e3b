//! The cluster metadata state machine: brokers, topics and their partition assignments
//! (replicas, leader, leader epoch, ISR).
//!
//! Every broker applies the same committed commands in the same order, so [`ClusterMeta::apply`]
//! is deterministic: it reads nothing but the state and the command (no clock, no randomness).
//! Partition leader elections happen inside `apply` when the controller marks a broker dead or
//! alive, so every broker agrees on the new leader and its epoch without a second round.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sluice_protocol::{ErrorBody, ErrorCode};

/// One broker as the cluster knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerMeta {
    /// Node id (`--node-id`).
    pub id: u32,
    /// Address clients and other brokers reach it at (`host:port`).
    pub addr: String,
    /// The controller hears its heartbeats. A dead broker leads nothing and leaves every ISR.
    pub alive: bool,
    /// Being drained: new topics get no replicas on it.
    #[serde(default)]
    pub decommissioning: bool,
}

/// One partition's placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMeta {
    /// Replicas in preference order (the first is the preferred leader).
    pub replicas: Vec<u32>,
    /// Current leader; `None` while no in-sync replica is alive (the partition is offline).
    pub leader: Option<u32>,
    /// Bumped at every leader change; written into the batches the leader appends.
    pub leader_epoch: i32,
    /// In-sync replicas (the leader included).
    pub isr: Vec<u32>,
    /// A reassignment under way: the replica list the partition moves to. Until every one of
    /// them is in the ISR, `replicas` holds the old and the new together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Vec<u32>>,
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// Name.
    pub name: String,
    /// Replicas per partition.
    pub replication_factor: u16,
    /// Settings overrides (as in `topic.json`).
    pub configs: BTreeMap<String, String>,
    /// Creation time (the controller's clock when it proposed the topic).
    pub created_ms: u64,
    /// Partitions by number.
    pub partitions: Vec<PartitionMeta>,
}

impl TopicMeta {
    fn unclean_election(&self) -> bool {
        self.configs
            .get("unclean.leader.election.enable")
            .is_some_and(|v| v == "true")
    }
}

/// A plugin every broker should have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginMeta {
    /// sha256 of the module, hex.
    pub sha256: String,
    /// Module size in bytes.
    pub size: u64,
    /// A broker that had it when it was uploaded (others copy it from there, or from any
    /// broker that has the same hash).
    pub holder: u32,
}

/// The replicated metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMeta {
    /// Brokers by id.
    pub brokers: BTreeMap<u32, BrokerMeta>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicMeta>,
    /// Plugins by name.
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginMeta>,
    /// Plugins deleted (and not uploaded again since): brokers delete their copies.
    #[serde(default)]
    pub deleted_plugins: std::collections::BTreeSet<String>,
}

/// A change to the metadata: the payload of one Raft log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum MetaCommand {
    /// A broker joined or changed its address.
    RegisterBroker {
        /// Node id.
        id: u32,
        /// Its address.
        addr: String,
    },
    /// The controller saw a broker's heartbeats stop (`alive = false`) or resume. Elects new
    /// leaders for the partitions this changes.
    SetBrokerAlive {
        /// Node id.
        id: u32,
        /// Alive or dead.
        alive: bool,
    },
    /// Start or stop draining a broker.
    SetDecommissioning {
        /// Node id.
        id: u32,
        /// Draining or not.
        decommissioning: bool,
    },
    /// A new topic with its assignment (computed by the controller).
    CreateTopic(TopicMeta),
    /// A topic is deleted.
    DeleteTopic {
        /// Name.
        name: String,
    },
    /// A topic's settings overrides are replaced.
    AlterTopic {
        /// Name.
        name: String,
        /// The new overrides.
        configs: BTreeMap<String, String>,
    },
    /// A partition leader shrinks or expands its ISR. Refused unless `leader` and
    /// `leader_epoch` are current (a stale leader is fenced).
    UpdateIsr {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// The leader asking.
        leader: u32,
        /// Its leader epoch.
        leader_epoch: i32,
        /// The new ISR (must contain the leader).
        isr: Vec<u32>,
    },
    /// A plugin was uploaded (or replaced) on broker `holder`.
    PutPlugin {
        /// Name.
        name: String,
        /// What it is.
        plugin: PluginMeta,
    },
    /// A plugin was deleted.
    DeletePlugin {
        /// Name.
        name: String,
    },
    /// Start moving a partition to `replicas` (`sluice partition reassign`, decommissioning):
    /// the new replicas are added and catch up as followers; [`MetaCommand::CompleteReassign`]
    /// drops the old ones once every new one is in sync.
    BeginReassign {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// The replica list to move to (preferred leader first).
        replicas: Vec<u32>,
    },
    /// Finish a reassignment whose new replicas are all in sync: the replica list becomes the
    /// target; if the leader is not among it, the first in-sync target replica leads.
    CompleteReassign {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
    },
}

/// What applying a command answered.
pub type MetaResult = Result<(), ErrorBody>;

fn not_found(what: String) -> ErrorBody {
    ErrorBody::new(ErrorCode::UnknownTopic, what)
}

impl ClusterMeta {
    /// Applies one committed command. Invalid commands change nothing and answer why.
    pub fn apply(&mut self, cmd: &MetaCommand) -> MetaResult {
        match cmd {
            MetaCommand::RegisterBroker { id, addr } => {
                let b = self.brokers.entry(*id).or_insert_with(|| BrokerMeta {
                    id: *id,
                    addr: addr.clone(),
                    alive: false,
                    decommissioning: false,
                });
                b.addr = addr.clone();
                Ok(())
            }
            MetaCommand::SetBrokerAlive { id, alive } => {
                let Some(b) = self.brokers.get_mut(id) else {
                    return Err(ErrorBody::new(
                        ErrorCode::BadRequest,
                        format!("broker {id} is not registered"),
                    ));
                };
                b.alive = *alive;
                self.elect_leaders();
                Ok(())
            }
            MetaCommand::SetDecommissioning {
                id,
                decommissioning,
            } => {
                let Some(b) = self.brokers.get_mut(id) else {
                    return Err(ErrorBody::new(
                        ErrorCode::BadRequest,
                        format!("broker {id} is not registered"),
                    ));
                };
                b.decommissioning = *decommissioning;
                Ok(())
            }
            MetaCommand::CreateTopic(t) => {
                if self.topics.contains_key(&t.name) {
                    return Err(ErrorBody::new(
                        ErrorCode::TopicExists,
                        format!("topic `{}` exists already", t.name),
                    ));
                }
                self.topics.insert(t.name.clone(), t.clone());
                self.elect_leaders();
                Ok(())
            }
            MetaCommand::PutPlugin { name, plugin } => {
                self.deleted_plugins.remove(name);
                self.plugins.insert(name.clone(), plugin.clone());
                Ok(())
            }
            MetaCommand::DeletePlugin { name } => {
                self.plugins.remove(name);
                self.deleted_plugins.insert(name.clone());
                Ok(())
            }
            MetaCommand::DeleteTopic { name } => match self.topics.remove(name) {
                Some(_) => Ok(()),
                None => Err(not_found(format!("topic `{name}` does not exist"))),
            },
            MetaCommand::AlterTopic { name, configs } => match self.topics.get_mut(name) {
                Some(t) => {
                    t.configs = configs.clone();
                    self.elect_leaders();
                    Ok(())
                }
                None => Err(not_found(format!("topic `{name}` does not exist"))),
            },
            MetaCommand::UpdateIsr {
                topic,
                partition,
                leader,
                leader_epoch,
                isr,
            } => {
                let brokers = &self.brokers;
                let Some(p) = self
                    .topics
                    .get_mut(topic)
                    .and_then(|t| t.partitions.get_mut(*partition as usize))
                else {
                    return Err(not_found(format!("{topic}/{partition} does not exist")));
                };
                if p.leader != Some(*leader) || p.leader_epoch != *leader_epoch {
                    return Err(ErrorBody::new(
                        ErrorCode::FencedLeaderEpoch,
                        format!(
                            "{topic}/{partition}: broker {leader} at epoch {leader_epoch} is not the leader (leader {:?}, epoch {})",
                            p.leader, p.leader_epoch
                        ),
                    ));
                }
                if !isr.contains(leader) || isr.iter().any(|r| !p.replicas.contains(r)) {
                    return Err(ErrorBody::new(
                        ErrorCode::BadRequest,
                        format!(
                            "{topic}/{partition}: ISR {isr:?} must hold the leader and replicas only"
                        ),
                    ));
                }
                // A dead broker never rejoins the ISR: the controller removed it for a reason.
                let mut new: Vec<u32> = p
                    .replicas
                    .iter()
                    .copied()
                    .filter(|r| isr.contains(r))
                    .filter(|r| brokers.get(r).is_some_and(|b| b.alive))
                    .collect();
                if !new.contains(leader) {
                    new.insert(0, *leader);
                }
                p.isr = new;
                Ok(())
            }
            MetaCommand::BeginReassign {
                topic,
                partition,
                replicas,
            } => {
                let brokers = &self.brokers;
                let Some(p) = self
                    .topics
                    .get_mut(topic)
                    .and_then(|t| t.partitions.get_mut(*partition as usize))
                else {
                    return Err(not_found(format!("{topic}/{partition} does not exist")));
                };
                let mut unique = replicas.clone();
                unique.sort_unstable();
                unique.dedup();
                if replicas.is_empty()
                    || unique.len() != replicas.len()
                    || replicas.iter().any(|r| !brokers.contains_key(r))
                {
                    return Err(ErrorBody::new(
                        ErrorCode::BadRequest,
                        format!("replicas {replicas:?} must be distinct registered brokers"),
                    ));
                }
                // Replicas of an earlier, unfinished move stay until this one completes.
                let mut all = p.replicas.clone();
                for r in replicas {
                    if !all.contains(r) {
                        all.push(*r);
                    }
                }
                p.replicas = all;
                p.target = Some(replicas.clone());
                Ok(())
            }
            MetaCommand::CompleteReassign { topic, partition } => {
                let brokers = &self.brokers;
                let Some(p) = self
                    .topics
                    .get_mut(topic)
                    .and_then(|t| t.partitions.get_mut(*partition as usize))
                else {
                    return Err(not_found(format!("{topic}/{partition} does not exist")));
                };
                let Some(target) = p.target.clone() else {
                    return Err(ErrorBody::new(
                        ErrorCode::BadRequest,
                        format!("{topic}/{partition} is not being reassigned"),
                    ));
                };
                if target.iter().any(|r| !p.isr.contains(r)) {
                    return Err(ErrorBody::new(
                        ErrorCode::BadRequest,
                        format!("{topic}/{partition}: not every new replica is in sync yet"),
                    ));
                }
                p.replicas = target.clone();
                p.isr.retain(|r| target.contains(r));
                p.target = None;
                let alive = |r: &u32| brokers.get(r).is_some_and(|b| b.alive);
                if p.leader.is_none_or(|l| !target.contains(&l)) {
                    p.leader = target
                        .iter()
                        .copied()
                        .find(|r| alive(r) && p.isr.contains(r));
                    p.leader_epoch += 1;
                }
                self.elect_leaders();
                Ok(())
            }
        }
    }

    /// Re-elects where needed: a leader that is dead or no longer a replica is replaced by the
    /// first alive in-sync replica (or, with unclean election enabled for the topic, any alive
    /// replica); dead brokers leave every ISR. Each leader change bumps the epoch.
    fn elect_leaders(&mut self) {
        let brokers = &self.brokers;
        let alive = |r: &u32| brokers.get(r).is_some_and(|b| b.alive);
        for t in self.topics.values_mut() {
            let unclean = t.unclean_election();
            for p in &mut t.partitions {
                let before = p.isr.clone();
                p.isr.retain(|r| alive(r) && p.replicas.contains(r));
                // The last in-sync replica stays in the ISR while dead, as Kafka keeps it: it
                // holds every acknowledged record, so it is the one to lead when it returns.
                if p.isr.is_empty()
                    && let Some(last) = before.iter().find(|r| p.replicas.contains(r))
                {
                    p.isr.push(*last);
                }
                let leader_ok = p
                    .leader
                    .is_some_and(|l| alive(&l) && p.replicas.contains(&l) && p.isr.contains(&l));
                if leader_ok {
                    continue;
                }
                let mut next = p
                    .replicas
                    .iter()
                    .copied()
                    .find(|r| alive(r) && p.isr.contains(r));
                if next.is_none() && unclean {
                    next = p.replicas.iter().copied().find(|r| alive(r));
                    if let Some(n) = next {
                        p.isr = vec![n];
                    }
                }
                if next != p.leader {
                    p.leader = next;
                    p.leader_epoch += 1;
                }
            }
        }
    }

    /// Brokers that can take new replicas: alive and not draining, by id.
    pub fn placeable_brokers(&self) -> Vec<u32> {
        self.brokers
            .values()
            .filter(|b| b.alive && !b.decommissioning)
            .map(|b| b.id)
            .collect()
    }

    /// The partition's placement, if it exists.
    pub fn partition(&self, topic: &str, partition: u32) -> Option<&PartitionMeta> {
        self.topics
            .get(topic)
            .and_then(|t| t.partitions.get(partition as usize))
    }
}

/// Spreads `partitions` × `replication_factor` replicas over `brokers` (sorted ids) Kafka's way:
/// partition p's leader is broker `(start + p) mod n`, its followers the next ones, so leaders
/// and replicas are spread evenly and no broker holds two replicas of one partition.
pub fn assign_replicas(
    brokers: &[u32],
    partitions: u32,
    replication_factor: u16,
    start: usize,
) -> Result<Vec<Vec<u32>>, ErrorBody> {
    let n = brokers.len();
    let rf = replication_factor as usize;
    if rf == 0 || rf > n {
        return Err(ErrorBody::new(
            ErrorCode::InvalidReplicationFactor,
            format!(
                "replication factor {replication_factor} needs that many live brokers; {n} are available (alive and not draining)"
            ),
        ));
    }
    Ok((0..partitions as usize)
        .map(|p| {
            // Follower i sits 1 + (s + i - 1) mod (n - 1) places after the leader: distinct
            // places, never the leader's; s moves every n partitions so follower sets vary.
            let s = p / n;
            let first = (start + p) % n;
            (0..rf)
                .map(|i| {
                    if i == 0 {
                        return brokers[first];
                    }
                    let shift = 1 + (s + i - 1) % (n - 1);
                    brokers[(first + shift) % n]
                })
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(brokers: &[u32]) -> ClusterMeta {
        let mut m = ClusterMeta::default();
        for &id in brokers {
            m.apply(&MetaCommand::RegisterBroker {
                id,
                addr: format!("127.0.0.1:{}", 9400 + id),
            })
            .unwrap();
            m.apply(&MetaCommand::SetBrokerAlive { id, alive: true })
                .unwrap();
        }
        m
    }

    fn topic(name: &str, replicas: Vec<Vec<u32>>) -> TopicMeta {
        TopicMeta {
            name: name.into(),
            replication_factor: replicas[0].len() as u16,
            configs: Default::default(),
            created_ms: 0,
            partitions: replicas
                .into_iter()
                .map(|r| PartitionMeta {
                    isr: r.clone(),
                    replicas: r,
                    leader: None,
                    leader_epoch: -1,
                    target: None,
                })
                .collect(),
        }
    }

    #[test]
    fn assignment_spreads_leaders_and_never_repeats_a_broker() {
        for n in 1..=6u32 {
            let brokers: Vec<u32> = (1..=n).collect();
            for rf in 1..=n as u16 {
                let a = assign_replicas(&brokers, 12 * n, rf, 0).unwrap();
                let mut leaders = BTreeMap::new();
                for r in &a {
                    assert_eq!(r.len(), rf as usize);
                    let mut s = r.clone();
                    s.sort();
                    s.dedup();
                    assert_eq!(s.len(), r.len(), "{r:?} repeats a broker");
                    *leaders.entry(r[0]).or_insert(0) += 1;
                }
                assert!(leaders.values().all(|&c| c == 12), "{leaders:?}");
            }
        }
        assert_eq!(
            assign_replicas(&[1, 2], 1, 3, 0).unwrap_err().code,
            ErrorCode::InvalidReplicationFactor
        );
    }

    #[test]
    fn creation_elects_the_first_replica_at_epoch_zero() {
        let mut m = meta(&[1, 2, 3]);
        m.apply(&MetaCommand::CreateTopic(topic("t", vec![vec![2, 3, 1]])))
            .unwrap();
        let p = m.partition("t", 0).unwrap();
        assert_eq!((p.leader, p.leader_epoch), (Some(2), 0));
        assert_eq!(p.isr, vec![2, 3, 1]);
    }

    #[test]
    fn a_dead_leader_is_replaced_from_the_isr_and_the_epoch_moves() {
        let mut m = meta(&[1, 2, 3]);
        m.apply(&MetaCommand::CreateTopic(topic("t", vec![vec![1, 2, 3]])))
            .unwrap();
        m.apply(&MetaCommand::SetBrokerAlive {
            id: 1,
            alive: false,
        })
        .unwrap();
        let p = m.partition("t", 0).unwrap();
        assert_eq!((p.leader, p.leader_epoch), (Some(2), 1));
        assert_eq!(p.isr, vec![2, 3]);
        // Coming back does not take leadership back, nor rejoin the ISR by itself.
        m.apply(&MetaCommand::SetBrokerAlive { id: 1, alive: true })
            .unwrap();
        let p = m.partition("t", 0).unwrap();
        assert_eq!(
            (p.leader, p.leader_epoch, p.isr.clone()),
            (Some(2), 1, vec![2, 3])
        );
        // The leader asks to add it back once it caught up.
        m.apply(&MetaCommand::UpdateIsr {
            topic: "t".into(),
            partition: 0,
            leader: 2,
            leader_epoch: 1,
            isr: vec![2, 3, 1],
        })
        .unwrap();
        assert_eq!(m.partition("t", 0).unwrap().isr, vec![1, 2, 3]);
    }

    #[test]
    fn a_stale_leader_cannot_change_the_isr() {
        let mut m = meta(&[1, 2, 3]);
        m.apply(&MetaCommand::CreateTopic(topic("t", vec![vec![1, 2, 3]])))
            .unwrap();
        m.apply(&MetaCommand::SetBrokerAlive {
            id: 1,
            alive: false,
        })
        .unwrap();
        let before = m.clone();
        let e = m
            .apply(&MetaCommand::UpdateIsr {
                topic: "t".into(),
                partition: 0,
                leader: 1,
                leader_epoch: 0,
                isr: vec![1],
            })
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::FencedLeaderEpoch);
        assert_eq!(m, before);
    }

    #[test]
    fn a_reassignment_adds_new_replicas_first_and_drops_old_ones_once_in_sync() {
        let mut m = meta(&[1, 2, 3, 4]);
        m.apply(&MetaCommand::CreateTopic(topic("t", vec![vec![1, 2]])))
            .unwrap();
        m.apply(&MetaCommand::BeginReassign {
            topic: "t".into(),
            partition: 0,
            replicas: vec![3, 4],
        })
        .unwrap();
        let p = m.partition("t", 0).unwrap().clone();
        assert_eq!(p.replicas, vec![1, 2, 3, 4]);
        assert_eq!((p.leader, p.isr.clone()), (Some(1), vec![1, 2]));
        let early = m.apply(&MetaCommand::CompleteReassign {
            topic: "t".into(),
            partition: 0,
        });
        assert!(early.is_err(), "3 and 4 are not in sync yet");
        m.apply(&MetaCommand::UpdateIsr {
            topic: "t".into(),
            partition: 0,
            leader: 1,
            leader_epoch: 0,
            isr: vec![1, 2, 3, 4],
        })
        .unwrap();
        m.apply(&MetaCommand::CompleteReassign {
            topic: "t".into(),
            partition: 0,
        })
        .unwrap();
        let p = m.partition("t", 0).unwrap();
        assert_eq!(
            (p.replicas.clone(), p.isr.clone()),
            (vec![3, 4], vec![3, 4])
        );
        assert_eq!(
            (p.leader, p.leader_epoch, p.target.clone()),
            (Some(3), 1, None)
        );
        assert!(
            m.apply(&MetaCommand::BeginReassign {
                topic: "t".into(),
                partition: 0,
                replicas: vec![3, 3],
            })
            .is_err()
        );
    }

    #[test]
    fn no_in_sync_replica_alive_means_offline_unless_unclean() {
        let mut m = meta(&[1, 2]);
        m.apply(&MetaCommand::CreateTopic(topic("t", vec![vec![1, 2]])))
            .unwrap();
        m.apply(&MetaCommand::UpdateIsr {
            topic: "t".into(),
            partition: 0,
            leader: 1,
            leader_epoch: 0,
            isr: vec![1],
        })
        .unwrap();
        m.apply(&MetaCommand::SetBrokerAlive {
            id: 1,
            alive: false,
        })
        .unwrap();
        let p = m.partition("t", 0).unwrap();
        assert_eq!(
            p.leader, None,
            "2 is out of sync: it may lack acknowledged records"
        );
        assert_eq!(p.isr, vec![1], "the last in-sync replica is remembered");
        // It comes back: it leads again.
        m.apply(&MetaCommand::SetBrokerAlive { id: 1, alive: true })
            .unwrap();
        let p = m.partition("t", 0).unwrap();
        assert_eq!((p.leader, p.leader_epoch), (Some(1), 2));
        // With unclean election enabled, the out-of-sync replica takes over.
        m.apply(&MetaCommand::SetBrokerAlive {
            id: 1,
            alive: false,
        })
        .unwrap();
        let configs = [(
            "unclean.leader.election.enable".to_string(),
            "true".to_string(),
        )]
        .into();
        m.apply(&MetaCommand::AlterTopic {
            name: "t".into(),
            configs,
        })
        .unwrap();
        let p = m.partition("t", 0).unwrap();
        assert_eq!((p.leader, p.isr.clone()), (Some(2), vec![2]));
    }
}
