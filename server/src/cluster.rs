//! The cluster transport: metadata Raft RPCs and controller calls between brokers, over HTTP
//! on the brokers' one port (`/internal/v1/...`), JSON bodies.
//!
//! HTTP because every broker already serves it (no second port to open or secure) and
//! reqwest keeps connections alive between calls; the metadata traffic is small.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use openraft::BasicNode;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sluice_broker::cluster::{
    BoxFuture, ClusterTransport, ControllerReply, ControllerRequest, GroupCall, GroupReply, NodeId,
    TypeConfig,
};
use sluice_broker::replica::{EpochEnd, FetchedMeta, ForwardFetch, ReplicaFetch, ReplicaFetched};
use sluice_protocol::types::{Acks, ProduceResponse};
use sluice_protocol::{ErrorBody, ErrorCode};

use crate::serve::AppState;

/// Internal routes (only meaningful in cluster mode; a single broker answers
/// `not_controller`).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/internal/v1/raft/append", post(raft_append))
        .route("/internal/v1/raft/vote", post(raft_vote))
        .route("/internal/v1/raft/snapshot", post(raft_snapshot))
        .route("/internal/v1/controller", post(controller))
        .route("/internal/v1/replica/fetch", post(replica_fetch))
        .route("/internal/v1/replica/epoch", post(replica_epoch))
        .route("/internal/v1/forward/produce", post(forward_produce))
        .route("/internal/v1/forward/fetch", post(forward_fetch))
        .route("/internal/v1/group", post(group_call))
        .route(
            "/internal/v1/plugins/{name}/module",
            axum::routing::get(plugin_module),
        )
}

fn cluster_of(state: &AppState) -> Result<&Arc<sluice_broker::cluster::Cluster>, ErrorBody> {
    state.broker.cluster().ok_or_else(|| {
        ErrorBody::new(
            ErrorCode::NotController,
            "this broker runs alone (no --peers); it has no cluster",
        )
    })
}

async fn raft_append(
    State(state): State<Arc<AppState>>,
    Json(req): Json<AppendEntriesRequest<TypeConfig>>,
) -> Json<Result<Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>, ErrorBody>> {
    Json(match cluster_of(&state) {
        Ok(c) => Ok(c.raft().append_entries(req).await),
        Err(e) => Err(e),
    })
}

async fn raft_vote(
    State(state): State<Arc<AppState>>,
    Json(req): Json<VoteRequest<NodeId>>,
) -> Json<Result<Result<VoteResponse<NodeId>, RaftError<NodeId>>, ErrorBody>> {
    Json(match cluster_of(&state) {
        Ok(c) => Ok(c.raft().vote(req).await),
        Err(e) => Err(e),
    })
}

#[allow(clippy::type_complexity)]
async fn raft_snapshot(
    State(state): State<Arc<AppState>>,
    Json(req): Json<InstallSnapshotRequest<TypeConfig>>,
) -> Json<
    Result<
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
        ErrorBody,
    >,
> {
    Json(match cluster_of(&state) {
        Ok(c) => Ok(c.raft().install_snapshot(req).await),
        Err(e) => Err(e),
    })
}

async fn controller(
    State(state): State<Arc<AppState>>,
    Json(req): Json<ControllerRequest>,
) -> Json<Result<ControllerReply, ErrorBody>> {
    Json(match cluster_of(&state) {
        Ok(c) => c.handle(req).await,
        Err(e) => Err(e),
    })
}

/// The leader's answer header on a replica fetch: [`ReplicaFetched`] as JSON (the body is
/// the batches).
const FETCHED_HEADER: &str = "x-sluice-replica";

async fn replica_fetch(
    State(state): State<Arc<AppState>>,
    Json(req): Json<ReplicaFetch>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match state.broker.replica_fetch(req).await {
        Ok((meta, bytes)) => {
            let header = serde_json::to_string(&meta).expect("serializes");
            ([(FETCHED_HEADER, header)], bytes).into_response()
        }
        Err(e) => (
            axum::http::StatusCode::from_u16(e.code.http_status())
                .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
            Json(e),
        )
            .into_response(),
    }
}

fn error_response(e: ErrorBody) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::from_u16(e.code.http_status())
            .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
        Json(e),
    )
        .into_response()
}

#[derive(serde::Deserialize, Serialize)]
struct ForwardProduceQuery {
    topic: String,
    partition: u32,
    acks: Acks,
}

/// A write another broker forwards for a client: served only if this broker leads the
/// partition (never forwarded again).
async fn forward_produce(
    State(state): State<Arc<AppState>>,
    axum::extract::Query(q): axum::extract::Query<ForwardProduceQuery>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let topic = match state.broker.topic(&q.topic) {
        Ok(t) => t,
        Err(e) => return error_response(e),
    };
    match state
        .broker
        .produce_to_partition(&topic, q.partition, body.to_vec(), q.acks, false)
        .await
    {
        Ok(r) => Json(r).into_response(),
        Err(e) => error_response(e),
    }
}

async fn forward_fetch(
    State(state): State<Arc<AppState>>,
    Json(req): Json<ForwardFetch>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match state.broker.fetch_forwarded(req).await {
        Ok(f) => {
            let meta = FetchedMeta::from(f.info);
            let header = serde_json::to_string(&meta).expect("serializes");
            ([(FETCHED_HEADER, header)], f.batches).into_response()
        }
        Err(e) => error_response(e),
    }
}

async fn plugin_module(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match state.broker.plugin_module(&name) {
        Some(bytes) => bytes.into_response(),
        None => error_response(ErrorBody::new(
            ErrorCode::UnknownPlugin,
            format!("this broker has no plugin `{name}`"),
        )),
    }
}

async fn group_call(
    State(state): State<Arc<AppState>>,
    Json(call): Json<GroupCall>,
) -> Json<Result<GroupReply, ErrorBody>> {
    Json(state.broker.serve_group_call(call).await)
}

#[derive(serde::Deserialize, Serialize)]
struct EpochQuery {
    topic: String,
    partition: u32,
    epoch: i32,
}

async fn replica_epoch(
    State(state): State<Arc<AppState>>,
    Json(q): Json<EpochQuery>,
) -> Json<Result<EpochEnd, ErrorBody>> {
    Json(state.broker.epoch_end(&q.topic, q.partition, q.epoch))
}

/// HTTP client for Raft RPCs and controller calls.
#[derive(Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
}

impl HttpTransport {
    /// A client with short connect timeouts: a dead peer must not stall elections.
    pub fn new(request_timeout: Duration) -> HttpTransport {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(500))
            .timeout(request_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("reqwest client builds");
        HttpTransport { client }
    }

    async fn post<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        body: &Req,
        timeout: Option<Duration>,
    ) -> Result<Resp, reqwest::Error> {
        let mut req = self
            .client
            .post(format!("http://{addr}/internal/v1/{path}"))
            .json(body);
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        req.send().await?.error_for_status()?.json().await
    }
}

impl ClusterTransport for HttpTransport {
    fn controller_call(
        &self,
        addr: &str,
        req: ControllerRequest,
    ) -> BoxFuture<'_, Result<ControllerReply, ErrorBody>> {
        let addr = addr.to_string();
        Box::pin(async move {
            match self
                .post::<_, Result<ControllerReply, ErrorBody>>(&addr, "controller", &req, None)
                .await
            {
                Ok(r) => r,
                Err(e) if e.is_connect() || e.is_timeout() => Err(ErrorBody::new(
                    ErrorCode::NotController,
                    format!("cannot reach the controller at {addr}: {e}"),
                )),
                Err(e) => Err(ErrorBody::new(
                    ErrorCode::Internal,
                    format!("the controller at {addr} refused the call: {e}"),
                )),
            }
        })
    }

    fn replica_fetch(
        &self,
        addr: &str,
        req: ReplicaFetch,
    ) -> BoxFuture<'_, Result<(ReplicaFetched, Vec<u8>), ErrorBody>> {
        let addr = addr.to_string();
        Box::pin(async move {
            self.fetch_from(&addr, "replica/fetch", &req, req.wait_ms)
                .await
        })
    }

    fn fetch_plugin(&self, addr: &str, name: &str) -> BoxFuture<'_, Result<Vec<u8>, ErrorBody>> {
        let addr = addr.to_string();
        let name = name.to_string();
        Box::pin(async move {
            let resp = self
                .client
                .get(format!("http://{addr}/internal/v1/plugins/{name}/module"))
                .send()
                .await
                .map_err(|e| unreachable(&addr, e))?;
            if !resp.status().is_success() {
                return Err(resp.json::<ErrorBody>().await.unwrap_or_else(|e| {
                    ErrorBody::new(ErrorCode::Internal, format!("bad answer from {addr}: {e}"))
                }));
            }
            Ok(resp
                .bytes()
                .await
                .map_err(|e| unreachable(&addr, e))?
                .to_vec())
        })
    }

    fn group_call(
        &self,
        addr: &str,
        call: GroupCall,
    ) -> BoxFuture<'_, Result<GroupReply, ErrorBody>> {
        let addr = addr.to_string();
        Box::pin(async move {
            self.post::<_, Result<GroupReply, ErrorBody>>(&addr, "group", &call, None)
                .await
                .map_err(|e| {
                    ErrorBody::new(
                        ErrorCode::LeaderNotAvailable,
                        format!("cannot reach the group coordinator at {addr}: {e}; retry"),
                    )
                })?
        })
    }

    fn forward_produce(
        &self,
        addr: &str,
        topic: &str,
        partition: u32,
        acks: Acks,
        batches: Vec<u8>,
    ) -> BoxFuture<'_, Result<ProduceResponse, ErrorBody>> {
        let addr = addr.to_string();
        let q = ForwardProduceQuery {
            topic: topic.to_string(),
            partition,
            acks,
        };
        Box::pin(async move {
            let resp = self
                .client
                .post(format!("http://{addr}/internal/v1/forward/produce"))
                .query(&q)
                .body(batches)
                .send()
                .await
                .map_err(|e| unreachable(&addr, e))?;
            let ok = resp.status().is_success();
            let bytes = resp.bytes().await.map_err(|e| unreachable(&addr, e))?;
            let bad = |e: serde_json::Error| {
                ErrorBody::new(ErrorCode::Internal, format!("bad answer from {addr}: {e}"))
            };
            if ok {
                serde_json::from_slice(&bytes).map_err(bad)
            } else {
                Err(serde_json::from_slice(&bytes).map_err(bad)?)
            }
        })
    }

    fn forward_fetch(
        &self,
        addr: &str,
        req: ForwardFetch,
    ) -> BoxFuture<'_, Result<(FetchedMeta, Vec<u8>), ErrorBody>> {
        let addr = addr.to_string();
        Box::pin(async move {
            self.fetch_from(&addr, "forward/fetch", &req, req.max_wait_ms)
                .await
        })
    }

    fn epoch_end(
        &self,
        addr: &str,
        topic: &str,
        partition: u32,
        epoch: i32,
    ) -> BoxFuture<'_, Result<EpochEnd, ErrorBody>> {
        let addr = addr.to_string();
        let q = EpochQuery {
            topic: topic.to_string(),
            partition,
            epoch,
        };
        Box::pin(async move {
            self.post::<_, Result<EpochEnd, ErrorBody>>(&addr, "replica/epoch", &q, None)
                .await
                .map_err(|e| unreachable(&addr, e))?
        })
    }
}

fn unreachable(addr: &str, e: reqwest::Error) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::NotLeader,
        format!("cannot reach the partition leader at {addr}: {e}"),
    )
}

impl HttpTransport {
    /// POSTs `req` and returns the answer's JSON header and body bytes (or its error).
    async fn fetch_from<Req: Serialize, Meta: DeserializeOwned>(
        &self,
        addr: &str,
        path: &str,
        req: &Req,
        wait_ms: u64,
    ) -> Result<(Meta, Vec<u8>), ErrorBody> {
        let resp = self
            .client
            .post(format!("http://{addr}/internal/v1/{path}"))
            .timeout(Duration::from_millis(wait_ms + 5_000))
            .json(req)
            .send()
            .await
            .map_err(|e| unreachable(addr, e))?;
        if !resp.status().is_success() {
            return Err(resp.json::<ErrorBody>().await.unwrap_or_else(|e| {
                ErrorBody::new(ErrorCode::Internal, format!("bad answer from {addr}: {e}"))
            }));
        }
        let meta: Meta = resp
            .headers()
            .get(FETCHED_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| serde_json::from_str(v).ok())
            .ok_or_else(|| {
                ErrorBody::new(
                    ErrorCode::Internal,
                    format!("{addr} sent no {FETCHED_HEADER}"),
                )
            })?;
        let bytes = resp.bytes().await.map_err(|e| unreachable(addr, e))?;
        Ok((meta, bytes.to_vec()))
    }
}

impl RaftNetworkFactory<TypeConfig> for HttpTransport {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            transport: self.clone(),
            target,
            addr: node.addr.clone(),
        }
    }
}

/// Raft RPCs to one peer.
pub struct PeerClient {
    transport: HttpTransport,
    target: NodeId,
    addr: String,
}

impl PeerClient {
    async fn call<
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    >(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>> {
        /// Transport result, then "is this broker clustered", then Raft's own answer.
        type Answer<Resp, E> =
            Result<Result<Result<Resp, RaftError<NodeId, E>>, ErrorBody>, reqwest::Error>;
        let r: Answer<Resp, E> = self
            .transport
            .post(&self.addr, path, req, Some(option.hard_ttl()))
            .await;
        match r {
            Ok(Ok(Ok(resp))) => Ok(resp),
            Ok(Ok(Err(e))) => Err(RPCError::RemoteError(RemoteError::new(self.target, e))),
            Ok(Err(e)) => Err(RPCError::Unreachable(Unreachable::new(
                &std::io::Error::other(e.message),
            ))),
            Err(e) if e.is_connect() || e.is_timeout() => {
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Err(e) => Err(RPCError::Network(NetworkError::new(&e))),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call("raft/append", &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call("raft/snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call("raft/vote", &rpc, &option).await
    }
}

/// Parses `--peers 1@127.0.0.1:9401,2@127.0.0.1:9402,...`.
pub fn parse_peers(peers: &[String]) -> Result<std::collections::BTreeMap<u32, String>, String> {
    let mut out = std::collections::BTreeMap::new();
    for p in peers {
        let (id, addr) = p.split_once('@').ok_or_else(|| {
            format!("--peers entry `{p}` must be ID@HOST:PORT, e.g. 1@127.0.0.1:9401")
        })?;
        let id: u32 = id
            .trim()
            .parse()
            .map_err(|_| format!("--peers entry `{p}`: `{id}` is not a node id (a number)"))?;
        let addr = addr.trim();
        if addr
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse::<u16>().ok())
            .is_none()
        {
            return Err(format!("--peers entry `{p}`: `{addr}` must be HOST:PORT"));
        }
        if out.insert(id, addr.to_string()).is_some() {
            return Err(format!("--peers names node {id} twice"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_errors_say_what_is_wrong() {
        let p = parse_peers(&["1@127.0.0.1:9401".into(), "2@127.0.0.2:9402".into()]).unwrap();
        assert_eq!(p[&2], "127.0.0.2:9402");
        assert!(
            parse_peers(&["127.0.0.1:9401".into()])
                .unwrap_err()
                .contains("ID@HOST:PORT")
        );
        assert!(
            parse_peers(&["x@h:1".into()])
                .unwrap_err()
                .contains("not a node id")
        );
        assert!(
            parse_peers(&["1@h".into()])
                .unwrap_err()
                .contains("HOST:PORT")
        );
        assert!(
            parse_peers(&["1@h:1".into(), "1@h:2".into()])
                .unwrap_err()
                .contains("twice")
        );
    }
}
