//! The HTTP API under /v1, health and metrics endpoints, and the OpenAPI document.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sluice_protocol::types::*;
use sluice_protocol::{ErrorBody, ErrorCode};
use sluice_record::Batches;
use utoipa::OpenApi;

use crate::serve::AppState;

/// Media type of a body made of encoded record batches (Kafka RecordBatch v2, back to back).
pub const BATCHES_CONTENT_TYPE: &str = "application/vnd.sluice.batches";

/// An error answered as `{code, message}` with the code's HTTP status.
pub struct ApiError(pub ErrorBody);

impl From<ErrorBody> for ApiError {
    fn from(e: ErrorBody) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.0)).into_response()
    }
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(ErrorBody::new(ErrorCode::BadRequest, message))
}

type ApiResult<T> = Result<T, ApiError>;

/// Reads the body, turning a too-large body into `request_too_large`.
fn body(bytes: Result<Bytes, BytesRejection>, limit: usize) -> ApiResult<Bytes> {
    bytes.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError(ErrorBody::new(
                ErrorCode::RequestTooLarge,
                format!("the request body is larger than the broker accepts ({limit} bytes, --max-request-bytes); send fewer records per request"),
            ))
        } else {
            bad_request(format!("cannot read the request body: {e}"))
        }
    })
}

/// Most bytes of a request body that a handler left unread (a body over
/// `--max-request-bytes`, answered 413 after its first bytes) the server reads and discards.
const DRAIN_MAX_BYTES: u64 = 64 << 20;
/// Longest time the server spends reading and discarding such a body.
const DRAIN_MAX_MS: u64 = 10_000;

/// Gives every request with a body one that, when a handler drops it unread, reads and discards
/// the rest (up to [`DRAIN_MAX_BYTES`] and [`DRAIN_MAX_MS`]) while the answer goes out.
///
/// Without this, a body refused after its first bytes (413) leaves the connection with request
/// bytes still coming: the server answers and closes, the client's next write of its body meets
/// a reset, and the client reports that reset instead of the 413 (a race: it depends on how
/// much of the body the client had sent when the answer came). Requests without a body are
/// passed through untouched.
async fn drain_unread_bodies(req: Request, next: Next) -> Response {
    use axum::body::HttpBody;
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let req = req.map(|body| {
        axum::body::Body::from_stream(DrainOnDrop {
            inner: Some(body.into_data_stream()),
            finished: false,
        })
    });
    next.run(req).await
}

/// A request body's data; reading what is left of it when dropped before its end.
struct DrainOnDrop {
    inner: Option<axum::body::BodyDataStream>,
    /// The body ended (or failed): nothing to drain.
    finished: bool,
}

impl futures_util::Stream for DrainOnDrop {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else {
            return std::task::Poll::Ready(None);
        };
        let polled = std::pin::Pin::new(inner).poll_next(cx);
        if matches!(polled, std::task::Poll::Ready(None | Some(Err(_)))) {
            self.finished = true;
        }
        polled
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        let Some(mut rest) = self.inner.take() else {
            return;
        };
        if self.finished {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            use futures_util::StreamExt;
            let mut left = DRAIN_MAX_BYTES;
            let _ = tokio::time::timeout(std::time::Duration::from_millis(DRAIN_MAX_MS), async {
                while let Some(Ok(chunk)) = rest.next().await {
                    left = left.saturating_sub(chunk.len() as u64);
                    if left == 0 {
                        break;
                    }
                }
            })
            .await;
        });
    }
}

fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(bytes).map_err(|e| bad_request(format!("malformed JSON body: {e}")))
}

fn param<T: std::str::FromStr>(q: &HashMap<String, String>, name: &str) -> ApiResult<Option<T>>
where
    T::Err: std::fmt::Display,
{
    q.get(name)
        .map(|v| {
            v.parse::<T>()
                .map_err(|e| bad_request(format!("query parameter `{name}={v}`: {e}")))
        })
        .transpose()
}

fn partition_param(p: &str) -> ApiResult<u32> {
    p.parse()
        .map_err(|_| bad_request(format!("partition `{p}` is not a partition number")))
}

/// All routes.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.args.max_request_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/topics", get(list_topics).post(create_topic))
        .route(
            "/v1/topics/{topic}",
            get(describe_topic).patch(alter_topic).delete(delete_topic),
        )
        .route("/v1/topics/{topic}/records", axum::routing::post(produce))
        .route(
            "/v1/topics/{topic}/partitions/{partition}/records",
            get(fetch),
        )
        .route("/v1/topics/{topic}/offsets", get(offsets))
        .route("/v1/plugins", get(list_plugins))
        .route(
            "/v1/plugins/{name}",
            get(describe_plugin)
                .put(upload_plugin)
                .delete(delete_plugin),
        )
        .route("/v1/groups", get(list_groups))
        .route(
            "/v1/groups/{group}",
            get(describe_group).delete(delete_group),
        )
        .route(
            "/v1/groups/{group}/offsets",
            get(fetch_offsets).post(commit_offsets),
        )
        .route(
            "/v1/groups/{group}/reset-offsets",
            axum::routing::post(reset_offsets),
        )
        .route(
            "/v1/groups/{group}/heartbeat",
            axum::routing::post(group_heartbeat),
        )
        .route("/v1/cluster", get(cluster))
        .route("/v1/cluster/reassign", axum::routing::post(reassign))
        .route(
            "/v1/cluster/brokers/{id}/decommission",
            axum::routing::post(decommission),
        )
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/ws", get(crate::ws::upgrade))
        .merge(crate::cluster::routes())
        .merge(crate::consumers::routes())
        .merge(crate::console::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(drain_unread_bodies))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Records request latency per endpoint.
async fn observe(
    State(state): State<Arc<AppState>>,
    matched: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let endpoint = matched.map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let method = req.method().to_string();
    let start = Instant::now();
    // WebSocket upgrades hold their own connection slot for the socket's life.
    let _permit = if endpoint == "/v1/ws" {
        None
    } else {
        match state.connections.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                return ApiError(ErrorBody::new(
                    ErrorCode::TooManyConnections,
                    format!(
                        "the broker has its maximum of {} connections; retry later",
                        state.args.max_connections
                    ),
                ))
                .into_response();
            }
        }
    };
    let resp = next.run(req).await;
    if endpoint != "/v1/ws" {
        state
            .metrics
            .observe_request(&method, &endpoint, resp.status().as_u16(), start.elapsed());
    }
    resp
}

async fn not_found() -> ApiError {
    ApiError(ErrorBody::new(
        ErrorCode::NotFound,
        "no such endpoint; see GET /v1/openapi.json for the API",
    ))
}

async fn method_not_allowed() -> ApiError {
    ApiError(ErrorBody::new(
        ErrorCode::MethodNotAllowed,
        "this endpoint does not take that HTTP method; see GET /v1/openapi.json for the API",
    ))
}

#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "The process is up")))]
async fn healthz() -> &'static str {
    "ok\n"
}

#[utoipa::path(get, path = "/readyz", responses((status = 200, description = "Serving"), (status = 503, description = "Shutting down")))]
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.shutting_down.load(Ordering::Acquire) {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else {
        "ready\n".into_response()
    }
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format")))]
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let text = state.metrics.render(
        &state.broker,
        state.args.max_connections - state.connections.available_permits(),
    );
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[utoipa::path(get, path = "/v1/topics", responses((status = 200, body = TopicList)))]
async fn list_topics(State(state): State<Arc<AppState>>) -> Json<TopicList> {
    Json(state.broker.list_topics())
}

#[utoipa::path(post, path = "/v1/topics", request_body = CreateTopic,
    responses((status = 201, body = TopicDescription), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_topic(
    State(state): State<Arc<AppState>>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<TopicDescription>)> {
    let req: CreateTopic = json_body(&body(bytes, state.args.max_request_bytes)?)?;
    let desc = state.broker.create_topic(req).await?;
    Ok((StatusCode::CREATED, Json(desc)))
}

#[utoipa::path(get, path = "/v1/topics/{topic}", params(("topic" = String, Path)),
    responses((status = 200, body = TopicDescription), (status = 404, body = ErrorBody)))]
async fn describe_topic(
    State(state): State<Arc<AppState>>,
    Path(topic): Path<String>,
) -> ApiResult<Json<TopicDescription>> {
    Ok(Json(state.broker.describe_topic(&topic)?))
}

#[utoipa::path(patch, path = "/v1/topics/{topic}", params(("topic" = String, Path)), request_body = AlterTopic,
    responses((status = 200, body = TopicDescription), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn alter_topic(
    State(state): State<Arc<AppState>>,
    Path(topic): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<TopicDescription>> {
    let change: AlterTopic = json_body(&body(bytes, state.args.max_request_bytes)?)?;
    Ok(Json(state.broker.alter_topic(&topic, change).await?))
}

#[utoipa::path(delete, path = "/v1/topics/{topic}", params(("topic" = String, Path)),
    responses((status = 200, description = "{\"deleted\": name}"), (status = 404, body = ErrorBody)))]
async fn delete_topic(
    State(state): State<Arc<AppState>>,
    Path(topic): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    state.broker.delete_topic(&topic).await?;
    Ok(Json(serde_json::json!({ "deleted": topic })))
}

/// Records in concatenated batches (from their headers; for metrics).
pub fn count_records(batches: &[u8]) -> u64 {
    Batches::new(batches)
        .flatten()
        .map(|b| b.header().record_count.max(0) as u64)
        .sum()
}

#[utoipa::path(post, path = "/v1/topics/{topic}/records",
    params(("topic" = String, Path), ("acks" = Option<String>, Query, description = "0, 1 or all (default)"),
        ("partition" = Option<u32>, Query, description = "For a batches body: the partition (default: routed by key)")),
    request_body(content = ProduceRequest, description = "JSON records, or encoded record batches with content type application/vnd.sluice.batches"),
    responses((status = 200, body = ProduceResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn produce(
    State(state): State<Arc<AppState>>,
    Path(topic): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<ProduceResponse>> {
    let bytes = body(bytes, state.args.max_request_bytes)?;
    let acks: Acks = param(&q, "acks")?.unwrap_or_default();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let binary = content_type.starts_with(BATCHES_CONTENT_TYPE)
        || content_type.starts_with("application/octet-stream");
    let (resp, records, partition_of) = if binary {
        let partition: Option<u32> = param(&q, "partition")?;
        let records = count_records(&bytes);
        let resp = state
            .broker
            .produce_batches(&topic, partition, bytes.to_vec(), acks)
            .await?;
        (resp, records, None)
    } else {
        let req: ProduceRequest = json_body(&bytes)?;
        let n = req.records.len() as u64;
        let resp = state
            .broker
            .produce_records(&topic, req.records, acks)
            .await?;
        (resp, n, Some(()))
    };
    let _ = partition_of;
    state
        .metrics
        .produced(&topic, &resp, records, bytes.len() as u64);
    Ok(Json(resp))
}

/// Decodes stored batches into JSON records at or after `from`.
pub fn decode_records(batches: &[u8], from: u64) -> Result<Vec<ConsumedRecord>, ErrorBody> {
    let bad = |e: sluice_record::RecordError| {
        ErrorBody::new(
            ErrorCode::StorageError,
            format!("stored batch does not decode: {e}"),
        )
    };
    let mut out = Vec::new();
    for b in Batches::new(batches) {
        let b = b.map_err(bad)?;
        let h = *b.header();
        if h.is_control() {
            continue;
        }
        for r in b.records().map_err(bad)? {
            let r = r.map_err(bad)?;
            let offset = r.offset(h.base_offset) as u64;
            if offset < from {
                continue;
            }
            let timestamp = if h.is_log_append_time() {
                h.max_timestamp
            } else {
                r.timestamp(h.base_timestamp)
            };
            let headers = r
                .headers()
                .map(|h| {
                    h.map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), v.map(Into::into)))
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad)?;
            out.push(ConsumedRecord {
                offset,
                timestamp,
                key: r.key.map(Into::into),
                value: r.value.map(Into::into),
                headers: Headers(headers),
            });
        }
    }
    Ok(out)
}

/// A fetch whose long-poll ends at once, with what there is, when the broker starts shutting
/// down (so a waiting client gets an answer and shutdown does not wait out `wait_ms`).
pub async fn fetch_until_stopping(
    state: &AppState,
    topic: &str,
    partition: u32,
    offset: u64,
    max_bytes: u64,
    wait_ms: u64,
) -> Result<sluice_broker::Fetched, ErrorBody> {
    let mut stopping = state.stopping.clone();
    tokio::select! {
        r = state.broker.fetch(topic, partition, offset, max_bytes, wait_ms) => r,
        Ok(()) = async { stopping.wait_for(|s| *s).await.map(|_| ()) } => {
            state.broker.fetch(topic, partition, offset, max_bytes, 0).await
        }
    }
}

#[utoipa::path(get, path = "/v1/topics/{topic}/partitions/{partition}/records",
    params(("topic" = String, Path), ("partition" = u32, Path),
        ("offset" = Option<u64>, Query, description = "First offset wanted (default: the earliest)"),
        ("max_bytes" = Option<u64>, Query, description = "Byte budget (default 1 MiB; at least one batch is returned)"),
        ("wait_ms" = Option<u64>, Query, description = "Long-poll up to this long when there is nothing yet (default 0)"),
        ("filter" = Option<String>, Query, description = "A filter plugin run on the records first; its params as `filter.KEY=VALUE`"),
        ("map" = Option<String>, Query, description = "A map plugin that rewrites the records (after the filter); its params as `map.KEY=VALUE`")),
    responses((status = 200, body = FetchResponse), (status = 404, body = ErrorBody), (status = 416, body = ErrorBody)))]
async fn fetch(
    State(state): State<Arc<AppState>>,
    Path((topic, partition)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let partition = partition_param(&partition)?;
    let part = state.broker.topic(&topic)?.partition(partition)?;
    let offset: u64 = param(&q, "offset")?.unwrap_or_else(|| part.log.log_start_offset());
    let max_bytes: u64 = param(&q, "max_bytes")?.unwrap_or(1 << 20);
    let wait_ms: u64 = param(&q, "wait_ms")?.unwrap_or(0);
    // `?filter=PLUGIN&filter.KEY=VALUE...`: run a filter plugin on the records first.
    let filter = match q.get("filter") {
        Some(name) => {
            let params: std::collections::BTreeMap<String, String> = q
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix("filter.")
                        .map(|k| (k.to_string(), v.clone()))
                })
                .collect();
            Some(state.broker.filter(name, &params)?)
        }
        None => None,
    };
    // `?map=PLUGIN&map.KEY=VALUE...`: then rewrite the records with a map plugin.
    let map = match q.get("map") {
        Some(name) => {
            let params: std::collections::BTreeMap<String, String> = q
                .iter()
                .filter_map(|(k, v)| k.strip_prefix("map.").map(|k| (k.to_string(), v.clone())))
                .collect();
            Some(state.broker.map(name, &params)?)
        }
        None => None,
    };
    let fetched =
        fetch_until_stopping(&state, &topic, partition, offset, max_bytes, wait_ms).await?;
    let fetched = match &filter {
        Some(f) => sluice_broker::Broker::apply_filter(f, fetched).await?,
        None => fetched,
    };
    let fetched = match &map {
        Some(m) => sluice_broker::Broker::apply_map(m, fetched).await?,
        None => fetched,
    };
    let info = fetched.info;
    let records = count_records(&fetched.batches);
    state
        .metrics
        .fetched(&topic, partition, records, fetched.batches.len() as u64);
    let wants_batches = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains(BATCHES_CONTENT_TYPE));
    if wants_batches {
        let mut resp = fetched.batches.into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(BATCHES_CONTENT_TYPE),
        );
        h.insert("sluice-next-offset", info.next_offset.into());
        h.insert("sluice-high-watermark", info.high_watermark.into());
        h.insert("sluice-log-start-offset", info.log_start_offset.into());
        return Ok(resp);
    }
    let records = decode_records(&fetched.batches, offset)?;
    Ok(Json(FetchResponse {
        topic,
        partition,
        records,
        batches: None,
        next_offset: info.next_offset,
        high_watermark: info.high_watermark,
        log_start_offset: info.log_start_offset,
    })
    .into_response())
}

#[utoipa::path(get, path = "/v1/topics/{topic}/offsets",
    params(("topic" = String, Path), ("timestamp" = Option<i64>, Query, description = "Also find the first offset at or after this time (ms)")),
    responses((status = 200, body = OffsetsResponse), (status = 404, body = ErrorBody)))]
async fn offsets(
    State(state): State<Arc<AppState>>,
    Path(topic): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<OffsetsResponse>> {
    let timestamp: Option<i64> = param(&q, "timestamp")?;
    Ok(Json(state.broker.list_offsets(&topic, timestamp).await?))
}

/// Uploaded plugins.
#[derive(serde::Serialize)]
struct PluginList {
    plugins: Vec<PluginEntry>,
}

/// A plugin as `GET /v1/plugins[/{name}]` answers it: its description plus the topics that
/// route with it (their `partitioner` setting), which is why a delete would be refused. The
/// console's plugins page shows them.
#[derive(serde::Serialize)]
struct PluginEntry {
    #[serde(flatten)]
    plugin: sluice_broker::PluginDescription,
    /// Topics whose partitioner this plugin is, by name.
    partitioner_of: Vec<String>,
}

/// Plugin name → the topics that route with it, sorted.
fn partitioner_users(state: &AppState) -> HashMap<String, Vec<String>> {
    let mut users: HashMap<String, Vec<String>> = HashMap::new();
    for topic in state.broker.topics() {
        if let Some((plugin, _)) = topic.settings().partitioner() {
            users.entry(plugin).or_default().push(topic.name.clone());
        }
    }
    for topics in users.values_mut() {
        topics.sort_unstable();
    }
    users
}

#[utoipa::path(get, path = "/v1/plugins", responses((status = 200, description = "{\"plugins\": [...]}, each with `partitioner_of` (the topics routing with it)")))]
async fn list_plugins(State(state): State<Arc<AppState>>) -> Json<PluginList> {
    let mut users = partitioner_users(&state);
    Json(PluginList {
        plugins: state
            .broker
            .list_plugins()
            .into_iter()
            .map(|plugin| PluginEntry {
                partitioner_of: users.remove(&plugin.name).unwrap_or_default(),
                plugin,
            })
            .collect(),
    })
}

#[utoipa::path(get, path = "/v1/plugins/{name}", params(("name" = String, Path)),
    responses((status = 200, description = "kind, ABI version, size, sha256, upload time, health, `partitioner_of`"), (status = 404, body = ErrorBody)))]
async fn describe_plugin(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<PluginEntry>> {
    let plugin = state.broker.describe_plugin(&name)?;
    let partitioner_of = partitioner_users(&state)
        .remove(&plugin.name)
        .unwrap_or_default();
    Ok(Json(PluginEntry {
        plugin,
        partitioner_of,
    }))
}

#[utoipa::path(put, path = "/v1/plugins/{name}", params(("name" = String, Path)),
    request_body(content = Vec<u8>, description = "The .wasm module", content_type = "application/wasm"),
    responses((status = 200, description = "The plugin"), (status = 400, body = ErrorBody)))]
async fn upload_plugin(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<sluice_broker::PluginDescription>> {
    let bytes = body(bytes, state.args.max_request_bytes)?;
    Ok(Json(
        state.broker.upload_plugin(&name, bytes.to_vec()).await?,
    ))
}

#[utoipa::path(delete, path = "/v1/plugins/{name}", params(("name" = String, Path)),
    responses((status = 200, description = "{\"deleted\": name}"), (status = 404, body = ErrorBody)))]
async fn delete_plugin(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    state.broker.delete_plugin(&name).await?;
    Ok(Json(serde_json::json!({ "deleted": name })))
}

#[utoipa::path(get, path = "/v1/groups", responses((status = 200, body = GroupList)))]
async fn list_groups(State(state): State<Arc<AppState>>) -> Json<GroupList> {
    Json(state.broker.list_groups().await)
}

#[utoipa::path(get, path = "/v1/groups/{group}", params(("group" = String, Path)),
    responses((status = 200, body = GroupDescription), (status = 404, body = ErrorBody)))]
async fn describe_group(
    State(state): State<Arc<AppState>>,
    Path(group): Path<String>,
) -> ApiResult<Json<GroupDescription>> {
    Ok(Json(state.broker.describe_group(&group).await?))
}

#[utoipa::path(delete, path = "/v1/groups/{group}", params(("group" = String, Path)),
    responses((status = 200, description = "{\"deleted\": group}"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_group(
    State(state): State<Arc<AppState>>,
    Path(group): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    state.broker.delete_group(&group).await?;
    Ok(Json(serde_json::json!({ "deleted": group })))
}

#[utoipa::path(get, path = "/v1/groups/{group}/offsets",
    params(("group" = String, Path), ("topic" = Option<String>, Query, description = "Only this topic")),
    responses((status = 200, body = GroupOffsets)))]
async fn fetch_offsets(
    State(state): State<Arc<AppState>>,
    Path(group): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<GroupOffsets>> {
    let topics: Option<Vec<String>> = q.get("topic").map(|t| vec![t.clone()]);
    Ok(Json(
        state
            .broker
            .fetch_offsets(&group, topics.as_deref())
            .await?,
    ))
}

/// Body of `POST /v1/groups/{group}/offsets`: [`CommitOffsets`] without the group.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CommitBody {
    #[serde(default)]
    member_id: Option<String>,
    #[serde(default)]
    member_epoch: Option<i32>,
    offsets: Vec<OffsetCommit>,
}

#[utoipa::path(post, path = "/v1/groups/{group}/offsets", params(("group" = String, Path)), request_body = CommitBody,
    responses((status = 200, body = GroupOffsets), (status = 409, body = ErrorBody)))]
async fn commit_offsets(
    State(state): State<Arc<AppState>>,
    Path(group): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<GroupOffsets>> {
    let b: CommitBody = json_body(&body(bytes, state.args.max_request_bytes)?)?;
    let topics: Vec<String> = b.offsets.iter().map(|o| o.topic.clone()).collect();
    state
        .broker
        .commit_offsets(CommitOffsets {
            group: group.clone(),
            member_id: b.member_id,
            member_epoch: b.member_epoch,
            offsets: b.offsets,
        })
        .await?;
    Ok(Json(
        state.broker.fetch_offsets(&group, Some(&topics)).await?,
    ))
}

#[utoipa::path(post, path = "/v1/groups/{group}/reset-offsets", params(("group" = String, Path)), request_body = ResetOffsets,
    responses((status = 200, body = GroupOffsets), (status = 409, body = ErrorBody)))]
async fn reset_offsets(
    State(state): State<Arc<AppState>>,
    Path(group): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<GroupOffsets>> {
    let req: ResetOffsets = json_body(&body(bytes, state.args.max_request_bytes)?)?;
    Ok(Json(state.broker.reset_offsets(&group, req).await?))
}

#[utoipa::path(post, path = "/v1/groups/{group}/heartbeat", params(("group" = String, Path)), request_body = GroupHeartbeat,
    responses((status = 200, body = GroupAssignment), (status = 409, body = ErrorBody)))]
async fn group_heartbeat(
    State(state): State<Arc<AppState>>,
    Path(group): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<GroupAssignment>> {
    let mut req: GroupHeartbeat = json_body(&body(bytes, state.args.max_request_bytes)?)?;
    req.group = group;
    Ok(Json(state.broker.group_heartbeat(&req).await?))
}

#[utoipa::path(get, path = "/v1/cluster", responses((status = 200, description = "Brokers of the cluster")))]
async fn cluster(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let Some(cluster) = state.broker.cluster() else {
        return Json(serde_json::json!({
            "cluster_id": "single-node",
            "mode": "single",
            "node_id": 0,
            "controller": 0,
            "brokers": [{"id": 0, "address": state.local_addr.to_string(), "alive": true, "version": env!("CARGO_PKG_VERSION")}],
            "topics": [],
            "under_replicated": [],
        }));
    };
    let view = cluster.view();
    let (term, applied, last_log) = cluster.raft_status();
    let brokers: Vec<_> = view
        .meta
        .brokers
        .values()
        .map(|b| {
            serde_json::json!({
                "id": b.id,
                "address": b.addr,
                "alive": b.alive,
                "decommissioning": b.decommissioning,
            })
        })
        .collect();
    let mut under = Vec::new();
    let topics: Vec<_> = view
        .meta
        .topics
        .values()
        .map(|t| {
            let parts: Vec<_> = t
                .partitions
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    if p.isr.len() < p.replicas.len() || p.leader.is_none() {
                        under.push(serde_json::json!({"topic": t.name, "partition": i}));
                    }
                    serde_json::json!({
                        "partition": i,
                        "replicas": p.replicas,
                        "leader": p.leader,
                        "leader_epoch": p.leader_epoch,
                        "isr": p.isr,
                        "target": p.target,
                    })
                })
                .collect();
            serde_json::json!({
                "name": t.name,
                "replication_factor": t.replication_factor,
                "partitions": parts,
            })
        })
        .collect();
    Json(serde_json::json!({
        "cluster_id": "sluice",
        "mode": "cluster",
        "node_id": cluster.node_id(),
        "controller": cluster.controller(),
        "metadata": {"term": term, "applied_index": applied, "last_log_index": last_log, "state_machine_index": view.applied_index},
        "brokers": brokers,
        "topics": topics,
        "under_replicated": under,
    }))
}

/// Body of `POST /v1/cluster/reassign`.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReassignBody {
    topic: String,
    partition: u32,
    /// New replica list, preferred leader first.
    replicas: Vec<u32>,
}

#[utoipa::path(post, path = "/v1/cluster/reassign", request_body = ReassignBody, responses((status = 200, description = "The move is recorded; the cluster status shows its progress")))]
async fn reassign(
    State(state): State<Arc<AppState>>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let req: ReassignBody = json_body(&body(bytes, state.args.max_request_bytes)?)?;
    state
        .broker
        .reassign_partition(&req.topic, req.partition, req.replicas.clone())
        .await?;
    Ok(Json(serde_json::json!({
        "topic": req.topic,
        "partition": req.partition,
        "target": req.replicas,
    })))
}

#[utoipa::path(post, path = "/v1/cluster/brokers/{id}/decommission", responses((status = 200, description = "The broker's replicas are moving away")))]
async fn decommission(
    State(state): State<Arc<AppState>>,
    Path(id): Path<u32>,
) -> ApiResult<Json<serde_json::Value>> {
    state.broker.decommission_broker(id).await?;
    Ok(Json(
        serde_json::json!({"broker": id, "decommissioning": true}),
    ))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sluice HTTP API",
        description = "Topics, produce, fetch and offsets. WebSocket at /v1/ws: see docs/PROTOCOL.md."
    ),
    paths(
        healthz,
        readyz,
        metrics,
        list_topics,
        create_topic,
        describe_topic,
        alter_topic,
        delete_topic,
        produce,
        fetch,
        offsets,
        list_plugins,
        describe_plugin,
        upload_plugin,
        delete_plugin,
        list_groups,
        describe_group,
        delete_group,
        fetch_offsets,
        commit_offsets,
        reset_offsets,
        group_heartbeat,
        cluster,
        reassign,
        decommission
    ),
    components(schemas(
        ErrorBody,
        ErrorCode,
        CreateTopic,
        AlterTopic,
        TopicList,
        TopicSummary,
        TopicDescription,
        PartitionInfo,
        ProduceRequest,
        ProduceRecord,
        ProduceResponse,
        RecordOffset,
        FetchResponse,
        ConsumedRecord,
        OffsetsResponse,
        PartitionOffsets,
        GroupList,
        GroupSummary,
        GroupDescription,
        MemberDescription,
        PartitionLag,
        GroupOffsets,
        CommittedOffset,
        OffsetCommit,
        CommitBody,
        ResetOffsets,
        StartFrom,
        GroupHeartbeat,
        GroupAssignment,
        TopicPartitions
    ))
)]
struct ApiDoc;

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
