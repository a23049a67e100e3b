//! The broker in cluster mode: topic changes go through the controller, and the topics on
//! this broker follow the applied metadata (see [`crate::cluster`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use sluice_protocol::types::{AlterTopic, CreateTopic, TopicDescription};
use sluice_protocol::{ErrorBody, ErrorCode, is_internal_topic};

use super::Broker;
use crate::cluster::{
    Cluster, ClusterMeta, ControllerRequest, MetaCommand, MetaView, PartitionMeta, TopicMeta,
    TopicPlanner, default_replication_factor, meta::assign_replicas,
};
use crate::topic::{TopicManifest, TopicSettings};

impl Broker {
    /// Puts this broker in cluster mode (once, at start-up, before it serves requests).
    pub fn attach_cluster(self: &Arc<Self>, cluster: Arc<Cluster>) {
        let _ = self.self_ref.set(Arc::downgrade(self));
        // Every partition waits for its role from the metadata; groups for their coordinator.
        for t in self.topics() {
            for p in t.partitions() {
                *p.role.lock() = crate::replica::Role::Offline;
            }
        }
        self.groups.forget_all();
        if self.cluster.set(cluster).is_err() {
            tracing::warn!("attach_cluster called twice; keeping the first cluster");
        }
    }

    /// The cluster this broker belongs to, in cluster mode.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.get()
    }

    /// What the controller runs to turn a creation request into a topic placement: the
    /// broker's own checks (name, partitions, settings, partitioner), then the replication
    /// factor (0 → [`default_replication_factor`]) and an even spread of replicas over the
    /// brokers that are alive and not draining.
    pub fn topic_planner(broker: Weak<Broker>) -> Box<TopicPlanner> {
        Box::new(move |req: &CreateTopic, meta: &ClusterMeta| {
            let broker = broker.upgrade().ok_or_else(|| {
                ErrorBody::new(ErrorCode::ShuttingDown, "the broker is shutting down")
            })?;
            let settings = broker.check_create(req, false)?;
            let brokers = meta.placeable_brokers();
            let rf = match req.replication_factor {
                0 => default_replication_factor(brokers.len()),
                n => n,
            };
            let start = meta.topics.len() + req.name.len();
            let replicas = assign_replicas(&brokers, req.partitions, rf, start)?;
            Ok(TopicMeta {
                name: req.name.clone(),
                replication_factor: rf,
                configs: settings.overrides,
                created_ms: sluice_storage::now_ms(),
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
            })
        })
    }

    fn cluster_only(&self, what: &str) -> Result<&Arc<Cluster>, ErrorBody> {
        self.cluster.get().ok_or_else(|| {
            ErrorBody::new(
                ErrorCode::BadRequest,
                format!("{what} needs a cluster; this broker runs alone (start brokers with --node-id and --peers)"),
            )
        })
    }

    /// Starts moving a partition to `replicas` (the first is the preferred leader): the new
    /// replicas copy the log as followers, and the controller drops the old ones once every
    /// new one is in sync. Answers once the move is recorded, not when it is done.
    pub async fn reassign_partition(
        &self,
        topic: &str,
        partition: u32,
        replicas: Vec<u32>,
    ) -> Result<(), ErrorBody> {
        let cluster = self.cluster_only("reassigning a partition")?;
        self.topic(topic)?.partition(partition)?;
        let cmd = MetaCommand::BeginReassign {
            topic: topic.to_string(),
            partition,
            replicas,
        };
        let view = cluster.submit(ControllerRequest::Command(cmd)).await?;
        self.reconcile(&view).await;
        Ok(())
    }

    /// Drains broker `id`: it takes no new replicas, and each of its replicas moves to another
    /// live broker. Answers once the moves are recorded.
    pub async fn decommission_broker(&self, id: u32) -> Result<(), ErrorBody> {
        let cluster = self.cluster_only("decommissioning a broker")?;
        let view = cluster
            .submit(ControllerRequest::Decommission { id })
            .await?;
        self.reconcile(&view).await;
        Ok(())
    }

    pub(super) async fn create_topic_clustered(
        &self,
        cluster: &Arc<Cluster>,
        req: CreateTopic,
    ) -> Result<TopicDescription, ErrorBody> {
        self.check_create(&req, false)?;
        let name = req.name.clone();
        let view = cluster.submit(ControllerRequest::CreateTopic(req)).await?;
        self.reconcile(&view).await;
        self.describe_topic(&name)
    }

    pub(super) async fn alter_topic_clustered(
        &self,
        cluster: &Arc<Cluster>,
        name: &str,
        change: AlterTopic,
    ) -> Result<TopicDescription, ErrorBody> {
        let topic = self.topic(name)?;
        if is_internal_topic(name) {
            return Err(ErrorBody::new(
                ErrorCode::InternalTopic,
                format!("`{name}` is internal and cannot be altered"),
            ));
        }
        if change
            .partitions
            .is_some_and(|p| p != topic.partition_count())
        {
            return Err(ErrorBody::new(
                ErrorCode::InvalidConfig,
                "adding partitions to a replicated topic is not supported yet; create a new topic with more partitions",
            ));
        }
        let mut overrides = topic.settings().overrides;
        for (k, v) in change.configs {
            match v {
                Some(v) => overrides.insert(k, v),
                None => overrides.remove(&k),
            };
        }
        let settings = TopicSettings::resolve(&self.config.log_defaults, overrides)?;
        self.check_partitioner(&settings)?;
        let cmd = MetaCommand::AlterTopic {
            name: name.to_string(),
            configs: settings.overrides,
        };
        let view = cluster.submit(ControllerRequest::Command(cmd)).await?;
        self.reconcile(&view).await;
        self.describe_topic(name)
    }

    pub(super) async fn delete_topic_clustered(
        &self,
        cluster: &Arc<Cluster>,
        name: &str,
    ) -> Result<(), ErrorBody> {
        let cmd = MetaCommand::DeleteTopic {
            name: name.to_string(),
        };
        let view = cluster.submit(ControllerRequest::Command(cmd)).await?;
        self.reconcile(&view).await;
        Ok(())
    }

    /// Makes this broker's topics match the metadata: creates the topics it lacks, applies
    /// changed settings, deletes topics the cluster deleted. Idempotent; serialized.
    pub async fn reconcile(&self, view: &MetaView) {
        let _one_at_a_time = self.reconcile_lock.lock().await;
        let meta = &view.meta;
        for t in meta.topics.values() {
            match self.topic(&t.name) {
                Err(_) => {
                    let manifest = TopicManifest {
                        version: 1,
                        name: t.name.clone(),
                        partitions: t.partitions.len() as u32,
                        replication_factor: t.replication_factor,
                        configs: t.configs.clone(),
                        created_ms: t.created_ms,
                    };
                    if let Err(e) = self.create_local_topic(manifest).await {
                        tracing::error!(topic = %t.name, error = %e.message, "cannot create a topic the cluster has");
                    }
                }
                Ok(local) => {
                    if local.settings().overrides != t.configs {
                        let mut change: BTreeMap<String, Option<String>> = local
                            .settings()
                            .overrides
                            .keys()
                            .map(|k| (k.clone(), None))
                            .collect();
                        for (k, v) in &t.configs {
                            change.insert(k.clone(), Some(v.clone()));
                        }
                        let alter = AlterTopic {
                            configs: change,
                            partitions: None,
                        };
                        if let Err(e) = self.alter_topic_local(&t.name, alter).await {
                            tracing::error!(topic = %t.name, error = %e.message, "cannot apply the cluster's topic settings");
                        }
                    }
                }
            }
        }
        let doomed: Vec<String> = self
            .topics
            .read()
            .keys()
            .filter(|n| !is_internal_topic(n) && !meta.topics.contains_key(*n))
            .cloned()
            .collect();
        for name in doomed {
            if let Err(e) = self.delete_topic_local(&name).await {
                tracing::error!(topic = %name, error = %e.message, "cannot delete a topic the cluster deleted");
            }
        }
        self.apply_roles(meta);
        self.sync_plugins(meta).await;
    }

    /// Copies plugins this broker lacks (or has another version of) from a broker that has
    /// them, checking the hash; deletes the ones the cluster deleted.
    async fn sync_plugins(&self, meta: &ClusterMeta) {
        let Some(cluster) = self.cluster.get() else {
            return;
        };
        for name in &meta.deleted_plugins {
            if self.plugins.describe(name).is_ok() {
                let _ = self.plugins.delete(name);
                tracing::info!(plugin = %name, "plugin deleted by the cluster");
            }
        }
        for (name, pm) in &meta.plugins {
            let have = self.plugins.describe(name).ok().map(|d| d.sha256);
            if have.as_deref() == Some(pm.sha256.as_str()) {
                continue;
            }
            // The holder first, then any other live broker.
            let mut sources: Vec<&crate::cluster::BrokerMeta> = meta
                .brokers
                .values()
                .filter(|b| b.alive && b.id != cluster.node_id())
                .collect();
            sources.sort_by_key(|b| b.id != pm.holder);
            let mut done = false;
            for b in sources {
                match cluster.transport().fetch_plugin(&b.addr, name).await {
                    Ok(bytes) => {
                        let sha = crate::plugins::sha256_hex(&bytes);
                        if sha != pm.sha256 {
                            continue; // that broker has another version
                        }
                        match self.plugins.upload(name, &bytes) {
                            Ok(_) => {
                                tracing::info!(plugin = %name, from = b.id, "plugin copied");
                                done = true;
                                break;
                            }
                            Err(e) => {
                                tracing::error!(plugin = %name, error = %e.message, "copied plugin does not load");
                            }
                        }
                    }
                    Err(e) => {
                        tracing::debug!(plugin = %name, from = b.id, error = %e.message, "plugin copy failed");
                    }
                }
            }
            if !done {
                tracing::warn!(plugin = %name, "no live broker could give this plugin yet; retrying at the next metadata change");
            }
        }
    }

    /// Follows the metadata until `stop` turns true: every applied change is reconciled.
    pub async fn follow_cluster(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let Some(cluster) = self.cluster.get().cloned() else {
            return;
        };
        let mut rx = cluster.watch();
        let mut isr_tick = tokio::time::interval(std::time::Duration::from_millis(250));
        isr_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut dirty = true;
        loop {
            if dirty {
                let view = rx.borrow_and_update().clone();
                self.reconcile(&view).await;
                dirty = false;
            }
            tokio::select! {
                r = rx.changed() => {
                    if r.is_err() { return }
                    dirty = true;
                }
                _ = isr_tick.tick() => self.maintain_isr().await,
                _ = stop.changed() => return,
            }
        }
    }
}
