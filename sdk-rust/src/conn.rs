//! One WebSocket connection to a broker: a writer task that owns the sending half, a reader
//! task that owns the receiving half and routes what arrives, and the table of requests
//! waiting for answers.
//!
//! Every request carries a correlation id; the reader hands each answer to the waiting
//! request through a oneshot channel and each subscription push to the channel of the
//! consumer that subscribed. When the socket fails, every waiting request fails with a
//! retriable [`Error::Connection`] and every subscription is told it was lost, so its consumer
//! can subscribe again on the next connection (`crate::client` makes that connection).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use sluice_protocol::frame::{
    self, ClientFrame, Delivery, Request, Response, ServerBody, ServerFrame,
};
use sluice_protocol::types::{GroupAssignment, HelloResponse};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::{Error, Result};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Pushes that may arrive for a subscription before the answer announcing it; the broker does
/// not do this today (it grants the first credit after the answer), but the protocol allows
/// it. More than this many is treated as a broken connection.
const MAX_EARLY_DELIVERIES: usize = 64;

/// Frames the writer sends before one flush.
const MAX_FRAMES_PER_FLUSH: usize = 64;

/// What a subscription's consumer is told.
#[derive(Debug)]
pub(crate) enum SubEvent {
    /// Records pushed by the broker.
    Records { generation: u64, delivery: Delivery },
    /// The broker ended the subscription with an error.
    Failed {
        generation: u64,
        subscription: u64,
        error: Error,
    },
    /// The connection carrying the subscription is gone.
    Lost { generation: u64, subscription: u64 },
}

/// Where a subscription's events go: the consumer's channel, and its count of bytes received
/// but not yet consumed (deliveries are bounded by the subscription's credit, so the channel
/// is too).
#[derive(Debug, Clone)]
pub(crate) struct SubSink {
    pub tx: mpsc::UnboundedSender<SubEvent>,
    pub buffered_bytes: Arc<AtomicU64>,
}

impl SubSink {
    fn send(&self, event: SubEvent) {
        if let SubEvent::Records { delivery, .. } = &event {
            self.buffered_bytes
                .fetch_add(delivery.bytes, Ordering::Relaxed);
        }
        // A consumer that is gone has nothing to be told.
        let _ = self.tx.send(event);
    }
}

enum Pending {
    Answer(oneshot::Sender<Result<Response>>),
    /// A `subscribe`: on success the reader registers the sink before anything else is read,
    /// so no push for the new subscription can slip past.
    Subscribe(oneshot::Sender<Result<Response>>, SubSink),
}

impl Pending {
    fn complete(self, answer: Result<Response>) {
        let tx = match self {
            Pending::Answer(tx) | Pending::Subscribe(tx, _) => tx,
        };
        // The requester may have timed out and gone.
        let _ = tx.send(answer);
    }
}

#[derive(Default)]
struct Subs {
    live: HashMap<u64, SubSink>,
    /// Highest subscription id the broker announced on this connection; pushes for lower ids
    /// that are not live belong to ended subscriptions.
    max_announced: u64,
    early: Vec<Delivery>,
}

/// One open connection (after a successful hello).
/// Where id-less group assignment pushes go: every group consumer of the client listens and
/// keeps those of its own member id.
pub(crate) type GroupPushes = Arc<std::sync::Mutex<Vec<mpsc::UnboundedSender<GroupAssignment>>>>;

pub(crate) struct Conn {
    group_pushes: GroupPushes,
    /// Counts connections of one client, so consumers can tell a lost connection's events from
    /// the current one's.
    pub generation: u64,
    out: mpsc::UnboundedSender<Message>,
    pending: std::sync::Mutex<HashMap<u64, Pending>>,
    subs: std::sync::Mutex<Subs>,
    /// Requests the broker runs concurrently, capped by its `max_in_flight` and ours.
    in_flight: Semaphore,
    dead: watch::Sender<Option<String>>,
    hello: std::sync::OnceLock<HelloResponse>,
}

/// What the reader and writer need to start.
pub(crate) struct Halves {
    sink: SplitSink<Ws, Message>,
    stream: SplitStream<Ws>,
    out_rx: mpsc::UnboundedReceiver<Message>,
}

impl Conn {
    /// Wraps an open WebSocket; call [`Conn::start`] with the returned halves.
    pub fn new(ws: Ws, generation: u64, group_pushes: GroupPushes) -> (Arc<Conn>, Halves) {
        let (sink, stream) = ws.split();
        let (out, out_rx) = mpsc::unbounded_channel();
        let conn = Arc::new(Conn {
            group_pushes,
            generation,
            out,
            pending: Default::default(),
            subs: Default::default(),
            in_flight: Semaphore::new(0),
            dead: watch::Sender::new(None),
            hello: std::sync::OnceLock::new(),
        });
        (
            conn,
            Halves {
                sink,
                stream,
                out_rx,
            },
        )
    }

    /// Spawns the reader and writer tasks.
    pub fn start(self: &Arc<Self>, halves: Halves, keepalive: Duration) {
        tokio::spawn(writer(self.clone(), halves.sink, halves.out_rx, keepalive));
        tokio::spawn(reader(self.clone(), halves.stream));
    }

    /// Records the broker's hello and opens `max_in_flight` request slots.
    pub fn set_hello(&self, hello: HelloResponse, max_in_flight: u32) {
        let slots = max_in_flight.min(hello.max_in_flight).max(1);
        self.in_flight.add_permits(slots as usize);
        let _ = self.hello.set(hello);
    }

    /// The broker's hello answer.
    pub fn hello(&self) -> Option<&HelloResponse> {
        self.hello.get()
    }

    /// Whether the connection has failed or been closed.
    pub fn is_dead(&self) -> bool {
        self.dead.borrow().is_some()
    }

    /// Waits until the connection fails or is closed; returns why.
    pub async fn dead(&self) -> String {
        let mut rx = self.dead.subscribe();
        match rx.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => "connection dropped".into(),
        }
    }

    /// Ends the connection: fails what is waiting (with a retriable error) and tells every
    /// subscription it was lost. Idempotent.
    pub fn fail(&self, reason: &str) {
        let first = self.dead.send_if_modified(|d| {
            if d.is_some() {
                return false;
            }
            *d = Some(reason.to_string());
            true
        });
        if !first {
            return;
        }
        tracing::debug!(generation = self.generation, reason, "connection ended");
        // Requests waiting for a slot give up at once.
        self.in_flight.close();
        let pending: Vec<Pending> = self
            .pending
            .lock()
            .expect("pending lock")
            .drain()
            .map(|(_, p)| p)
            .collect();
        for p in pending {
            p.complete(Err(Error::Connection(format!(
                "connection lost before the answer: {reason}"
            ))));
        }
        let live: Vec<(u64, SubSink)> = {
            let mut subs = self.subs.lock().expect("subs lock");
            subs.early.clear();
            subs.live.drain().collect()
        };
        for (subscription, sink) in live {
            sink.send(SubEvent::Lost {
                generation: self.generation,
                subscription,
            });
        }
    }

    /// Closes the connection politely (a close frame), then ends it.
    pub fn close(&self) {
        let _ = self.out.send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "client closed".into(),
        })));
        self.fail("the client closed the connection");
    }

    /// Sends a request and waits for its answer. `counted` requests take one of the broker's
    /// in-flight slots (all but hello, subscribe, credit and unsubscribe); `sink` makes it a
    /// subscribe whose pushes go there.
    pub async fn call(
        &self,
        id: u64,
        frame: Message,
        counted: bool,
        sink: Option<SubSink>,
        timeout: Duration,
    ) -> Result<Response> {
        let deadline = tokio::time::Instant::now() + timeout;
        let _permit = if counted {
            match tokio::time::timeout_at(deadline, self.in_flight.acquire()).await {
                Ok(Ok(p)) => Some(p),
                // Closed by `fail`: the connection is gone.
                Ok(Err(_)) => {
                    return Err(Error::Connection("the connection was lost".into()));
                }
                Err(_) => {
                    return Err(Error::Timeout(format!(
                        "no request slot free within {} ms",
                        timeout.as_millis()
                    )));
                }
            }
        } else {
            None
        };
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.lock().expect("pending lock");
            if let Some(reason) = self.dead.borrow().as_ref() {
                return Err(Error::Connection(format!("not connected: {reason}")));
            }
            let p = match sink {
                Some(sink) => Pending::Subscribe(tx, sink),
                None => Pending::Answer(tx),
            };
            pending.insert(id, p);
        }
        if self.out.send(frame).is_err() {
            self.pending.lock().expect("pending lock").remove(&id);
            return Err(Error::Connection("the connection is closed".into()));
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(Error::Connection("the connection is closed".into())),
            Err(_) => {
                self.pending.lock().expect("pending lock").remove(&id);
                Err(Error::Timeout(format!(
                    "no answer to request {id} within {} ms",
                    timeout.as_millis()
                )))
            }
        }
    }

    /// Sends a request whose answer nobody waits for (credit, unsubscribe): the broker answers
    /// these in order and cheaply; an error answer is only logged.
    pub fn send_and_forget(&self, id: u64, request: &Request) {
        let frame = ClientFrame {
            id,
            request: request.clone(),
        };
        let _ = self
            .out
            .send(Message::Binary(frame::to_binary(&frame).into()));
    }

    /// Stops routing pushes of a subscription (after unsubscribe).
    pub fn forget_subscription(&self, subscription: u64) {
        self.subs
            .lock()
            .expect("subs lock")
            .live
            .remove(&subscription);
    }

    fn dispatch(&self, frame: ServerFrame) {
        match frame {
            ServerFrame {
                id: Some(id), body, ..
            } => {
                let Some(pending) = self.pending.lock().expect("pending lock").remove(&id) else {
                    tracing::debug!(id, "answer to a request nobody waits for");
                    if let ServerBody::Ok(Response::Subscribed { subscription, .. }) = body {
                        // A subscribe that timed out here but succeeded there: end it.
                        let mut subs = self.subs.lock().expect("subs lock");
                        subs.max_announced = subs.max_announced.max(subscription);
                        subs.early.retain(|d| d.subscription != subscription);
                        drop(subs);
                        self.send_and_forget(id, &Request::Unsubscribe { subscription });
                    }
                    return;
                };
                match (pending, body) {
                    (
                        Pending::Subscribe(tx, sink),
                        ServerBody::Ok(Response::Subscribed {
                            subscription,
                            positions,
                        }),
                    ) => {
                        self.register(subscription, sink);
                        let _ = tx.send(Ok(Response::Subscribed {
                            subscription,
                            positions,
                        }));
                    }
                    (p, ServerBody::Ok(answer)) => p.complete(Ok(answer)),
                    (p, ServerBody::Error(e)) => p.complete(Err(e.into())),
                    (p, ServerBody::Records(_)) => p.complete(Err(Error::Protocol(
                        "the broker answered a request with a push".into(),
                    ))),
                }
            }
            ServerFrame {
                id: None,
                body: ServerBody::Records(delivery),
                ..
            } => self.route(delivery),
            ServerFrame {
                id: None,
                subscription: Some(subscription),
                body: ServerBody::Error(e),
            } => {
                let sink = self
                    .subs
                    .lock()
                    .expect("subs lock")
                    .live
                    .remove(&subscription);
                match sink {
                    Some(sink) => sink.send(SubEvent::Failed {
                        generation: self.generation,
                        subscription,
                        error: e.into(),
                    }),
                    None => tracing::debug!(subscription, %e, "error of an ended subscription"),
                }
            }
            ServerFrame {
                id: None,
                body: ServerBody::Error(e),
                ..
            } => tracing::warn!(%e, "broker error not tied to a request"),
            ServerFrame {
                id: None,
                body: ServerBody::Ok(Response::GroupAssignment(assignment)),
                ..
            } => self
                .group_pushes
                .lock()
                .expect("group pushes lock")
                .retain(|tx| tx.send(assignment.clone()).is_ok()),
            ServerFrame { id: None, .. } => {}
        }
    }

    fn register(&self, subscription: u64, sink: SubSink) {
        let early = {
            let mut subs = self.subs.lock().expect("subs lock");
            subs.max_announced = subs.max_announced.max(subscription);
            subs.live.insert(subscription, sink.clone());
            let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut subs.early)
                .into_iter()
                .partition(|d| d.subscription == subscription);
            subs.early = others;
            mine
        };
        for delivery in early {
            sink.send(SubEvent::Records {
                generation: self.generation,
                delivery,
            });
        }
    }

    fn route(&self, delivery: Delivery) {
        let mut subs = self.subs.lock().expect("subs lock");
        if let Some(sink) = subs.live.get(&delivery.subscription) {
            let sink = sink.clone();
            drop(subs);
            sink.send(SubEvent::Records {
                generation: self.generation,
                delivery,
            });
        } else if delivery.subscription > subs.max_announced {
            if subs.early.len() >= MAX_EARLY_DELIVERIES {
                drop(subs);
                self.fail("too many pushes for subscriptions that were never announced");
                return;
            }
            subs.early.push(delivery);
        } else {
            tracing::trace!(
                subscription = delivery.subscription,
                "push for an ended subscription"
            );
        }
    }
}

async fn writer(
    conn: Arc<Conn>,
    mut sink: SplitSink<Ws, Message>,
    mut rx: mpsc::UnboundedReceiver<Message>,
    keepalive: Duration,
) {
    let mut dead = conn.dead.subscribe();
    // The broker closes connections that send nothing for its idle timeout (pushes received
    // do not count): a ping now and then keeps a listen-only consumer connected.
    let mut ping = tokio::time::interval(keepalive);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        let result = tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                let mut closing = matches!(msg, Message::Close(_));
                let mut r = sink.feed(msg).await;
                let mut fed = 1;
                while r.is_ok() && !closing && fed < MAX_FRAMES_PER_FLUSH {
                    let Ok(next) = rx.try_recv() else { break };
                    closing = matches!(next, Message::Close(_));
                    r = sink.feed(next).await;
                    fed += 1;
                }
                let r = match r {
                    Ok(()) => sink.flush().await,
                    e => e,
                };
                if closing {
                    break;
                }
                r
            }
            _ = ping.tick() => sink.send(Message::Ping(Default::default())).await,
            _ = until_dead(&mut dead) => break,
        };
        if let Err(e) = result {
            conn.fail(&format!("sending failed: {e}"));
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
}

async fn reader(conn: Arc<Conn>, mut stream: SplitStream<Ws>) {
    let mut dead = conn.dead.subscribe();
    loop {
        let msg = tokio::select! {
            m = stream.next() => m,
            _ = until_dead(&mut dead) => return,
        };
        let decoded = match msg {
            None => {
                conn.fail("the broker closed the connection");
                return;
            }
            Some(Err(e)) => {
                conn.fail(&format!("receiving failed: {e}"));
                return;
            }
            Some(Ok(Message::Close(close))) => {
                let why = match close {
                    Some(c) => format!(
                        "the broker closed the connection ({}: {})",
                        c.code, c.reason
                    ),
                    None => "the broker closed the connection".into(),
                };
                conn.fail(&why);
                return;
            }
            Some(Ok(Message::Binary(bytes))) => {
                frame::from_binary::<ServerFrame>(&bytes).map_err(|e| (e, recover_id(&bytes)))
            }
            // The broker answers in the encoding asked (binary) but sends a few errors as
            // JSON text (the handshake timeout).
            Some(Ok(Message::Text(text))) => {
                frame::from_json::<ServerFrame>(text.as_str()).map_err(|e| (e, None))
            }
            Some(Ok(_)) => continue,
        };
        match decoded {
            Ok(frame) => conn.dispatch(frame),
            Err((e, Some(id))) => {
                if let Some(p) = conn.pending.lock().expect("pending lock").remove(&id) {
                    p.complete(Err(Error::Protocol(format!(
                        "cannot read the broker's answer: {e}"
                    ))));
                }
            }
            // An unknown push kind or a frame from a newer broker: ignore it, as the protocol
            // asks.
            Err((e, None)) => tracing::debug!(%e, "ignoring a frame this client cannot read"),
        }
    }
}

/// Waits until the connection is marked dead.
async fn until_dead(dead: &mut watch::Receiver<Option<String>>) {
    let _ = dead.wait_for(Option::is_some).await;
}

/// The `id` of a binary frame that does not decode as a whole (an answer type or error this
/// client does not know), so its request can fail instead of waiting for its timeout.
fn recover_id(bytes: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: u64,
    }
    frame::from_binary::<IdOnly>(bytes).ok().map(|i| i.id)
}
