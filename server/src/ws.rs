//! The WebSocket endpoint `/v1/ws`: many requests multiplexed by correlation id, JSON text
//! frames or MessagePack binary frames (answered in kind), and subscriptions that push records
//! under credit-based flow control.
//!
//! Limits: frame size, requests in flight, subscriptions per connection, a handshake timeout,
//! an idle timeout, and a send timeout that disconnects a client that stops reading — so no
//! client can make the broker buffer without bound.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use futures_util::stream::{SplitSink, StreamExt};
use sluice_protocol::frame::{
    self, ClientFrame, Delivery, Request, Response as Answer, ServerBody, ServerFrame,
};
use sluice_protocol::types::*;
use sluice_protocol::{ErrorBody, ErrorCode, PROTOCOL_VERSION};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use crate::serve::AppState;

/// How a frame was encoded; answers use the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Binary,
}

fn encode(format: Format, frame: &ServerFrame) -> Message {
    match format {
        Format::Json => Message::Text(Utf8Bytes::from(frame::to_json(frame))),
        Format::Binary => Message::Binary(frame::to_binary(frame).into()),
    }
}

fn error_frame(id: Option<u64>, e: ErrorBody) -> ServerFrame {
    ServerFrame {
        id,
        subscription: None,
        body: ServerBody::Error(e),
    }
}

/// A subscription ended with an error: the frame names it.
fn subscription_error(subscription: u64, e: ErrorBody) -> ServerFrame {
    ServerFrame {
        id: None,
        subscription: Some(subscription),
        body: ServerBody::Error(e),
    }
}

/// Upgrades to a WebSocket, holding one connection slot for the socket's life.
pub async fn upgrade(State(state): State<Arc<AppState>>, ws: WebSocketUpgrade) -> Response {
    let Ok(permit) = state.connections.clone().try_acquire_owned() else {
        return crate::http::ApiError(ErrorBody::new(
            ErrorCode::TooManyConnections,
            format!(
                "the broker has its maximum of {} connections; retry later",
                state.args.max_connections
            ),
        ))
        .into_response();
    };
    let max = state.args.max_frame_bytes;
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| async move {
            state.metrics.ws_connections.inc();
            connection(state.clone(), socket).await;
            state.metrics.ws_connections.dec();
            drop(permit);
        })
}

/// Outgoing frames go through one queue drained by a writer task with a send timeout. The queue
/// is bounded in bytes (`--max-buffered-bytes` per connection) as well as in frames, so a
/// client that reads slowly stalls its own producers of frames, never the broker's memory.
#[derive(Clone)]
struct Outbox {
    tx: mpsc::Sender<Queued>,
    budget: Arc<Semaphore>,
    budget_bytes: usize,
}

/// A queued frame and the share of the byte budget it holds until it is written.
struct Queued {
    msg: Message,
    _bytes: OwnedSemaphorePermit,
}

/// The connection is gone.
#[derive(Debug)]
struct Closed;

impl Outbox {
    fn new(budget_bytes: usize) -> (Outbox, mpsc::Receiver<Queued>) {
        let (tx, rx) = mpsc::channel(64);
        let budget_bytes = budget_bytes.max(1);
        let out = Outbox {
            tx,
            budget: Arc::new(Semaphore::new(budget_bytes)),
            budget_bytes,
        };
        (out, rx)
    }

    async fn send(&self, msg: Message) -> Result<(), Closed> {
        self.send_then(msg, || {}).await
    }

    /// Waits for room, runs `before` once the frame's place is secured, then queues it.
    async fn send_then(&self, msg: Message, before: impl FnOnce()) -> Result<(), Closed> {
        let len = match &msg {
            Message::Text(t) => t.len(),
            Message::Binary(b) => b.len(),
            _ => 0,
        };
        // A frame larger than the whole budget takes all of it.
        let n = len.clamp(1, self.budget_bytes).min(u32::MAX as usize) as u32;
        let bytes = self
            .budget
            .clone()
            .acquire_many_owned(n)
            .await
            .map_err(|_| Closed)?;
        let slot = self.tx.reserve().await.map_err(|_| Closed)?;
        before();
        slot.send(Queued { msg, _bytes: bytes });
        Ok(())
    }
}

async fn writer(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: mpsc::Receiver<Queued>,
    send_timeout: Duration,
    dead: watch::Sender<bool>,
) {
    // Each frame's byte budget returns when the frame is written (at the end of the iteration).
    while let Some(Queued { msg, _bytes }) = rx.recv().await {
        let closing = matches!(msg, Message::Close(_));
        match tokio::time::timeout(send_timeout, sink.send(msg)).await {
            Ok(Ok(())) if !closing => {}
            Ok(Ok(())) => break,
            Ok(Err(_)) => break,
            Err(_) => {
                tracing::info!("disconnecting a WebSocket client that stopped reading");
                break;
            }
        }
    }
    let _ = dead.send(true);
    // Closing flushes too: bound it, or a client that stopped reading holds the connection
    // (and its slot) forever.
    let _ = tokio::time::timeout(send_timeout, sink.close()).await;
}

/// What request tasks of one connection share with it.
#[derive(Clone)]
struct ConnCtx {
    /// Turns true when the connection is over (tasks that outlive a request stop).
    closed: watch::Receiver<bool>,
    /// The last assignment sent to each group member on this connection (answers and pushes),
    /// so a push never repeats what the member already has.
    sent: Arc<parking_lot::Mutex<HashMap<String, GroupAssignment>>>,
}

struct Subscription {
    credit: Arc<watch::Sender<i64>>,
    task: JoinHandle<()>,
    /// Set by the delivery task before it reports the error that ends it, so the slot is
    /// free as soon as the client can see why.
    ended: Arc<std::sync::atomic::AtomicBool>,
}

impl Subscription {
    fn live(&self) -> bool {
        !self.ended.load(std::sync::atomic::Ordering::Acquire) && !self.task.is_finished()
    }
}

async fn close_with(out: &Outbox, code: u16, reason: &str) {
    let _ = out
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from(reason.to_string()),
        })))
        .await;
}

async fn connection(state: Arc<AppState>, socket: WebSocket) {
    let args = &state.args;
    let (sink, mut stream) = socket.split();
    let (out, rx) = Outbox::new(args.max_buffered_bytes);
    let (dead_tx, mut dead) = watch::channel(false);
    let mut stopping = state.stopping.clone();
    let writer_task = tokio::spawn(writer(
        sink,
        rx,
        Duration::from_millis(args.send_timeout_ms),
        dead_tx,
    ));
    let in_flight = Arc::new(Semaphore::new(args.max_in_flight as usize));
    // Tells tasks that outlive a request (assignment pushes) that the connection is over.
    let (closed_tx, closed_rx) = watch::channel(false);
    let ctx = ConnCtx {
        closed: closed_rx,
        sent: Default::default(),
    };
    let mut subscriptions: HashMap<u64, Subscription> = HashMap::new();
    let mut next_subscription = 1u64;
    let mut greeted = false;
    // Until hello the handshake timeout runs from the connect (pings and junk do not extend
    // it); after, the idle timeout restarts with every frame.
    let handshake_deadline =
        tokio::time::Instant::now() + Duration::from_millis(args.handshake_timeout_ms);

    loop {
        let deadline = if greeted {
            tokio::time::Instant::now() + Duration::from_millis(args.idle_timeout_ms)
        } else {
            handshake_deadline
        };
        let msg = tokio::select! {
            m = tokio::time::timeout_at(deadline, stream.next()) => m,
            _ = async { dead.wait_for(|d| *d).await.map(|_| ()) } => break,
            Ok(()) = async { stopping.wait_for(|s| *s).await.map(|_| ()) } => {
                // Requests in flight (long-polls end at once now) answer before the close.
                let send_timeout = Duration::from_millis(args.send_timeout_ms);
                let _ = tokio::time::timeout(send_timeout, in_flight.acquire_many(args.max_in_flight)).await;
                close_with(&out, 1001, "the broker is shutting down").await;
                break;
            }
        };
        let msg = match msg {
            Err(_) if greeted && subscriptions.values().any(Subscription::live) => {
                // A subscriber may only listen (browsers cannot send pings): probe it instead
                // of closing; a client that is gone fails the send and is dropped.
                if out.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
                continue;
            }
            Err(_) => {
                let (code, reason) = if greeted {
                    (1001, "idle timeout: no frame from the client")
                } else {
                    (1008, "handshake timeout: send hello first")
                };
                if !greeted {
                    let e = ErrorBody::new(
                        ErrorCode::HandshakeRequired,
                        "no hello within the handshake timeout",
                    );
                    let _ = out.send(encode(Format::Json, &error_frame(None, e))).await;
                }
                close_with(&out, code, reason).await;
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                // Oversized or malformed WebSocket frames end the connection with a reason.
                let text = e.to_string();
                tracing::debug!(error = %text, "WebSocket read error");
                let (code, reason) = if text.contains("too long")
                    || text.contains("too big")
                    || text.contains("Space limit")
                {
                    (1009, "frame larger than --max-frame-bytes")
                } else {
                    (1002, "protocol error")
                };
                close_with(&out, code, reason).await;
                break;
            }
            Ok(Some(Ok(m))) => m,
        };
        let (format, decoded) = match &msg {
            Message::Text(t) => (Format::Json, frame::from_json::<ClientFrame>(t.as_str())),
            Message::Binary(b) => (Format::Binary, frame::from_binary::<ClientFrame>(b)),
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Close(_) => break,
        };
        state.metrics.ws_frames_in.inc();
        let f = match decoded {
            Ok(f) => f,
            Err(e) => {
                // Say why, keep serving: one bad frame does not cost the client its connection.
                let id = recover_id(&msg);
                if out
                    .send(encode(format, &error_frame(id, e.into())))
                    .await
                    .is_err()
                {
                    break;
                }
                continue;
            }
        };
        let id = f.id;
        if !greeted {
            match f.request {
                Request::Hello { version, .. } => {
                    if version != PROTOCOL_VERSION {
                        let e = ErrorBody::new(
                            ErrorCode::UnsupportedVersion,
                            format!(
                                "protocol version {version} is not supported; this broker speaks version {PROTOCOL_VERSION}"
                            ),
                        );
                        let _ = out.send(encode(format, &error_frame(Some(id), e))).await;
                        close_with(&out, 1002, "unsupported protocol version").await;
                        break;
                    }
                    greeted = true;
                    let hello = HelloResponse {
                        version: PROTOCOL_VERSION,
                        server: format!("sluice/{}", env!("CARGO_PKG_VERSION")),
                        max_frame_bytes: args.max_frame_bytes as u64,
                        max_in_flight: args.max_in_flight,
                    };
                    let ok = ServerFrame {
                        id: Some(id),
                        subscription: None,
                        body: ServerBody::Ok(Answer::Hello(hello)),
                    };
                    if out.send(encode(format, &ok)).await.is_err() {
                        break;
                    }
                }
                _ => {
                    let e = ErrorBody::new(
                        ErrorCode::HandshakeRequired,
                        "the first request on a connection must be hello",
                    );
                    let _ = out.send(encode(format, &error_frame(Some(id), e))).await;
                }
            }
            continue;
        }
        match f.request {
            Request::Hello { .. } => {
                let e = ErrorBody::new(
                    ErrorCode::BadRequest,
                    "hello was already done on this connection",
                );
                let _ = out.send(encode(format, &error_frame(Some(id), e))).await;
            }
            Request::Subscribe {
                topic,
                partitions,
                from,
                credit_bytes,
                positions: explicit,
                filter,
                map,
            } => {
                subscriptions.retain(|_, s| s.live());
                let answer = if subscriptions.len() >= args.max_subscriptions {
                    Err(ErrorBody::new(
                        ErrorCode::TooManyRequests,
                        format!(
                            "a connection may hold {} subscriptions; unsubscribe some first",
                            args.max_subscriptions
                        ),
                    ))
                } else {
                    let sid = next_subscription;
                    match start_subscription(
                        &state,
                        sid,
                        &topic,
                        partitions,
                        from,
                        explicit,
                        filter,
                        map,
                        0,
                        format,
                        out.clone(),
                    )
                    .await
                    {
                        Ok((sub, positions)) => {
                            next_subscription += 1;
                            subscriptions.insert(sid, sub);
                            Ok(Answer::Subscribed {
                                subscription: sid,
                                positions,
                            })
                        }
                        Err(e) => Err(e),
                    }
                };
                let frame = answer_frame(id, answer);
                if out.send(encode(format, &frame)).await.is_err() {
                    break;
                }
                // The credit comes after the answer, so no push precedes `subscribed`.
                if let ServerBody::Ok(Answer::Subscribed { subscription, .. }) = &frame.body
                    && let Some(s) = subscriptions.get(subscription)
                {
                    s.credit.send_modify(|c| {
                        *c = c.saturating_add(credit_bytes.min(i64::MAX as u64) as i64)
                    });
                }
            }
            Request::Credit {
                subscription,
                bytes,
            } => {
                let answer = match subscriptions.get(&subscription) {
                    Some(s) => {
                        s.credit.send_modify(|c| {
                            *c = c.saturating_add(bytes.min(i64::MAX as u64) as i64)
                        });
                        Ok(Answer::Done)
                    }
                    None => Err(unknown_subscription(subscription)),
                };
                if out
                    .send(encode(format, &answer_frame(id, answer)))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            Request::Unsubscribe { subscription } => {
                let answer = match subscriptions.remove(&subscription) {
                    Some(s) => {
                        s.task.abort();
                        Ok(Answer::Done)
                    }
                    None => Err(unknown_subscription(subscription)),
                };
                if out
                    .send(encode(format, &answer_frame(id, answer)))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            request => {
                let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                    let e = ErrorBody::new(
                        ErrorCode::TooManyRequests,
                        format!(
                            "this connection has {} requests in flight; wait for answers before sending more",
                            args.max_in_flight
                        ),
                    );
                    if out
                        .send(encode(format, &error_frame(Some(id), e)))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    continue;
                };
                tokio::spawn(handle(
                    state.clone(),
                    id,
                    request,
                    format,
                    out.clone(),
                    permit,
                    ctx.clone(),
                ));
            }
        }
    }
    for (_, s) in subscriptions {
        s.task.abort();
    }
    let _ = closed_tx.send(true);
    drop(out);
    let _ = writer_task.await;
}

/// Finds the `id` of a frame that failed to decode as a whole, so the error can name it.
fn recover_id(msg: &Message) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: u64,
    }
    match msg {
        Message::Text(t) => serde_json::from_str::<IdOnly>(t.as_str())
            .ok()
            .map(|i| i.id),
        Message::Binary(b) => rmp_id(b),
        _ => None,
    }
}

fn rmp_id(b: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: u64,
    }
    frame::from_binary::<IdOnly>(b).ok().map(|i| i.id)
}

fn unknown_subscription(id: u64) -> ErrorBody {
    ErrorBody::new(
        ErrorCode::UnknownSubscription,
        format!("no subscription {id} on this connection"),
    )
}

fn answer_frame(id: u64, answer: Result<Answer, ErrorBody>) -> ServerFrame {
    ServerFrame {
        id: Some(id),
        subscription: None,
        body: match answer {
            Ok(a) => ServerBody::Ok(a),
            Err(e) => ServerBody::Error(e),
        },
    }
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    state: Arc<AppState>,
    id: u64,
    request: Request,
    format: Format,
    out: Outbox,
    permit: OwnedSemaphorePermit,
    ctx: ConnCtx,
) {
    let broker = &state.broker;
    let answer: Result<Answer, ErrorBody> = match request {
        Request::CreateTopic(req) => broker.create_topic(req).await.map(Answer::Topic),
        Request::ListTopics => Ok(Answer::Topics(broker.list_topics())),
        Request::DescribeTopic { topic } => broker.describe_topic(&topic).map(Answer::Topic),
        Request::AlterTopic { topic, changes } => {
            broker.alter_topic(&topic, changes).await.map(Answer::Topic)
        }
        Request::DeleteTopic { topic } => broker
            .delete_topic(&topic)
            .await
            .map(|()| Answer::Deleted { topic }),
        Request::Produce {
            topic,
            acks,
            records,
            batches,
            partition,
        } => match (records.is_empty(), batches) {
            (true, Some(b)) => {
                let bytes = b.len() as u64;
                let n: u64 = crate::http::count_records(&b);
                let r = broker.produce_batches(&topic, partition, b, acks).await;
                if let Ok(resp) = &r {
                    state.metrics.produced(&topic, resp, n, bytes);
                }
                r.map(Answer::Produced)
            }
            (false, None) => {
                let n = records.len() as u64;
                let bytes: u64 = records
                    .iter()
                    .map(|r| {
                        r.value.as_ref().map_or(0, |v| v.0.len()) as u64
                            + r.key.as_ref().map_or(0, |k| k.0.len()) as u64
                    })
                    .sum();
                let r = broker.produce_records(&topic, records, acks).await;
                if let Ok(resp) = &r {
                    state.metrics.produced(&topic, resp, n, bytes);
                }
                r.map(Answer::Produced)
            }
            _ => Err(ErrorBody::new(
                ErrorCode::BadRequest,
                "produce needs either `records` or `batches`, not both or neither",
            )),
        },
        Request::Fetch {
            topic,
            partition,
            offset,
            max_bytes,
            max_wait_ms,
            filter,
            map,
        } => {
            // Attached before the read, so that a bad map answers at once, not after a long poll.
            let map = match map
                .as_ref()
                .map(|spec| broker.map(&spec.plugin, &spec.params))
                .transpose()
            {
                Ok(m) => m,
                Err(e) => {
                    let _ = out
                        .send_then(encode(format, &answer_frame(id, Err(e))), move || {
                            drop(permit)
                        })
                        .await;
                    return;
                }
            };
            match crate::http::fetch_until_stopping(
                &state,
                &topic,
                partition,
                offset,
                max_bytes.unwrap_or(1 << 20),
                max_wait_ms.unwrap_or(0),
            )
            .await
            .and_then(|f| {
                Ok((
                    f,
                    filter
                        .as_ref()
                        .map(|spec| broker.filter(&spec.plugin, &spec.params))
                        .transpose()?,
                ))
            }) {
                Ok((f, filter)) => {
                    let f = match &filter {
                        Some(filter) => {
                            match sluice_broker::Broker::apply_filter(filter, f).await {
                                Ok(f) => f,
                                Err(e) => {
                                    let _ = out
                                        .send_then(
                                            encode(format, &answer_frame(id, Err(e))),
                                            move || drop(permit),
                                        )
                                        .await;
                                    return;
                                }
                            }
                        }
                        None => f,
                    };
                    let f = match &map {
                        Some(map) => match sluice_broker::Broker::apply_map(map, f).await {
                            Ok(f) => f,
                            Err(e) => {
                                let _ = out
                                    .send_then(
                                        encode(format, &answer_frame(id, Err(e))),
                                        move || drop(permit),
                                    )
                                    .await;
                                return;
                            }
                        },
                        None => f,
                    };
                    let n: u64 = crate::http::count_records(&f.batches);
                    state
                        .metrics
                        .fetched(&topic, partition, n, f.batches.len() as u64);
                    fetch_response(format, topic, partition, offset, f).map(Answer::Fetched)
                }
                Err(e) => Err(e),
            }
        }
        Request::GroupHeartbeat(req) => {
            let answer = broker.group_heartbeat(&req).await;
            if let Ok(a) = &answer {
                ctx.sent.lock().insert(a.member_id.clone(), a.clone());
            }
            if req.member_epoch == 0
                && let Ok(a) = &answer
            {
                // A member on this connection: push its assignment whenever it changes.
                tokio::spawn(push_assignments(
                    state.clone(),
                    req.group.clone(),
                    a.clone(),
                    format,
                    out.clone(),
                    ctx.clone(),
                ));
            }
            answer.map(Answer::GroupAssignment)
        }
        Request::CommitOffsets(req) => broker.commit_offsets(req).await.map(|()| Answer::Done),
        Request::FetchOffsets { group, topics } => broker
            .fetch_offsets(&group, topics.as_deref())
            .await
            .map(Answer::GroupOffsets),
        Request::ListGroups => Ok(Answer::Groups(broker.list_groups().await)),
        Request::DescribeGroup { group } => broker.describe_group(&group).await.map(Answer::Group),
        Request::DeleteGroup { group } => broker.delete_group(&group).await.map(|()| Answer::Done),
        Request::ResetOffsets { group, reset } => broker
            .reset_offsets(&group, reset)
            .await
            .map(Answer::GroupOffsets),
        Request::ListOffsets { topic, timestamp } => broker
            .list_offsets(&topic, timestamp)
            .await
            .map(Answer::Offsets),
        // The frame size limit bounds the module before it is decoded; the plugin host then
        // refuses modules over its own cap (10 MiB by default) with `invalid_plugin`.
        Request::UploadPlugin { name, module } => broker
            .upload_plugin(&name, module)
            .await
            .map(Answer::Plugin),
        Request::ListPlugins => Ok(Answer::Plugins(PluginList {
            plugins: broker.list_plugins(),
        })),
        Request::DescribePlugin { name } => broker.describe_plugin(&name).map(Answer::Plugin),
        Request::DeletePlugin { name } => broker.delete_plugin(&name).await.map(|()| Answer::Done),
        Request::Hello { .. }
        | Request::Subscribe { .. }
        | Request::Credit { .. }
        | Request::Unsubscribe { .. } => {
            unreachable!("handled on the connection task")
        }
    };
    // Free the in-flight slot only once the answer has its place in the outbox, and before the
    // client can see the answer: a client that got its answer may send the next request.
    let _ = out
        .send_then(encode(format, &answer_frame(id, answer)), move || {
            drop(permit)
        })
        .await;
}

fn fetch_response(
    format: Format,
    topic: String,
    partition: u32,
    from: u64,
    f: sluice_broker::Fetched,
) -> Result<FetchResponse, ErrorBody> {
    let (records, batches) = match format {
        Format::Json => (crate::http::decode_records(&f.batches, from)?, None),
        Format::Binary => (Vec::new(), Some(f.batches)),
    };
    Ok(FetchResponse {
        topic,
        partition,
        records,
        batches,
        next_offset: f.info.next_offset,
        high_watermark: f.info.high_watermark,
        log_start_offset: f.info.log_start_offset,
    })
}

#[allow(clippy::too_many_arguments)]
async fn start_subscription(
    state: &Arc<AppState>,
    sid: u64,
    topic: &str,
    partitions: Option<Vec<u32>>,
    from: StartFrom,
    explicit: Option<Vec<RecordOffset>>,
    filter: Option<FilterSpec>,
    map: Option<MapSpec>,
    credit_bytes: u64,
    format: Format,
    out: Outbox,
) -> Result<(Subscription, Vec<RecordOffset>), ErrorBody> {
    let t = state.broker.topic(topic)?;
    let filter = filter
        .map(|spec| state.broker.filter(&spec.plugin, &spec.params))
        .transpose()?;
    let map = map
        .map(|spec| state.broker.map(&spec.plugin, &spec.params))
        .transpose()?;
    let ids = match &explicit {
        Some(list) => list.iter().map(|p| p.partition).collect(),
        None => partitions.unwrap_or_else(|| (0..t.partition_count()).collect()),
    };
    if ids.is_empty() {
        return Err(ErrorBody::new(
            ErrorCode::BadRequest,
            "`partitions` is empty; leave it out to subscribe to every partition",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = ids.iter().find(|p| !seen.insert(**p)) {
        return Err(ErrorBody::new(
            ErrorCode::BadRequest,
            format!("partition {dup} is listed twice in `partitions`"),
        ));
    }
    let mut parts = Vec::new();
    for p in ids {
        parts.push(t.partition(p)?);
    }
    let offsets = match from {
        StartFrom::Timestamp(ts) => Some(state.broker.list_offsets(topic, Some(ts)).await?),
        _ => None,
    };
    let mut positions = Vec::new();
    for p in &parts {
        let log = &p.log;
        let given = explicit
            .as_ref()
            .and_then(|l| l.iter().find(|x| x.partition == p.id))
            .map(|x| x.offset);
        let pos = match (given, from) {
            (Some(o), _) => o.clamp(log.log_start_offset(), log.high_watermark()),
            (None, from) => match from {
                StartFrom::Earliest => log.log_start_offset(),
                StartFrom::Latest => log.high_watermark(),
                StartFrom::Offset(o) => o.clamp(log.log_start_offset(), log.high_watermark()),
                StartFrom::Timestamp(_) => offsets
                    .as_ref()
                    .and_then(|o| o.partitions.iter().find(|x| x.partition == p.id))
                    .and_then(|x| x.offset_for_timestamp.flatten())
                    .unwrap_or_else(|| log.high_watermark()),
            },
        };
        positions.push(RecordOffset {
            partition: p.id,
            offset: pos,
        });
    }
    let credit = Arc::new(watch::Sender::new(credit_bytes.min(i64::MAX as u64) as i64));
    let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let task = tokio::spawn(deliver(
        state.clone(),
        sid,
        t.name.clone(),
        parts,
        positions.clone(),
        credit.clone(),
        format,
        out,
        ended.clone(),
        filter,
        map,
    ));
    Ok((
        Subscription {
            credit,
            task,
            ended,
        },
        positions,
    ))
}

/// Pushes records while there is credit, waiting on the partitions' high watermarks when
/// caught up and on the credit when it runs out.
#[allow(clippy::too_many_arguments)]
async fn deliver(
    state: Arc<AppState>,
    sid: u64,
    topic: String,
    parts: Vec<Arc<sluice_broker::Partition>>,
    mut positions: Vec<RecordOffset>,
    credit_cell: Arc<watch::Sender<i64>>,
    format: Format,
    out: Outbox,
    ended: Arc<std::sync::atomic::AtomicBool>,
    filter: Option<sluice_broker::Filter>,
    map: Option<sluice_broker::Map>,
) {
    let mut credit = credit_cell.subscribe();
    let mut watches: Vec<watch::Receiver<u64>> =
        parts.iter().map(|p| p.watch_high_watermark()).collect();
    loop {
        // Wait for credit.
        if credit.wait_for(|c| *c > 0).await.is_err() {
            return;
        }
        let mut sent_any = false;
        for (i, part) in parts.iter().enumerate() {
            let budget = (*credit.borrow()).max(0) as u64;
            if budget == 0 {
                break;
            }
            let from = positions[i].offset;
            let fetched = match state
                .broker
                .fetch(&topic, part.id, from, budget.min(1 << 20), 0)
                .await
            {
                Ok(f) => f,
                Err(e) if e.code == ErrorCode::OffsetOutOfRange => {
                    // Retention moved past us: continue from the new start, as a consumer with
                    // auto.offset.reset=earliest would.
                    positions[i].offset = e.log_start_offset.unwrap_or(from);
                    continue;
                }
                Err(e) => {
                    ended.store(true, std::sync::atomic::Ordering::Release);
                    let _ = out.send(encode(format, &subscription_error(sid, e))).await;
                    return;
                }
            };
            if fetched.info.bytes == 0 {
                continue;
            }
            let read_bytes = fetched.info.bytes as u64;
            let fetched = match &filter {
                Some(f) => match sluice_broker::Broker::apply_filter(f, fetched).await {
                    Ok(kept) => kept,
                    Err(e) => {
                        ended.store(true, std::sync::atomic::Ordering::Release);
                        let _ = out.send(encode(format, &subscription_error(sid, e))).await;
                        return;
                    }
                },
                None => fetched,
            };
            if fetched.batches.is_empty() {
                // Everything was filtered out: push no records, only the new position, so that
                // the client's position passes the dropped records and a commit does not send
                // it back over them. It costs the bytes read, like a push of them would: so the
                // broker runs ahead of a client that stopped reading by the credit at most.
                positions[i].offset = fetched.info.next_offset;
                let frame = ServerFrame {
                    id: None,
                    subscription: None,
                    body: ServerBody::Records(Delivery {
                        subscription: sid,
                        bytes: read_bytes,
                        fetch: FetchResponse {
                            topic: topic.clone(),
                            partition: part.id,
                            records: Vec::new(),
                            batches: None,
                            next_offset: fetched.info.next_offset,
                            high_watermark: fetched.info.high_watermark,
                            log_start_offset: fetched.info.log_start_offset,
                        },
                    }),
                };
                credit_cell.send_modify(|c| *c -= read_bytes.min(i64::MAX as u64) as i64);
                credit.mark_unchanged();
                if out.send(encode(format, &frame)).await.is_err() {
                    return;
                }
                sent_any = true;
                continue;
            }
            let fetched = match &map {
                Some(m) => match sluice_broker::Broker::apply_map(m, fetched).await {
                    Ok(mapped) => mapped,
                    Err(e) => {
                        ended.store(true, std::sync::atomic::Ordering::Release);
                        let _ = out.send(encode(format, &subscription_error(sid, e))).await;
                        return;
                    }
                },
                None => fetched,
            };
            let size = fetched.batches.len() as i64;
            let n: u64 = crate::http::count_records(&fetched.batches);
            state.metrics.fetched(&topic, part.id, n, size as u64);
            positions[i].offset = fetched.info.next_offset;
            let fetch = match fetch_response(format, topic.clone(), part.id, from, fetched) {
                Ok(f) => f,
                Err(e) => {
                    ended.store(true, std::sync::atomic::Ordering::Release);
                    let _ = out.send(encode(format, &subscription_error(sid, e))).await;
                    return;
                }
            };
            let frame = ServerFrame {
                id: None,
                subscription: None,
                body: ServerBody::Records(Delivery {
                    subscription: sid,
                    bytes: size as u64,
                    fetch,
                }),
            };
            // Deduct before sending; the bounded outbox makes a slow reader stall us here.
            credit_cell.send_modify(|c| *c -= size);
            credit.mark_unchanged();
            if out.send(encode(format, &frame)).await.is_err() {
                return;
            }
            sent_any = true;
        }
        if sent_any {
            continue;
        }
        // Caught up everywhere: wait for any high watermark to move, or for new credit.
        let changed =
            futures_util::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        tokio::select! {
            (r, _, _) = changed => { if r.is_err() { return; } }
            r = credit.changed() => { if r.is_err() { return; } }
        }
    }
}

/// Pushes a group member's assignment (a frame with no `id`) whenever it changes between its
/// heartbeats — partitions to give up as soon as another member needs them, partitions to take
/// as soon as they are free — until the member leaves or the connection closes.
async fn push_assignments(
    state: Arc<AppState>,
    group: String,
    first: GroupAssignment,
    format: Format,
    out: Outbox,
    ctx: ConnCtx,
) {
    let member = first.member_id.clone();
    let mut changes = state.broker.group_changes();
    let mut stopping = state.stopping.clone();
    let mut closed = ctx.closed.clone();
    loop {
        tokio::select! {
            r = changes.changed() => if r.is_err() { break },
            _ = stopping.wait_for(|s| *s) => break,
            // The connection ended: drop the outbox so its writer can finish.
            _ = closed.wait_for(|c| *c) => break,
        }
        let Some(now) = state.broker.peek_assignment(&group, &member) else {
            break; // left, removed, or replaced by a new incarnation
        };
        {
            let mut sent = ctx.sent.lock();
            let last = sent.get(&member);
            if last.is_some_and(|l| {
                l.assignment == now.assignment && l.member_epoch == now.member_epoch
            }) {
                continue;
            }
            sent.insert(member.clone(), now.clone());
        }
        let frame = ServerFrame {
            id: None,
            subscription: None,
            body: ServerBody::Ok(Answer::GroupAssignment(now)),
        };
        if out.send(encode(format, &frame)).await.is_err() {
            break;
        }
    }
    ctx.sent.lock().remove(&member);
}
