//! HTTP consumer instances, as REST proxies have them: a client without a long-lived connection
//! creates an instance in a group; the broker keeps its membership alive (heartbeats on its
//! behalf), tracks its positions, and serves polls and commits. Instances not used for
//! `--consumer-instance-idle-ms` are removed (they leave their group).
//!
//! ```text
//! POST   /v1/consumers/{group}                         create an instance (and subscribe)
//! GET    /v1/consumers/{group}/instances/{id}/records  poll records of the assigned partitions
//! POST   /v1/consumers/{group}/instances/{id}/offsets  commit (body: offsets, or empty for positions)
//! GET    /v1/consumers/{group}/instances/{id}/assignment
//! DELETE /v1/consumers/{group}/instances/{id}          leave the group
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sluice_protocol::types::*;
use sluice_protocol::{ErrorBody, ErrorCode};
use tokio::sync::Mutex;

use sluice_broker::group::{assignment_lists, assignment_set};

use crate::http::{ApiError, decode_records};
use crate::serve::AppState;

/// What happens where a group has no committed offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OffsetReset {
    /// Start at the first stored record.
    Earliest,
    /// Start at the end: only new records.
    #[default]
    Latest,
    /// Fail the poll (`offset_out_of_range`-style error): the application decides.
    None,
}

/// Body of `POST /v1/consumers/{group}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInstance {
    /// Topics to consume.
    #[serde(default)]
    pub topics: Option<Vec<String>>,
    /// Or a regular expression over topic names.
    #[serde(default)]
    pub topic_pattern: Option<String>,
    /// Where to start without a committed offset (default latest).
    #[serde(default)]
    pub auto_offset_reset: OffsetReset,
    /// Commit positions automatically before each poll and on delete (default true).
    #[serde(default = "yes")]
    pub auto_commit: bool,
    /// Session timeout of the membership, in ms.
    #[serde(default)]
    pub session_timeout_ms: Option<u64>,
    /// Static instance id.
    #[serde(default)]
    pub instance_id: Option<String>,
}

fn yes() -> bool {
    true
}

/// Answer to instance creation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InstanceCreated {
    /// Instance id.
    pub instance: String,
    /// Its group member id.
    pub member_id: String,
    /// Base path of the instance's endpoints.
    pub base_uri: String,
}

/// One polled record.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PolledRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The record.
    #[serde(flatten)]
    pub record: ConsumedRecord,
}

/// Answer to a poll.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PollResponse {
    /// Records, in offset order per partition.
    pub records: Vec<PolledRecord>,
}

struct Instance {
    group: String,
    member_id: String,
    epoch: i32,
    owned: BTreeSet<(String, u32)>,
    positions: BTreeMap<(String, u32), u64>,
    /// What this instance last committed, so unchanged positions are not committed again.
    committed: BTreeMap<(String, u32), u64>,
    reset: OffsetReset,
    auto_commit: bool,
    last_used: Instant,
    /// The next partition to poll first (fairness).
    cursor: usize,
    heartbeat_interval: Duration,
    last_heartbeat: Instant,
}

/// The instances of a broker.
#[derive(Default)]
pub struct Instances {
    map: parking_lot::Mutex<HashMap<String, Arc<Mutex<Instance>>>>,
    next: std::sync::atomic::AtomicU64,
}

fn not_found(group: &str, id: &str) -> ApiError {
    ApiError(ErrorBody::new(
        ErrorCode::UnknownMember,
        format!(
            "consumer instance `{id}` of group `{group}` does not exist (deleted or expired after being idle); create a new one"
        ),
    ))
}

impl Instance {
    /// Heartbeats (acknowledging revocations), keeping positions only for owned partitions.
    async fn heartbeat(&mut self, state: &AppState) -> Result<(), ErrorBody> {
        let before = self.owned.clone();
        let req = GroupHeartbeat {
            group: self.group.clone(),
            member_id: Some(self.member_id.clone()),
            member_epoch: self.epoch,
            owned: Some(assignment_lists(&self.owned)),
            ..Default::default()
        };
        let a = state.broker.group_heartbeat(&req).await?;
        self.epoch = a.member_epoch;
        self.heartbeat_interval = Duration::from_millis(a.heartbeat_interval_ms.max(1));
        self.last_heartbeat = Instant::now();
        let now_owned = assignment_set(&a.assignment);
        let revoked: Vec<(String, u32)> = before.difference(&now_owned).cloned().collect();
        if self.auto_commit && !revoked.is_empty() {
            // Commit what the instance consumed of partitions it is giving up.
            self.commit_positions(state, &revoked).await?;
        }
        self.owned = now_owned;
        let owned = self.owned.clone();
        self.positions.retain(|tp, _| owned.contains(tp));
        Ok(())
    }

    async fn commit_positions(
        &mut self,
        state: &AppState,
        which: &[(String, u32)],
    ) -> Result<(), ErrorBody> {
        let offsets: Vec<OffsetCommit> = which
            .iter()
            .filter_map(|tp| self.positions.get(tp).map(|o| (tp, *o)))
            .filter(|(tp, o)| self.committed.get(*tp) != Some(o))
            .map(|((t, p), o)| OffsetCommit {
                topic: t.clone(),
                partition: *p,
                offset: o,
                metadata: String::new(),
            })
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        let done: Vec<((String, u32), u64)> = offsets
            .iter()
            .map(|o| ((o.topic.clone(), o.partition), o.offset))
            .collect();
        state
            .broker
            .commit_offsets(CommitOffsets {
                group: self.group.clone(),
                member_id: Some(self.member_id.clone()),
                member_epoch: Some(self.epoch),
                offsets,
            })
            .await?;
        self.committed.extend(done);
        Ok(())
    }

    /// The position of a partition: consumed so far, else committed, else the reset policy.
    async fn position(&mut self, state: &AppState, tp: &(String, u32)) -> Result<u64, ErrorBody> {
        if let Some(p) = self.positions.get(tp) {
            return Ok(*p);
        }
        let committed = state
            .broker
            .fetch_offsets(&self.group, Some(std::slice::from_ref(&tp.0)))
            .await?;
        let part = state.broker.topic(&tp.0)?.partition(tp.1)?;
        let pos = match committed.offsets.iter().find(|o| o.partition == tp.1) {
            Some(o) => o
                .offset
                .clamp(part.log.log_start_offset(), part.log.high_watermark()),
            None => match self.reset {
                OffsetReset::Earliest => part.log.log_start_offset(),
                OffsetReset::Latest => part.log.high_watermark(),
                OffsetReset::None => {
                    return Err(ErrorBody::new(
                        ErrorCode::OffsetOutOfRange,
                        format!(
                            "group `{}` has no committed offset for {}/{} and auto_offset_reset is none",
                            self.group, tp.0, tp.1
                        ),
                    ));
                }
            },
        };
        self.positions.insert(tp.clone(), pos);
        Ok(pos)
    }
}

/// Routes under /v1/consumers.
pub fn routes() -> Router<Arc<AppState>> {
    use axum::routing::{get, post};
    Router::new()
        .route("/v1/consumers/{group}", post(create))
        .route(
            "/v1/consumers/{group}/instances/{id}",
            axum::routing::delete(delete),
        )
        .route("/v1/consumers/{group}/instances/{id}/records", get(poll))
        .route("/v1/consumers/{group}/instances/{id}/offsets", post(commit))
        .route(
            "/v1/consumers/{group}/instances/{id}/assignment",
            get(assignment),
        )
}

fn instance(state: &AppState, group: &str, id: &str) -> Result<Arc<Mutex<Instance>>, ApiError> {
    let map = state.consumers.map.lock();
    match map.get(id) {
        Some(i) => Ok(i.clone()),
        None => Err(not_found(group, id)),
    }
}

async fn create(
    State(state): State<Arc<AppState>>,
    Path(group): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<InstanceCreated>), ApiError> {
    let bytes = bytes.map_err(|e| {
        ApiError(ErrorBody::new(
            ErrorCode::BadRequest,
            format!("cannot read the body: {e}"),
        ))
    })?;
    let req: CreateInstance = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError(ErrorBody::new(
            ErrorCode::BadRequest,
            format!("malformed JSON body: {e}"),
        ))
    })?;
    if state.consumers.map.lock().len() >= state.args.max_consumer_instances {
        return Err(ApiError(ErrorBody::new(
            ErrorCode::TooManyRequests,
            format!(
                "the broker has its maximum of {} consumer instances; delete idle ones",
                state.args.max_consumer_instances
            ),
        )));
    }
    let a = state
        .broker
        .group_heartbeat(&GroupHeartbeat {
            group: group.clone(),
            member_epoch: 0,
            instance_id: req.instance_id.clone(),
            topics: req.topics.clone(),
            topic_pattern: req.topic_pattern.clone(),
            session_timeout_ms: req.session_timeout_ms,
            ..Default::default()
        })
        .await?;
    let n = state
        .consumers
        .next
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = format!("{}-{n}", &a.member_id);
    let inst = Instance {
        group: group.clone(),
        member_id: a.member_id.clone(),
        epoch: a.member_epoch,
        owned: assignment_set(&a.assignment),
        positions: BTreeMap::new(),
        committed: BTreeMap::new(),
        reset: req.auto_offset_reset,
        auto_commit: req.auto_commit,
        last_used: Instant::now(),
        cursor: 0,
        heartbeat_interval: Duration::from_millis(a.heartbeat_interval_ms.max(1)),
        last_heartbeat: Instant::now(),
    };
    state
        .consumers
        .map
        .lock()
        .insert(id.clone(), Arc::new(Mutex::new(inst)));
    let base_uri = format!("/v1/consumers/{group}/instances/{id}");
    Ok((
        StatusCode::CREATED,
        Json(InstanceCreated {
            instance: id,
            member_id: a.member_id,
            base_uri,
        }),
    ))
}

async fn poll(
    State(state): State<Arc<AppState>>,
    Path((group, id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<PollResponse>, ApiError> {
    let num = |k: &str, d: u64| -> Result<u64, ApiError> {
        q.get(k)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError(ErrorBody::new(
                        ErrorCode::BadRequest,
                        format!("`{k}={v}` is not a number"),
                    ))
                })
            })
            .transpose()
            .map(|v| v.unwrap_or(d))
    };
    let max_bytes = num("max_bytes", 1 << 20)?;
    let wait_ms = num("wait_ms", 0)?.min(state.args.max_fetch_wait_ms);
    let inst = instance(&state, &group, &id)?;
    let mut inst = inst.lock().await;
    inst.last_used = Instant::now();
    if inst.auto_commit {
        let all: Vec<(String, u32)> = inst.owned.iter().cloned().collect();
        inst.commit_positions(&state, &all).await?;
    }
    inst.heartbeat(&state).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    loop {
        let owned: Vec<(String, u32)> = inst.owned.iter().cloned().collect();
        let mut records = Vec::new();
        let mut budget = max_bytes;
        let n = owned.len();
        for k in 0..n {
            let tp = &owned[(inst.cursor + k) % n];
            // An error after some partitions were read returns those records (their positions
            // moved with them); the failing partition reports on the next poll.
            let fetched = match inst.position(&state, tp).await {
                Ok(from) => state
                    .broker
                    .fetch(&tp.0, tp.1, from, budget.max(1), 0)
                    .await
                    .map(|f| (from, f)),
                Err(e) => Err(e),
            };
            let (from, f) = match fetched {
                Ok(x) => x,
                Err(e)
                    if e.code == ErrorCode::OffsetOutOfRange
                        && inst.reset != OffsetReset::None
                        && e.log_start_offset.is_some() =>
                {
                    // Retention passed the position: reset as the policy says.
                    let part = state.broker.topic(&tp.0)?.partition(tp.1)?;
                    let to = match inst.reset {
                        OffsetReset::Earliest => part.log.log_start_offset(),
                        _ => part.log.high_watermark(),
                    };
                    tracing::info!(group = %inst.group, topic = %tp.0, partition = tp.1, to, "position out of range; reset");
                    inst.positions.insert(tp.clone(), to);
                    continue;
                }
                Err(_) if !records.is_empty() => break,
                Err(e) => return Err(e.into()),
            };
            if f.info.bytes == 0 {
                continue;
            }
            budget = budget.saturating_sub(f.info.bytes as u64);
            for r in decode_records(&f.batches, from)? {
                records.push(PolledRecord {
                    topic: tp.0.clone(),
                    partition: tp.1,
                    record: r,
                });
            }
            inst.positions.insert(tp.clone(), f.info.next_offset);
            if budget == 0 {
                break;
            }
        }
        inst.cursor = inst.cursor.wrapping_add(1);
        if !records.is_empty()
            || tokio::time::Instant::now() >= deadline
            || owned.is_empty() && wait_ms == 0
        {
            return Ok(Json(PollResponse { records }));
        }
        // Nothing yet: wait for any owned partition to grow (or the deadline), keeping the
        // membership alive meanwhile.
        let mut watches = Vec::new();
        for (t, p) in &owned {
            watches.push(state.broker.topic(t)?.partition(*p)?.watch_high_watermark());
        }
        let step = deadline.min(tokio::time::Instant::now() + inst.heartbeat_interval);
        if watches.is_empty() {
            tokio::time::sleep_until(step).await;
        } else {
            let changed =
                futures_util::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
            let _ = tokio::time::timeout_at(step, changed).await;
        }
        inst.heartbeat(&state).await?;
    }
}

/// Body of a commit: explicit offsets, or nothing to commit the instance's positions.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceCommit {
    /// Offsets to commit (default: the instance's current positions).
    #[serde(default)]
    pub offsets: Option<Vec<OffsetCommit>>,
}

async fn commit(
    State(state): State<Arc<AppState>>,
    Path((group, id)): Path<(String, String)>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<GroupOffsets>, ApiError> {
    let bytes = bytes.map_err(|e| {
        ApiError(ErrorBody::new(
            ErrorCode::BadRequest,
            format!("cannot read the body: {e}"),
        ))
    })?;
    let body: InstanceCommit = if bytes.is_empty() {
        InstanceCommit::default()
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            ApiError(ErrorBody::new(
                ErrorCode::BadRequest,
                format!("malformed JSON body: {e}"),
            ))
        })?
    };
    let inst = instance(&state, &group, &id)?;
    let mut inst = inst.lock().await;
    inst.last_used = Instant::now();
    match body.offsets {
        Some(offsets) => {
            state
                .broker
                .commit_offsets(CommitOffsets {
                    group: group.clone(),
                    member_id: Some(inst.member_id.clone()),
                    member_epoch: Some(inst.epoch),
                    offsets,
                })
                .await?
        }
        None => {
            let all: Vec<(String, u32)> = inst.owned.iter().cloned().collect();
            inst.commit_positions(&state, &all).await?
        }
    }
    Ok(Json(state.broker.fetch_offsets(&group, None).await?))
}

async fn assignment(
    State(state): State<Arc<AppState>>,
    Path((group, id)): Path<(String, String)>,
) -> Result<Json<GroupAssignment>, ApiError> {
    let inst = instance(&state, &group, &id)?;
    let mut inst = inst.lock().await;
    inst.last_used = Instant::now();
    inst.heartbeat(&state).await?;
    Ok(Json(GroupAssignment {
        member_id: inst.member_id.clone(),
        member_epoch: inst.epoch,
        heartbeat_interval_ms: inst.heartbeat_interval.as_millis() as u64,
        assignment: assignment_lists(&inst.owned),
    }))
}

async fn delete(
    State(state): State<Arc<AppState>>,
    Path((group, id)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let inst = state
        .consumers
        .map
        .lock()
        .remove(&id)
        .ok_or_else(|| not_found(&group, &id))?;
    leave(&state, &inst).await;
    Ok(Json(serde_json::json!({ "deleted": id })))
}

async fn leave(state: &AppState, inst: &Arc<Mutex<Instance>>) {
    let mut inst = inst.lock().await;
    if inst.auto_commit {
        let all: Vec<(String, u32)> = inst.owned.iter().cloned().collect();
        if let Err(e) = inst.commit_positions(state, &all).await {
            tracing::warn!(group = %inst.group, error = %e.message, "committing on instance removal");
        }
    }
    let _ = state
        .broker
        .group_heartbeat(&GroupHeartbeat {
            group: inst.group.clone(),
            member_id: Some(inst.member_id.clone()),
            member_epoch: -1,
            ..Default::default()
        })
        .await;
}

/// Keeps instances' memberships alive and removes idle ones. Runs every 100 ms.
pub async fn maintain(state: Arc<AppState>) {
    let idle = Duration::from_millis(state.args.consumer_instance_idle_ms);
    let all: Vec<(String, Arc<Mutex<Instance>>)> = state
        .consumers
        .map
        .lock()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (id, inst) in all {
        // An instance busy in a poll heartbeats itself.
        let Ok(mut guard) = inst.try_lock() else {
            continue;
        };
        if guard.last_used.elapsed() > idle {
            drop(guard);
            if state.consumers.map.lock().remove(&id).is_some() {
                tracing::info!(instance = %id, "removing an idle HTTP consumer instance");
                leave(&state, &inst).await;
            }
            continue;
        }
        if guard.last_heartbeat.elapsed() >= guard.heartbeat_interval
            && let Err(e) = guard.heartbeat(&state).await
        {
            tracing::info!(instance = %id, error = %e.message, "HTTP consumer instance lost its membership");
            drop(guard);
            state.consumers.map.lock().remove(&id);
        }
    }
}
