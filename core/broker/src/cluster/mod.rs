//! Cluster mode: the metadata quorum (openraft), the controller, and the broker's view of
//! partition leadership.
//!
//! - Metadata ([`ClusterMeta`]: brokers, topics, partition replicas, leaders, leader epochs,
//!   ISRs) is the state machine of a Raft log that every broker of `--peers` votes in. The Raft
//!   leader is the **controller**.
//! - Every broker sends a heartbeat to the controller every `heartbeat_interval_ms`. The
//!   controller registers new brokers and marks a broker dead when it has not heard from it for
//!   `session_timeout_ms` (and alive again when it hears from it); partition leaders are
//!   re-elected inside the state machine when that happens (see [`meta`]), so every broker
//!   learns the new leader and epoch from the same committed entry.
//! - Requests that change metadata (create/alter/delete topic, ISR changes, reassignment)
//!   go to the controller ([`ControllerRequest`]); the caller then waits until its own state
//!   machine has applied the entry, so a topic created through any broker exists there when
//!   the call answers.
//!
//! This module is transport-agnostic: the server crate carries Raft RPCs and controller calls
//! over HTTP ([`ClusterTransport`] and an openraft network factory).

pub mod meta;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::Cursor;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Raft, RaftNetworkFactory};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sluice_protocol::{ErrorBody, ErrorCode};
use tokio::sync::watch;

pub use meta::{BrokerMeta, ClusterMeta, MetaCommand, MetaResult, PartitionMeta, TopicMeta};

openraft::declare_raft_types!(
    /// The metadata Raft's types: commands are [`MetaCommand`]s, answers [`MetaResult`]s.
    pub TypeConfig:
        D = MetaCommand,
        R = MetaResult,
);

/// Raft node ids (the brokers' `--node-id`).
pub type NodeId = u64;

/// The metadata Raft.
pub type MetaRaft = Raft<TypeConfig>;

/// The applied metadata and the Raft index it reflects.
#[derive(Debug, Clone, Default)]
pub struct MetaView {
    /// The state.
    pub meta: ClusterMeta,
    /// Index of the last applied Raft entry (0 before any).
    pub applied_index: u64,
}

/// Cluster settings of one broker.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// This broker's id.
    pub node_id: u32,
    /// Every voter of the metadata quorum (this broker included): id → `host:port`.
    pub peers: BTreeMap<u32, String>,
    /// How often a broker tells the controller it is alive, in ms.
    pub heartbeat_interval_ms: u64,
    /// A broker not heard from for this long is dead: it loses its leaderships and leaves
    /// every ISR, in ms.
    pub session_timeout_ms: u64,
    /// Raft leader heartbeat interval, in ms.
    pub raft_heartbeat_ms: u64,
    /// Raft election timeout range, in ms: the metadata quorum elects a new controller this
    /// long after the old one stops answering.
    pub raft_election_timeout_ms: (u64, u64),
    /// A follower that has not caught up with the leader for this long leaves the ISR, in ms.
    pub replica_lag_time_max_ms: u64,
    /// Longest a controller request (create topic, ISR change, ...) may take, in ms.
    pub request_timeout_ms: u64,
    /// Join a running cluster (as a new voter) instead of forming one with `peers`.
    pub join: bool,
}

impl ClusterConfig {
    /// Defaults for a broker with these peers.
    pub fn new(node_id: u32, peers: BTreeMap<u32, String>) -> ClusterConfig {
        ClusterConfig {
            node_id,
            peers,
            heartbeat_interval_ms: 250,
            session_timeout_ms: 1_500,
            raft_heartbeat_ms: 100,
            raft_election_timeout_ms: (600, 1_200),
            replica_lag_time_max_ms: 30_000,
            request_timeout_ms: 10_000,
            join: false,
        }
    }

    /// This broker's own address.
    pub fn addr(&self) -> &str {
        &self.peers[&self.node_id]
    }
}

/// A request for the controller.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum ControllerRequest {
    /// "I am alive" from a broker.
    Heartbeat {
        /// Its id.
        id: u32,
        /// Its address.
        addr: String,
    },
    /// Create a topic: the controller places its replicas.
    CreateTopic(sluice_protocol::types::CreateTopic),
    /// Propose a ready-made command (delete, alter, ISR change, reassign, decommission).
    Command(MetaCommand),
    /// A new broker asks to join the metadata quorum: it is added as a learner, catches up,
    /// and becomes a voter.
    Join {
        /// Its id.
        id: u32,
        /// Its address.
        addr: String,
    },
    /// Drain a broker: mark it decommissioning and move each of its replicas to a broker
    /// that is alive, not draining and not a replica of that partition yet.
    Decommission {
        /// The broker.
        id: u32,
    },
    /// Create `__consumer_offsets` (replicated) if the cluster has none yet.
    EnsureOffsetsTopic {
        /// Its partition count (`--offsets-partitions`).
        partitions: u32,
    },
}

/// A consumer-group request a broker forwards to the group's coordinator (the leader of the
/// group's `__consumer_offsets` partition).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupCall {
    /// A member's heartbeat.
    Heartbeat(sluice_protocol::types::GroupHeartbeat),
    /// Commit offsets.
    Commit(sluice_protocol::types::CommitOffsets),
    /// Committed offsets.
    FetchOffsets {
        /// Group.
        group: String,
        /// Only these topics.
        topics: Option<Vec<String>>,
    },
    /// Describe a group.
    Describe {
        /// Group.
        group: String,
    },
    /// Delete a group's offsets.
    Delete {
        /// Group.
        group: String,
    },
    /// Reset a group's offsets.
    Reset {
        /// Group.
        group: String,
        /// Where to.
        req: sluice_protocol::types::ResetOffsets,
    },
    /// The groups the receiving broker coordinates.
    ListLocal,
}

/// The coordinator's answer to a [`GroupCall`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupReply {
    /// A member's assignment.
    Assignment(sluice_protocol::types::GroupAssignment),
    /// Done.
    Done,
    /// Committed offsets.
    Offsets(sluice_protocol::types::GroupOffsets),
    /// A group's description.
    Description(Box<sluice_protocol::types::GroupDescription>),
    /// Groups.
    List(sluice_protocol::types::GroupList),
}

/// The controller's answer: the Raft index at which the change was committed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ControllerReply {
    /// Wait until the local state machine applied this index to see the change.
    pub index: u64,
}

/// A boxed future, for the object-safe transport.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the cluster needs from the network, besides Raft RPCs.
pub trait ClusterTransport: Send + Sync + 'static {
    /// Sends `req` to the controller at `addr`.
    fn controller_call(
        &self,
        addr: &str,
        req: ControllerRequest,
    ) -> BoxFuture<'_, Result<ControllerReply, ErrorBody>>;

    /// A consumer-group request for the coordinator at `addr`.
    fn group_call(
        &self,
        addr: &str,
        call: GroupCall,
    ) -> BoxFuture<'_, Result<GroupReply, ErrorBody>>;

    /// The module bytes of plugin `name` from the broker at `addr`.
    fn fetch_plugin(&self, addr: &str, name: &str) -> BoxFuture<'_, Result<Vec<u8>, ErrorBody>>;

    /// A follower's fetch from the partition leader at `addr`.
    fn replica_fetch(
        &self,
        addr: &str,
        req: crate::replica::ReplicaFetch,
    ) -> BoxFuture<'_, Result<(crate::replica::ReplicaFetched, Vec<u8>), ErrorBody>>;

    /// Forwards a client's write to the partition leader at `addr`.
    fn forward_produce(
        &self,
        addr: &str,
        topic: &str,
        partition: u32,
        acks: sluice_protocol::types::Acks,
        batches: Vec<u8>,
    ) -> BoxFuture<'_, Result<sluice_protocol::types::ProduceResponse, ErrorBody>>;

    /// Forwards a client's fetch to the partition leader at `addr`.
    fn forward_fetch(
        &self,
        addr: &str,
        req: crate::replica::ForwardFetch,
    ) -> BoxFuture<'_, Result<(crate::replica::FetchedMeta, Vec<u8>), ErrorBody>>;

    /// Asks the partition leader at `addr` where `epoch` ends in its log.
    fn epoch_end(
        &self,
        addr: &str,
        topic: &str,
        partition: u32,
        epoch: i32,
    ) -> BoxFuture<'_, Result<crate::replica::EpochEnd, ErrorBody>>;
}

/// What the controller decides a topic looks like (validation of the name and settings
/// is the broker's, done before).
pub type TopicPlanner = dyn Fn(&sluice_protocol::types::CreateTopic, &ClusterMeta) -> Result<TopicMeta, ErrorBody>
    + Send
    + Sync;

/// One broker's handle on the cluster.
pub struct Cluster {
    config: ClusterConfig,
    raft: MetaRaft,
    view: watch::Receiver<Arc<MetaView>>,
    transport: Arc<dyn ClusterTransport>,
    /// Controller only: when each broker was last heard from.
    heard: Mutex<HashMap<u32, (Instant, String)>>,
    planner: Box<TopicPlanner>,
}

fn not_controller(msg: impl Into<String>) -> ErrorBody {
    ErrorBody::new(ErrorCode::NotController, msg)
}

impl Cluster {
    /// Opens the metadata store in `dir`, starts the Raft node and, on a fresh store,
    /// proposes the initial membership (every peer a voter; identical on every peer, so it is
    /// safe for all of them to do it).
    pub async fn start<N: RaftNetworkFactory<TypeConfig>>(
        config: ClusterConfig,
        dir: &Path,
        network: N,
        transport: Arc<dyn ClusterTransport>,
        planner: Box<TopicPlanner>,
    ) -> Result<Arc<Cluster>, ErrorBody> {
        let io = |what: &str, e: std::io::Error| {
            ErrorBody::new(ErrorCode::StorageError, format!("{what}: {e}"))
        };
        let log = store::LogStore::open(dir).map_err(|e| io("open the metadata log", e))?;
        let (sm, view) =
            store::StateMachine::open(dir).map_err(|e| io("open the metadata snapshot", e))?;
        let raft_config = openraft::Config {
            cluster_name: "sluice".into(),
            heartbeat_interval: config.raft_heartbeat_ms,
            election_timeout_min: config.raft_election_timeout_ms.0,
            election_timeout_max: config.raft_election_timeout_ms.1,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(1_000),
            max_in_snapshot_log_to_keep: 100,
            ..Default::default()
        };
        let raft_config = Arc::new(
            raft_config
                .validate()
                .map_err(|e| ErrorBody::new(ErrorCode::InvalidConfig, e.to_string()))?,
        );
        let raft = Raft::new(config.node_id as NodeId, raft_config, network, log, sm)
            .await
            .map_err(|e| ErrorBody::new(ErrorCode::Internal, format!("start raft: {e}")))?;
        let members: BTreeMap<NodeId, BasicNode> = config
            .peers
            .iter()
            .map(|(id, addr)| (*id as NodeId, BasicNode::new(addr)))
            .collect();
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| ErrorBody::new(ErrorCode::Internal, e.to_string()))?;
        if !initialized && config.join {
            // Joining: the running cluster adds this broker; its log arrives by replication.
            tracing::info!("joining the cluster through its peers");
        } else if !initialized {
            match raft.initialize(members).await {
                Ok(()) => tracing::info!("metadata quorum initialized"),
                Err(e) => tracing::debug!(error = %e, "initialize: another peer did it"),
            }
        }
        let cluster = Arc::new(Cluster {
            config,
            raft,
            view,
            transport,
            heard: Mutex::new(HashMap::new()),
            planner,
        });
        Ok(cluster)
    }

    /// Settings.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The transport to other brokers.
    pub fn transport(&self) -> &Arc<dyn ClusterTransport> {
        &self.transport
    }

    /// This broker's id.
    pub fn node_id(&self) -> u32 {
        self.config.node_id
    }

    /// The Raft node (for the transport to hand RPCs to).
    pub fn raft(&self) -> &MetaRaft {
        &self.raft
    }

    /// The latest applied metadata.
    pub fn view(&self) -> Arc<MetaView> {
        self.view.borrow().clone()
    }

    /// A receiver that changes whenever the metadata does.
    pub fn watch(&self) -> watch::Receiver<Arc<MetaView>> {
        self.view.clone()
    }

    /// The controller's id, if the quorum has one now.
    pub fn controller(&self) -> Option<u32> {
        self.raft
            .metrics()
            .borrow()
            .current_leader
            .map(|l| l as u32)
    }

    /// The controller's address, if any.
    pub fn controller_addr(&self) -> Option<String> {
        let id = self.controller()?;
        self.config
            .peers
            .get(&id)
            .cloned()
            .or_else(|| self.view().meta.brokers.get(&id).map(|b| b.addr.clone()))
    }

    /// Is this broker the controller?
    pub fn is_controller(&self) -> bool {
        self.controller() == Some(self.config.node_id)
    }

    /// Raft term and last applied/committed indexes, for status pages.
    pub fn raft_status(&self) -> (u64, Option<u64>, Option<u64>) {
        let m = self.raft.metrics().borrow().clone();
        (
            m.current_term,
            m.last_applied.map(|l| l.index),
            m.last_log_index,
        )
    }

    /// Waits until the local state machine has applied `index`.
    pub async fn wait_applied(&self, index: u64) -> Result<Arc<MetaView>, ErrorBody> {
        let mut rx = self.view.clone();
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        let r = tokio::time::timeout(timeout, rx.wait_for(|v| v.applied_index >= index)).await;
        match r {
            Ok(Ok(v)) => Ok(v.clone()),
            _ => Err(ErrorBody::new(
                ErrorCode::RequestTimedOut,
                format!("the metadata change at index {index} did not reach this broker in time"),
            )),
        }
    }

    /// Sends a request to the controller (locally when this broker is it) and waits until
    /// this broker applied the result.
    pub async fn submit(&self, req: ControllerRequest) -> Result<Arc<MetaView>, ErrorBody> {
        let deadline = Instant::now() + Duration::from_millis(self.config.request_timeout_ms);
        let mut last = not_controller("the metadata quorum has no controller right now");
        // A controller change mid-call is retried against the new one until the deadline.
        loop {
            let attempt = match self.controller() {
                Some(id) if id == self.config.node_id => self.handle(req.clone()).await,
                Some(_) => match self.controller_addr() {
                    Some(addr) => self.transport.controller_call(&addr, req.clone()).await,
                    None => Err(not_controller("the controller's address is unknown")),
                },
                None => Err(last.clone()),
            };
            match attempt {
                Ok(reply) => return self.wait_applied(reply.index).await,
                Err(e) if e.code == ErrorCode::NotController && Instant::now() < deadline => {
                    last = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    // Wake early when the quorum elects someone.
                    let mut m = self.raft.metrics();
                    let _ = tokio::time::timeout(Duration::from_millis(200), m.changed()).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Handles a controller request on this broker (which must be the controller).
    pub async fn handle(&self, req: ControllerRequest) -> Result<ControllerReply, ErrorBody> {
        if !self.is_controller() {
            return Err(not_controller(format!(
                "broker {} is not the controller (the controller is {:?})",
                self.config.node_id,
                self.controller()
            )));
        }
        let cmd = match req {
            ControllerRequest::Heartbeat { id, addr } => {
                self.heard.lock().insert(id, (Instant::now(), addr));
                return Ok(ControllerReply {
                    index: self.view().applied_index,
                });
            }
            ControllerRequest::CreateTopic(create) => {
                let view = self.view();
                if view.meta.topics.contains_key(&create.name) {
                    return Err(ErrorBody::new(
                        ErrorCode::TopicExists,
                        format!("topic `{}` exists already", create.name),
                    ));
                }
                MetaCommand::CreateTopic((self.planner)(&create, &view.meta)?)
            }
            ControllerRequest::Command(cmd) => cmd,
            ControllerRequest::Join { id, addr } => {
                let node = BasicNode::new(&addr);
                let voters: std::collections::BTreeSet<NodeId> = self
                    .raft
                    .metrics()
                    .borrow()
                    .membership_config
                    .voter_ids()
                    .collect();
                if voters.contains(&(id as NodeId)) {
                    return Ok(ControllerReply {
                        index: self.view().applied_index,
                    });
                }
                let fail = |e: String| not_controller(format!("adding broker {id}: {e}"));
                // Blocking: answers once the learner has caught up with the log.
                self.raft
                    .add_learner(id as NodeId, node, true)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                let resp = self
                    .raft
                    .change_membership(
                        openraft::ChangeMembers::AddVoterIds([id as NodeId].into()),
                        false,
                    )
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                tracing::info!(broker = id, %addr, "broker joined the metadata quorum");
                self.heard.lock().insert(id, (Instant::now(), addr));
                return Ok(ControllerReply {
                    index: resp.log_id.index,
                });
            }
            ControllerRequest::Decommission { id } => {
                let view = self.view();
                if !view.meta.brokers.contains_key(&id) {
                    return Err(ErrorBody::new(
                        ErrorCode::BadRequest,
                        format!("broker {id} is not registered"),
                    ));
                }
                // Plan every move first: refuse the whole drain if one replica has nowhere to go.
                let mut load: BTreeMap<u32, usize> = view
                    .meta
                    .placeable_brokers()
                    .into_iter()
                    .filter(|b| *b != id)
                    .map(|b| (b, 0))
                    .collect();
                for t in view.meta.topics.values() {
                    for p in &t.partitions {
                        for r in &p.replicas {
                            if let Some(n) = load.get_mut(r) {
                                *n += 1;
                            }
                        }
                    }
                }
                let mut moves = Vec::new();
                for t in view.meta.topics.values() {
                    for (i, p) in t.partitions.iter().enumerate() {
                        let current = p.target.clone().unwrap_or_else(|| p.replicas.clone());
                        if !current.contains(&id) {
                            continue;
                        }
                        let to = load
                            .iter()
                            .filter(|(b, _)| !current.contains(b))
                            .min_by_key(|(b, n)| (**n, **b))
                            .map(|(b, _)| *b)
                            .ok_or_else(|| {
                                ErrorBody::new(
                                    ErrorCode::InvalidReplicationFactor,
                                    format!(
                                        "{}/{i} has nowhere to move its replica on broker {id}: every other live broker already holds it; add a broker first",
                                        t.name
                                    ),
                                )
                            })?;
                        *load.get_mut(&to).expect("chosen from it") += 1;
                        let replicas = current
                            .iter()
                            .map(|r| if *r == id { to } else { *r })
                            .collect();
                        moves.push(MetaCommand::BeginReassign {
                            topic: t.name.clone(),
                            partition: i as u32,
                            replicas,
                        });
                    }
                }
                let mut last = self
                    .propose(MetaCommand::SetDecommissioning {
                        id,
                        decommissioning: true,
                    })
                    .await?;
                for m in moves {
                    last = self.propose(m).await?;
                }
                return Ok(last);
            }
            ControllerRequest::EnsureOffsetsTopic { partitions } => {
                let view = self.view();
                if view.meta.topics.contains_key(crate::group::OFFSETS_TOPIC) {
                    return Ok(ControllerReply {
                        index: view.applied_index,
                    });
                }
                let brokers = view.meta.placeable_brokers();
                let rf = default_replication_factor(brokers.len());
                let replicas = meta::assign_replicas(&brokers, partitions.max(1), rf, 0)?;
                MetaCommand::CreateTopic(TopicMeta {
                    name: crate::group::OFFSETS_TOPIC.to_string(),
                    replication_factor: rf,
                    configs: crate::group::offsets_topic_configs(),
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
            }
        };
        self.propose(cmd).await
    }

    /// Appends a command to the metadata log (this broker must be the controller).
    pub async fn propose(&self, cmd: MetaCommand) -> Result<ControllerReply, ErrorBody> {
        match self.raft.client_write(cmd).await {
            Ok(resp) => {
                resp.data?;
                Ok(ControllerReply {
                    index: resp.log_id.index,
                })
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(not_controller(format!(
                    "broker {} is no longer the controller (now {:?})",
                    self.config.node_id, f.leader_id
                )))
            }
            Err(e) => Err(not_controller(format!("metadata write failed: {e}"))),
        }
    }

    /// Runs the broker's side of the cluster until `stop` turns true: heartbeats to the
    /// controller, and, while this broker is the controller, the liveness checks.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let every = Duration::from_millis(self.config.heartbeat_interval_ms);
        let session = Duration::from_millis(self.config.session_timeout_ms);
        if self.config.join {
            self.join_cluster(&mut stop).await;
        }
        let mut was_controller = false;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                return;
            }
            let hb = ControllerRequest::Heartbeat {
                id: self.config.node_id,
                addr: self.config.addr().to_string(),
            };
            let is_controller = self.is_controller();
            if is_controller {
                if !was_controller {
                    // A new controller gives every broker a grace of four heartbeat intervals
                    // (capped by the session timeout) to find it, counted as if each had
                    // last been heard just before: live brokers send their next heartbeat
                    // here within one interval, and a broker that died with the old
                    // controller is declared dead without waiting a whole extra session.
                    let grace = (every * 4).min(session);
                    let seen = Instant::now()
                        .checked_sub(session.saturating_sub(grace))
                        .unwrap_or_else(Instant::now);
                    let mut heard = self.heard.lock();
                    heard.clear();
                    for b in self.view().meta.brokers.values() {
                        heard.insert(b.id, (seen, b.addr.clone()));
                    }
                    tracing::info!(node = self.config.node_id, "this broker is the controller");
                }
                let _ = self.handle(hb).await;
                self.check_liveness(session).await;
                self.complete_reassignments().await;
            } else if let Some(addr) = self.controller_addr() {
                let t = self.transport.controller_call(&addr, hb);
                if let Err(e) = tokio::time::timeout(session, t).await.unwrap_or_else(|_| {
                    Err(not_controller("the controller did not answer a heartbeat"))
                }) {
                    tracing::debug!(error = %e.message, "heartbeat to the controller failed");
                }
            }
            was_controller = is_controller;
        }
    }

    /// Asks the peers (each in turn, until one answers) to add this broker to the quorum.
    async fn join_cluster(&self, stop: &mut watch::Receiver<bool>) {
        let me = self.config.node_id;
        let req = ControllerRequest::Join {
            id: me,
            addr: self.config.addr().to_string(),
        };
        let mut backoff = Duration::from_millis(100);
        loop {
            let voter = self
                .raft
                .metrics()
                .borrow()
                .membership_config
                .voter_ids()
                .any(|v| v == me as NodeId);
            if voter || *stop.borrow() {
                return;
            }
            // The controller if known, else every peer (a non-controller answers with
            // not_controller; the peers' own forwarding is not used for joins).
            let targets: Vec<String> = match self.controller_addr() {
                Some(a) => vec![a],
                None => self
                    .config
                    .peers
                    .iter()
                    .filter(|(id, _)| **id != me)
                    .map(|(_, a)| a.clone())
                    .collect(),
            };
            for addr in targets {
                match self.transport.controller_call(&addr, req.clone()).await {
                    Ok(_) => {
                        tracing::info!(%addr, "joined the cluster");
                        return;
                    }
                    Err(e) => tracing::debug!(%addr, error = %e.message, "join refused"),
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    async fn check_liveness(&self, session: Duration) {
        let view = self.view();
        let now = Instant::now();
        let heard: Vec<(u32, Instant, String)> = self
            .heard
            .lock()
            .iter()
            .map(|(id, (t, a))| (*id, *t, a.clone()))
            .collect();
        let mut cmds = Vec::new();
        for (id, at, addr) in &heard {
            let fresh = now.duration_since(*at) < session;
            match view.meta.brokers.get(id) {
                None if fresh => cmds.push(MetaCommand::RegisterBroker {
                    id: *id,
                    addr: addr.clone(),
                }),
                Some(b) if fresh && b.addr != *addr => cmds.push(MetaCommand::RegisterBroker {
                    id: *id,
                    addr: addr.clone(),
                }),
                _ => {}
            }
        }
        for (id, at, _) in &heard {
            let fresh = now.duration_since(*at) < session;
            let alive = view.meta.brokers.get(id).is_some_and(|b| b.alive);
            let registered = view.meta.brokers.contains_key(id)
                || cmds
                    .iter()
                    .any(|c| matches!(c, MetaCommand::RegisterBroker { id: i, .. } if i == id));
            if registered && fresh != alive {
                if !fresh {
                    tracing::warn!(
                        broker = id,
                        "broker missed its session timeout: marking it dead"
                    );
                } else {
                    tracing::info!(broker = id, "broker is alive");
                }
                cmds.push(MetaCommand::SetBrokerAlive {
                    id: *id,
                    alive: fresh,
                });
            }
        }
        // Registered brokers never heard since this controller took over are handled above
        // (seeded at takeover); brokers in the metadata but missing from `heard` are dead.
        for b in view.meta.brokers.values() {
            if b.alive && !heard.iter().any(|(id, ..)| *id == b.id) {
                cmds.push(MetaCommand::SetBrokerAlive {
                    id: b.id,
                    alive: false,
                });
            }
        }
        for cmd in cmds {
            if let Err(e) = self.propose(cmd).await {
                tracing::debug!(error = %e.message, "liveness change not written");
                return;
            }
        }
    }

    /// Controller duty: finishes every reassignment whose new replicas are all in sync.
    async fn complete_reassignments(&self) {
        let view = self.view();
        for t in view.meta.topics.values() {
            for (i, p) in t.partitions.iter().enumerate() {
                if let Some(target) = &p.target
                    && target.iter().all(|r| p.isr.contains(r))
                {
                    let cmd = MetaCommand::CompleteReassign {
                        topic: t.name.clone(),
                        partition: i as u32,
                    };
                    match self.propose(cmd).await {
                        Ok(_) => {
                            tracing::info!(topic = %t.name, partition = i, replicas = ?target, "reassignment complete")
                        }
                        Err(e) => {
                            tracing::debug!(error = %e.message, "reassignment not completed");
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Stops the Raft node.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}

/// The replication factor a topic gets when the request leaves it to the broker (0): 3 where
/// three or more brokers are alive, else all of them (at least 1).
pub fn default_replication_factor(live_brokers: usize) -> u16 {
    live_brokers.clamp(1, 3) as u16
}
