//! Partition assignors: who in a group should own which partition (the *target* assignment).
//! The coordinator moves members toward it without ever giving one partition to two members.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// A partition of a topic.
pub type TopicPartition = (String, u32);

/// How a group's partitions are spread over its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Assignor {
    /// Per topic, contiguous ranges of partitions to members in member-id order.
    Range,
    /// All partitions dealt to members in turn.
    RoundRobin,
    /// Balanced (counts within one of each other) while moving as few partitions as possible
    /// from the previous assignment. The default.
    #[default]
    Sticky,
}

impl FromStr for Assignor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "range" => Ok(Assignor::Range),
            "roundrobin" => Ok(Assignor::RoundRobin),
            "sticky" | "uniform" => Ok(Assignor::Sticky),
            other => Err(format!(
                "unknown assignor `{other}`: use range, roundrobin or sticky"
            )),
        }
    }
}

impl fmt::Display for Assignor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::Sticky => "sticky",
        })
    }
}

/// What an assignor sees: each member's subscribed topics (already resolved to existing topics)
/// and each topic's partition count.
pub struct AssignmentInput<'a> {
    /// Member id → subscribed topics.
    pub members: &'a BTreeMap<String, BTreeSet<String>>,
    /// Topic → partition count.
    pub partitions: &'a BTreeMap<String, u32>,
    /// The previous target assignment (for `sticky`).
    pub previous: &'a BTreeMap<String, BTreeSet<TopicPartition>>,
}

impl Assignor {
    /// Computes a target assignment: every partition of a subscribed topic goes to exactly one
    /// member subscribed to that topic; members beyond the partition count get none.
    pub fn assign(self, input: &AssignmentInput<'_>) -> BTreeMap<String, BTreeSet<TopicPartition>> {
        let mut out: BTreeMap<String, BTreeSet<TopicPartition>> = input
            .members
            .keys()
            .map(|m| (m.clone(), BTreeSet::new()))
            .collect();
        let subscribers = |topic: &str| -> Vec<&String> {
            input
                .members
                .iter()
                .filter(|(_, t)| t.contains(topic))
                .map(|(m, _)| m)
                .collect()
        };
        match self {
            Assignor::Range => {
                for (topic, &n) in input.partitions {
                    let members = subscribers(topic);
                    if members.is_empty() {
                        continue;
                    }
                    let (each, extra) = (n as usize / members.len(), n as usize % members.len());
                    let mut p = 0u32;
                    for (i, m) in members.iter().enumerate() {
                        let take = each + usize::from(i < extra);
                        for _ in 0..take {
                            out.get_mut(*m).expect("member").insert((topic.clone(), p));
                            p += 1;
                        }
                    }
                }
            }
            Assignor::RoundRobin => {
                let mut turn = 0usize;
                for (topic, &n) in input.partitions {
                    let members = subscribers(topic);
                    if members.is_empty() {
                        continue;
                    }
                    for p in 0..n {
                        let m = members[turn % members.len()];
                        out.get_mut(m).expect("member").insert((topic.clone(), p));
                        turn += 1;
                    }
                }
            }
            Assignor::Sticky => sticky(input, &mut out),
        }
        out
    }
}

fn sticky(input: &AssignmentInput<'_>, out: &mut BTreeMap<String, BTreeSet<TopicPartition>>) {
    // Every partition to assign, and who may take it.
    let mut all: Vec<TopicPartition> = Vec::new();
    for (topic, &n) in input.partitions {
        if input.members.values().any(|t| t.contains(topic)) {
            all.extend((0..n).map(|p| (topic.clone(), p)));
        }
    }
    let eligible =
        |m: &str, tp: &TopicPartition| input.members.get(m).is_some_and(|t| t.contains(&tp.0));
    let members: Vec<&String> = input.members.keys().collect();
    if members.is_empty() {
        return;
    }
    // Balanced quotas: everyone gets floor(P/M); P%M members get one more. With mixed
    // subscriptions the quota is an aim, not a promise.
    let total = all.len();
    let floor = total / members.len();
    let ceil = floor + usize::from(!total.is_multiple_of(members.len()));
    let mut ceil_slots = total % members.len();

    // 1. Keep what members had, up to their quota.
    let mut taken: BTreeSet<TopicPartition> = BTreeSet::new();
    let mut kept: Vec<(&String, Vec<TopicPartition>)> = members
        .iter()
        .map(|m| {
            let prev: Vec<TopicPartition> = input
                .previous
                .get(*m)
                .into_iter()
                .flatten()
                .filter(|tp| {
                    input.partitions.get(&tp.0).is_some_and(|&n| tp.1 < n) && eligible(m, tp)
                })
                .cloned()
                .collect();
            (*m, prev)
        })
        .collect();
    // Members with the most previous partitions claim the larger quotas first, so fewer move.
    kept.sort_by_key(|(m, prev)| (std::cmp::Reverse(prev.len()), (*m).clone()));
    for (m, prev) in kept {
        let quota = if ceil_slots > 0 && prev.len() >= ceil {
            ceil_slots -= 1;
            ceil
        } else {
            floor
        };
        let set = out.get_mut(m).expect("member");
        let keep: Vec<TopicPartition> = prev
            .into_iter()
            .filter(|tp| !taken.contains(tp))
            .take(quota)
            .collect();
        for tp in keep {
            taken.insert(tp.clone());
            set.insert(tp);
        }
    }
    // 2. Give the rest to the least-loaded eligible member, never above ceil where avoidable.
    for tp in all.into_iter().filter(|tp| !taken.contains(tp)) {
        let best = members
            .iter()
            .filter(|m| eligible(m, &tp))
            .min_by_key(|m| (out[**m].len(), (**m).clone()));
        if let Some(m) = best {
            out.get_mut(*m).expect("member").insert(tp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: usize, topics: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
        (0..n)
            .map(|i| {
                (
                    format!("m{i:02}"),
                    topics.iter().map(|t| t.to_string()).collect(),
                )
            })
            .collect()
    }

    fn check_complete(
        a: &BTreeMap<String, BTreeSet<TopicPartition>>,
        parts: &BTreeMap<String, u32>,
    ) {
        let mut seen = BTreeSet::new();
        for set in a.values() {
            for tp in set {
                assert!(seen.insert(tp.clone()), "{tp:?} assigned twice");
            }
        }
        let total: u32 = parts.values().sum();
        assert_eq!(seen.len() as u32, total, "every partition assigned");
    }

    fn spread(a: &BTreeMap<String, BTreeSet<TopicPartition>>) -> usize {
        let counts: Vec<usize> = a.values().map(BTreeSet::len).collect();
        counts.iter().max().unwrap() - counts.iter().min().unwrap()
    }

    fn moves(
        before: &BTreeMap<String, BTreeSet<TopicPartition>>,
        after: &BTreeMap<String, BTreeSet<TopicPartition>>,
    ) -> usize {
        let owner =
            |a: &BTreeMap<String, BTreeSet<TopicPartition>>| -> BTreeMap<TopicPartition, String> {
                a.iter()
                    .flat_map(|(m, s)| s.iter().map(move |tp| (tp.clone(), m.clone())))
                    .collect()
            };
        let (b, a) = (owner(before), owner(after));
        a.iter()
            .filter(|(tp, m)| b.get(*tp).is_some_and(|o| o != *m))
            .count()
    }

    #[test]
    fn every_assignor_assigns_each_partition_once_and_balances() {
        let parts: BTreeMap<String, u32> = [("a".to_string(), 7), ("b".to_string(), 5)].into();
        for assignor in [Assignor::Range, Assignor::RoundRobin, Assignor::Sticky] {
            for n in 1..=14 {
                let m = members(n, &["a", "b"]);
                let empty = BTreeMap::new();
                let a = assignor.assign(&AssignmentInput {
                    members: &m,
                    partitions: &parts,
                    previous: &empty,
                });
                check_complete(&a, &parts);
                if assignor != Assignor::Range {
                    assert!(
                        spread(&a) <= 1,
                        "{assignor} with {n} members: spread {}",
                        spread(&a)
                    );
                }
            }
        }
    }

    #[test]
    fn sticky_moves_as_few_partitions_as_possible() {
        let parts: BTreeMap<String, u32> = [("t".to_string(), 12)].into();
        let mut previous = BTreeMap::new();
        let mut total_moves = 0;
        // 1 -> 4 -> 1 members over 12 partitions. The minimum moves per step: going up, the
        // partitions new members need; going down, the partitions of the member that left.
        for (n, minimum) in [
            (1usize, 0usize),
            (2, 6),
            (3, 4),
            (4, 3),
            (3, 3),
            (2, 4),
            (1, 6),
        ] {
            let m = members(n, &["t"]);
            let a = Assignor::Sticky.assign(&AssignmentInput {
                members: &m,
                partitions: &parts,
                previous: &previous,
            });
            check_complete(&a, &parts);
            assert!(spread(&a) <= 1);
            let mv = moves(&previous, &a);
            assert_eq!(mv, minimum, "moves going to {n} members");
            total_moves += mv;
            previous = a;
        }
        assert_eq!(total_moves, 26);
    }

    #[test]
    fn members_only_get_topics_they_subscribe_to() {
        let parts: BTreeMap<String, u32> = [("a".to_string(), 4), ("b".to_string(), 4)].into();
        let mut m = members(2, &["a"]);
        m.insert("m09".into(), ["b".to_string()].into());
        for assignor in [Assignor::Range, Assignor::RoundRobin, Assignor::Sticky] {
            let empty = BTreeMap::new();
            let a = assignor.assign(&AssignmentInput {
                members: &m,
                partitions: &parts,
                previous: &empty,
            });
            check_complete(&a, &parts);
            assert!(a["m09"].iter().all(|tp| tp.0 == "b"), "{assignor}");
            assert!(
                a["m00"].iter().chain(&a["m01"]).all(|tp| tp.0 == "a"),
                "{assignor}"
            );
        }
    }
}
