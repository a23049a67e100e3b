//! Consumer groups in a cluster: a group's coordinator is the leader of its
//! `__consumer_offsets` partition (murmur2 of the group id); other brokers forward the group's
//! requests there. Commits are replicated like any write (acks=all), and a broker that becomes
//! leader of an offsets partition loads its groups' committed offsets from the replicated log,
//! so a coordinator failover loses no committed offset; members rejoin the new coordinator
//! (their first heartbeat there answers `unknown_member`).

use std::collections::BTreeMap;

use sluice_protocol::types::GroupList;
use sluice_protocol::{ErrorBody, ErrorCode};

use super::Broker;
use crate::cluster::{ControllerRequest, GroupCall, GroupReply};
use crate::group::OFFSETS_TOPIC;

pub(crate) fn unexpected(reply: GroupReply) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::Internal,
        format!("the group coordinator gave an unexpected answer: {reply:?}"),
    )
}

impl Broker {
    /// `None` when this broker coordinates `group` (or runs alone); else the coordinator's
    /// address. Creates the replicated `__consumer_offsets` on first use in a cluster.
    pub(crate) async fn group_coordinator(&self, group: &str) -> Result<Option<String>, ErrorBody> {
        let Some(cluster) = self.cluster.get() else {
            return Ok(None);
        };
        let mut view = cluster.view();
        if !view.meta.topics.contains_key(OFFSETS_TOPIC) {
            let partitions = self.config.groups.offsets_partitions.max(1);
            view = cluster
                .submit(ControllerRequest::EnsureOffsetsTopic { partitions })
                .await?;
            self.reconcile(&view).await;
        }
        let p = self.groups.partition_of(group);
        let leader = view.meta.partition(OFFSETS_TOPIC, p).and_then(|p| p.leader);
        match leader {
            Some(l) if l == cluster.node_id() => Ok(None),
            Some(l) => view
                .meta
                .brokers
                .get(&l)
                .map(|b| Some(b.addr.clone()))
                .ok_or_else(|| {
                    ErrorBody::new(
                        ErrorCode::LeaderNotAvailable,
                        "the group coordinator is unknown",
                    )
                }),
            None => Err(ErrorBody::new(
                ErrorCode::LeaderNotAvailable,
                format!(
                    "group `{group}` has no coordinator right now ({OFFSETS_TOPIC} partition {p} has no leader); retry shortly"
                ),
            )),
        }
    }

    pub(crate) async fn group_call(
        &self,
        addr: &str,
        call: GroupCall,
    ) -> Result<GroupReply, ErrorBody> {
        let cluster = self
            .cluster
            .get()
            .expect("forwarding happens in cluster mode");
        cluster.transport().group_call(addr, call).await
    }

    /// Serves a group request another broker forwarded: only if this broker coordinates the
    /// group (never forwarded again).
    pub async fn serve_group_call(&self, call: GroupCall) -> Result<GroupReply, ErrorBody> {
        let group = match &call {
            GroupCall::Heartbeat(r) => Some(r.group.clone()),
            GroupCall::Commit(r) => Some(r.group.clone()),
            GroupCall::FetchOffsets { group, .. }
            | GroupCall::Describe { group }
            | GroupCall::Delete { group }
            | GroupCall::Reset { group, .. } => Some(group.clone()),
            GroupCall::ListLocal => None,
        };
        if let Some(g) = &group
            && self.group_coordinator(g).await?.is_some()
        {
            return Err(ErrorBody::new(
                ErrorCode::NotLeader,
                format!("this broker does not coordinate group `{g}` (any more); retry"),
            ));
        }
        // Local now: the public methods find no other coordinator and serve here.
        Ok(match call {
            GroupCall::Heartbeat(r) => GroupReply::Assignment(self.group_heartbeat(&r).await?),
            GroupCall::Commit(r) => {
                self.commit_offsets(r).await?;
                GroupReply::Done
            }
            GroupCall::FetchOffsets { group, topics } => {
                GroupReply::Offsets(self.fetch_offsets(&group, topics.as_deref()).await?)
            }
            GroupCall::Describe { group } => {
                GroupReply::Description(Box::new(self.describe_group(&group).await?))
            }
            GroupCall::Delete { group } => {
                self.delete_group(&group).await?;
                GroupReply::Done
            }
            GroupCall::Reset { group, req } => {
                GroupReply::Offsets(self.reset_offsets(&group, req).await?)
            }
            GroupCall::ListLocal => GroupReply::List(self.list_local_groups()),
        })
    }

    /// Every group of every live broker (each lists those it coordinates).
    pub(crate) async fn list_groups_everywhere(&self) -> GroupList {
        let mut all: BTreeMap<String, sluice_protocol::types::GroupSummary> = self
            .list_local_groups()
            .groups
            .into_iter()
            .map(|g| (g.group.clone(), g))
            .collect();
        if let Some(cluster) = self.cluster.get() {
            let view = cluster.view();
            for b in view.meta.brokers.values() {
                if !b.alive || b.id == cluster.node_id() {
                    continue;
                }
                match self.group_call(&b.addr, GroupCall::ListLocal).await {
                    Ok(GroupReply::List(l)) => {
                        for g in l.groups {
                            all.insert(g.group.clone(), g);
                        }
                    }
                    Ok(_) | Err(_) => {
                        tracing::debug!(broker = b.id, "could not list its groups");
                    }
                }
            }
        }
        GroupList {
            groups: all.into_values().collect(),
        }
    }

    /// Called as offsets partition `p`'s role changes here.
    pub(crate) fn offsets_leadership(&self, p: u32, leading: bool) {
        if leading {
            match self.groups.take_over_partition(p) {
                Ok(n) => tracing::info!(
                    partition = p,
                    groups = n,
                    "coordinating the groups of {OFFSETS_TOPIC} partition {p}"
                ),
                Err(e) => {
                    tracing::error!(partition = p, error = %e.message, "loading committed offsets")
                }
            }
        } else {
            self.groups.give_up_partition(p);
        }
    }
}
