//! [`Client`]: the connection to a broker, kept open and reopened, shared by every admin,
//! producer and consumer made from it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sluice_protocol::PROTOCOL_VERSION;
use sluice_protocol::frame::{self, ClientFrame, Request, Response};
use sluice_protocol::types::HelloResponse;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::admin::Admin;
use crate::conn::{Conn, GroupPushes, SubSink};
use crate::consumer::{Consumer, ConsumerOptions};
use crate::error::{Error, Result};
use crate::producer::{Producer, ProducerOptions};

/// Connection settings. Every field has a default; set the ones you need:
///
/// ```
/// use sluice_client::ClientOptions;
///
/// let options = ClientOptions::new()
///     .request_timeout_ms(10_000)
///     .reconnect_backoff_ms(50, 2_000)
///     .client_name("billing/1.4");
/// assert_eq!(options.request_timeout().as_millis(), 10_000);
/// ```
#[derive(Debug, Clone)]
pub struct ClientOptions {
    request_timeout_ms: u64,
    connect_timeout_ms: u64,
    reconnect_backoff_min_ms: u64,
    reconnect_backoff_max_ms: u64,
    max_in_flight: u32,
    keepalive_ms: u64,
    max_receive_bytes: usize,
    client_name: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            request_timeout_ms: 30_000,
            connect_timeout_ms: 10_000,
            reconnect_backoff_min_ms: 100,
            reconnect_backoff_max_ms: 5_000,
            max_in_flight: 256,
            keepalive_ms: 30_000,
            max_receive_bytes: 80 << 20,
            client_name: format!("sluice-client-rust/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

impl ClientOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a request may wait for its answer, including the wait for a connection while
    /// reconnecting (default 30 000 ms).
    pub fn request_timeout_ms(mut self, ms: u64) -> Self {
        self.request_timeout_ms = ms.max(1);
        self
    }

    /// How long opening a connection (TCP, WebSocket upgrade and hello) may take (default
    /// 10 000 ms).
    pub fn connect_timeout_ms(mut self, ms: u64) -> Self {
        self.connect_timeout_ms = ms.max(1);
        self
    }

    /// Wait between reconnection attempts: starts at `min_ms`, doubles after each failure up
    /// to `max_ms` (defaults 100 and 5 000 ms). The producer's retries use the same backoff.
    pub fn reconnect_backoff_ms(mut self, min_ms: u64, max_ms: u64) -> Self {
        self.reconnect_backoff_min_ms = min_ms.max(1);
        self.reconnect_backoff_max_ms = max_ms.max(self.reconnect_backoff_min_ms);
        self
    }

    /// Most requests in flight on the connection at once (default 256; the broker's own limit
    /// from `hello` applies too). Further requests wait for a free slot.
    pub fn max_in_flight(mut self, n: u32) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Period of the WebSocket pings that keep an otherwise quiet connection open (default
    /// 30 000 ms; the broker's idle timeout is 300 000 ms by default).
    pub fn keepalive_ms(mut self, ms: u64) -> Self {
        self.keepalive_ms = ms.max(1);
        self
    }

    /// Largest WebSocket message accepted from the broker (default 80 MiB: a fetch answer of
    /// the broker's largest `max_bytes`, 64 MiB, plus room).
    pub fn max_receive_bytes(mut self, bytes: usize) -> Self {
        self.max_receive_bytes = bytes.max(1 << 20);
        self
    }

    /// The name sent in `hello`, shown in the broker's logs (default
    /// `sluice-client-rust/<version>`).
    pub fn client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = name.into();
        self
    }

    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub(crate) fn backoff(&self) -> Backoff {
        Backoff::new(self.reconnect_backoff_min_ms, self.reconnect_backoff_max_ms)
    }
}

/// Exponential backoff with jitter.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next_ms: u64,
    min_ms: u64,
    max_ms: u64,
}

impl Backoff {
    pub fn new(min_ms: u64, max_ms: u64) -> Self {
        Backoff {
            next_ms: min_ms,
            min_ms,
            max_ms,
        }
    }

    /// The next wait: the current step, less up to a quarter of it at random.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.next_ms;
        self.next_ms = (self.next_ms.saturating_mul(2)).min(self.max_ms);
        let jitter = cheap_random() % (step / 4 + 1);
        Duration::from_millis(step - jitter)
    }

    pub fn reset(&mut self) {
        self.next_ms = self.min_ms;
    }
}

/// A few random bits without a dependency: the clock's nanoseconds mixed with a counter.
pub(crate) fn cheap_random() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut x = nanos ^ COUNTER.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A connection to a Sluice broker over its WebSocket endpoint, multiplexing every request
/// of every [`Admin`], [`Producer`] and [`Consumer`] made from it.
///
/// Cheap to clone (clones share the connection). The connection is reopened in the background
/// when it is lost: requests in flight then fail with a retriable [`Error::Connection`] (the
/// producer retries them itself), later requests wait for the new connection up to the
/// request timeout, and consumers subscribe again from where they were. The connection closes
/// when the last clone (and the last producer or consumer made from it) is dropped, or at
/// [`Client::close`].
///
/// ```no_run
/// # async fn run() -> sluice_client::Result<()> {
/// let client = sluice_client::Client::connect("http://127.0.0.1:9400").await?;
/// for topic in client.admin().list_topics().await? {
///     println!("{} ({} partitions)", topic.name, topic.partitions);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.inner.shared.url())
            .finish_non_exhaustive()
    }
}

/// Owned by the clones; its drop closes the connection.
struct Inner {
    shared: Arc<Shared>,
    manager: AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.close();
        self.manager.abort();
    }
}

/// What the background reconnection task shares with the clones.
pub(crate) struct Shared {
    /// The bootstrap brokers' WebSocket URLs; `current` is the one in use (or tried last).
    urls: Vec<String>,
    current: std::sync::atomic::AtomicUsize,
    pub options: ClientOptions,
    next_id: AtomicU64,
    next_generation: AtomicU64,
    state: watch::Sender<State>,
    group_pushes: GroupPushes,
}

#[derive(Clone, Default)]
struct State {
    conn: Option<Arc<Conn>>,
    last_error: Option<String>,
    closed: bool,
}

impl Client {
    /// Connects with default [`ClientOptions`]. `url` is `ws://host:port` (the WebSocket
    /// endpoint `/v1/ws` is added when the URL has no path), `http://host:port` (mapped to
    /// `ws://host:port/v1/ws`) or just `host:port` — or several of them, comma-separated, for
    /// a cluster: the client connects to the first that answers and, when that broker goes
    /// away, reconnects to the next one (any broker of a cluster serves every request).
    ///
    /// Fails with [`Error::Connection`] when the broker cannot be reached, [`Error::Timeout`]
    /// when it does not answer in time, and [`Error::InvalidInput`] for a bad URL.
    pub async fn connect(url: &str) -> Result<Client> {
        Self::connect_with(url, ClientOptions::default()).await
    }

    /// Connects with the given options; see [`Client::connect`].
    pub async fn connect_with(url: &str, options: ClientOptions) -> Result<Client> {
        let urls = url
            .split(',')
            .filter(|u| !u.trim().is_empty())
            .map(ws_url)
            .collect::<Result<Vec<_>>>()?;
        if urls.is_empty() {
            return Err(Error::InvalidInput(
                "no broker address given; pass ws://host:port (or several, comma-separated)".into(),
            ));
        }
        let shared = Arc::new(Shared {
            urls,
            current: Default::default(),
            options,
            next_id: AtomicU64::new(1),
            next_generation: AtomicU64::new(1),
            state: watch::Sender::new(State::default()),
            group_pushes: Default::default(),
        });
        // The first bootstrap broker that answers.
        let mut first_error = None;
        let mut opened = None;
        for _ in 0..shared.urls.len() {
            match shared.open().await {
                Ok(c) => {
                    opened = Some(c);
                    break;
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                    shared.advance();
                }
            }
        }
        let conn = match opened {
            Some(c) => c,
            None => return Err(first_error.expect("at least one URL was tried")),
        };
        shared.state.send_modify(|s| s.conn = Some(conn.clone()));
        let manager = tokio::spawn(reconnect(shared.clone(), conn)).abort_handle();
        Ok(Client {
            inner: Arc::new(Inner { shared, manager }),
        })
    }

    /// The WebSocket URL of the broker in use (or tried last while reconnecting).
    pub fn url(&self) -> &str {
        self.inner.shared.url()
    }

    /// The broker's answer to `hello` on the current connection (protocol version, server
    /// name and version, limits), or `None` while reconnecting.
    pub fn server_info(&self) -> Option<HelloResponse> {
        let state = self.inner.shared.state.borrow();
        state.conn.as_ref().and_then(|c| c.hello().cloned())
    }

    /// Topic administration.
    pub fn admin(&self) -> Admin {
        Admin::new(self.clone())
    }

    /// A producer that batches records per partition; see [`Producer`]. Its background task
    /// is spawned on the current Tokio runtime (this panics outside one, as `tokio::spawn`
    /// does).
    pub fn producer(&self, options: ProducerOptions) -> Producer {
        Producer::new(self.clone(), options)
    }

    /// A consumer of the topics of `options`, subscribed before this returns (so an unknown
    /// topic fails here); see [`Consumer`].
    pub async fn consumer(&self, options: ConsumerOptions) -> Result<Consumer> {
        Consumer::new(self.clone(), options).await
    }

    /// Closes the connection for every clone: requests in flight and later ones fail with
    /// [`Error::Closed`]. Producers should be closed first ([`Producer::close`]) so that
    /// what they buffer is sent.
    pub fn close(&self) {
        self.inner.shared.close();
    }

    /// Group assignment pushes of every connection from now on.
    pub(crate) fn group_pushes(
        &self,
    ) -> tokio::sync::mpsc::UnboundedReceiver<sluice_protocol::types::GroupAssignment> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.inner
            .shared
            .group_pushes
            .lock()
            .expect("group pushes lock")
            .push(tx);
        rx
    }

    pub(crate) fn options(&self) -> &ClientOptions {
        &self.inner.shared.options
    }

    /// A fresh correlation id, unique for this client across its connections.
    pub(crate) fn next_id(&self) -> u64 {
        self.inner.shared.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends a request and waits for its answer (up to the request timeout, which includes
    /// waiting for a connection).
    pub(crate) async fn request(&self, request: Request) -> Result<Response> {
        let counted = !matches!(
            request,
            Request::Hello { .. }
                | Request::Subscribe { .. }
                | Request::Credit { .. }
                | Request::Unsubscribe { .. }
        );
        self.request_encoded(
            |id| {
                let frame = ClientFrame {
                    id,
                    request: request.clone(),
                };
                Message::Binary(frame::to_binary(&frame).into())
            },
            counted,
            None,
        )
        .await
        .map(|(r, _)| r)
    }

    /// Sends a frame built for a fresh id; returns the answer and the connection generation
    /// that carried it.
    pub(crate) async fn request_encoded(
        &self,
        build: impl FnOnce(u64) -> Message,
        counted: bool,
        sink: Option<SubSink>,
    ) -> Result<(Response, u64)> {
        let timeout = self.options().request_timeout();
        let deadline = tokio::time::Instant::now() + timeout;
        let conn = self.inner.shared.connection(deadline).await?;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let id = self.next_id();
        let answer = conn.call(id, build(id), counted, sink, left).await?;
        Ok((answer, conn.generation))
    }

    /// Sends a request without waiting for the answer, on the current connection if it is the
    /// given generation (credit and unsubscribe belong to one connection).
    pub(crate) fn send_and_forget(&self, generation: u64, request: &Request) {
        let state = self.inner.shared.state.borrow();
        if let Some(conn) = &state.conn
            && conn.generation == generation
        {
            if let Request::Unsubscribe { subscription } = request {
                conn.forget_subscription(*subscription);
            }
            conn.send_and_forget(self.next_id(), request);
        }
    }

    /// The current connection's generation, if connected.
    pub(crate) fn generation(&self) -> Option<u64> {
        let state = self.inner.shared.state.borrow();
        state
            .conn
            .as_ref()
            .filter(|c| !c.is_dead())
            .map(|c| c.generation)
    }
}

impl Shared {
    fn url(&self) -> &str {
        &self.urls[self.current.load(Ordering::Relaxed) % self.urls.len()]
    }

    /// Moves on to the next bootstrap broker.
    fn advance(&self) {
        self.current.fetch_add(1, Ordering::Relaxed);
    }

    /// Opens a connection to the current broker and says hello.
    async fn open(&self) -> Result<Arc<Conn>> {
        let options = &self.options;
        let config = WebSocketConfig::default()
            .max_message_size(Some(options.max_receive_bytes))
            .max_frame_size(Some(options.max_receive_bytes));
        let connect = tokio_tungstenite::connect_async_with_config(self.url(), Some(config), true);
        let ws = match tokio::time::timeout(options.connect_timeout(), connect).await {
            Ok(Ok((ws, _response))) => ws,
            Ok(Err(e)) => {
                return Err(Error::Connection(format!(
                    "cannot connect to {}: {e}",
                    self.url()
                )));
            }
            Err(_) => {
                return Err(Error::Timeout(format!(
                    "connecting to {} took longer than {} ms",
                    self.url(),
                    options.connect_timeout_ms
                )));
            }
        };
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let (conn, halves) = Conn::new(ws, generation, self.group_pushes.clone());
        conn.start(halves, Duration::from_millis(options.keepalive_ms));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let hello = ClientFrame {
            id,
            request: Request::Hello {
                version: PROTOCOL_VERSION,
                client: Some(options.client_name.clone()),
            },
        };
        let answer = conn
            .call(
                id,
                Message::Binary(frame::to_binary(&hello).into()),
                false,
                None,
                options.connect_timeout(),
            )
            .await;
        match answer {
            Ok(Response::Hello(hello)) => {
                if hello.version != PROTOCOL_VERSION {
                    conn.close();
                    return Err(Error::Protocol(format!(
                        "the broker speaks protocol version {}, this client {PROTOCOL_VERSION}",
                        hello.version
                    )));
                }
                tracing::debug!(url = %self.url(), server = %hello.server, generation, "connected");
                conn.set_hello(hello, options.max_in_flight);
                Ok(conn)
            }
            Ok(_) => {
                conn.close();
                Err(Error::Protocol(
                    "the broker answered hello with something else".into(),
                ))
            }
            Err(e) => {
                conn.close();
                Err(e)
            }
        }
    }

    /// The open connection, waiting for one until `deadline`.
    async fn connection(&self, deadline: tokio::time::Instant) -> Result<Arc<Conn>> {
        let mut rx = self.state.subscribe();
        loop {
            {
                let state = rx.borrow_and_update();
                if state.closed {
                    return Err(Error::Closed);
                }
                if let Some(conn) = &state.conn
                    && !conn.is_dead()
                {
                    return Ok(conn.clone());
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Error::Closed),
                Err(_) => {
                    let last = self.state.borrow().last_error.clone();
                    return Err(Error::Connection(match last {
                        Some(e) => format!("not connected to {}: {e}", self.url()),
                        None => format!("not connected to {}", self.url()),
                    }));
                }
            }
        }
    }

    fn close(&self) {
        let mut conn = None;
        self.state.send_modify(|s| {
            s.closed = true;
            conn = s.conn.take();
        });
        if let Some(conn) = conn {
            conn.close();
        }
    }
}

/// Reopens the connection whenever it is lost, with backoff, until the client is closed.
async fn reconnect(shared: Arc<Shared>, mut conn: Arc<Conn>) {
    let mut backoff = shared.options.backoff();
    loop {
        let reason = conn.dead().await;
        if shared.state.borrow().closed {
            return;
        }
        tracing::info!(url = %shared.url(), %reason, "connection lost; reconnecting");
        shared.state.send_modify(|s| {
            s.conn = None;
            s.last_error = Some(reason);
        });
        loop {
            match shared.open().await {
                Ok(c) => {
                    backoff.reset();
                    let mut closed = false;
                    shared.state.send_modify(|s| {
                        closed = s.closed;
                        if !closed {
                            s.conn = Some(c.clone());
                            s.last_error = None;
                        }
                    });
                    if closed {
                        c.close();
                        return;
                    }
                    tracing::info!(url = %shared.url(), "reconnected");
                    conn = c;
                    break;
                }
                Err(e) => {
                    tracing::debug!(url = %shared.url(), error = %e, "reconnect failed");
                    shared
                        .state
                        .send_modify(|s| s.last_error = Some(e.to_string()));
                    // Try the next bootstrap broker; back off once every one was tried.
                    shared.advance();
                    if shared
                        .current
                        .load(Ordering::Relaxed)
                        .is_multiple_of(shared.urls.len())
                    {
                        tokio::time::sleep(backoff.next_delay()).await;
                    }
                    if shared.state.borrow().closed {
                        return;
                    }
                }
            }
        }
    }
}

/// Turns what users type into the WebSocket URL: `http://h:p` → `ws://h:p/v1/ws`, `ws://h:p`
/// → `ws://h:p/v1/ws`, `h:p` → `ws://h:p/v1/ws`; a `ws://` URL with a path keeps it.
pub(crate) fn ws_url(input: &str) -> Result<String> {
    let input = input.trim();
    let (scheme, rest) = match input.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None => ("ws".to_string(), input),
    };
    let http = match scheme.as_str() {
        "ws" => false,
        "http" => true,
        "wss" | "https" => {
            return Err(Error::InvalidInput(format!(
                "`{input}`: TLS (wss:// and https://) is not supported by this client yet"
            )));
        }
        other => {
            return Err(Error::InvalidInput(format!(
                "`{input}`: unsupported scheme `{other}`; use ws:// or http://"
            )));
        }
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains(char::is_whitespace) {
        return Err(Error::InvalidInput(format!(
            "`{input}` has no host: use ws://HOST:PORT or http://HOST:PORT"
        )));
    }
    let path = path.trim_end_matches('/');
    let path = if http || path.is_empty() {
        format!("{path}/v1/ws")
    } else {
        path.to_string()
    };
    Ok(format!("ws://{authority}{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_map_to_the_websocket_endpoint() {
        assert_eq!(ws_url("ws://h:1").unwrap(), "ws://h:1/v1/ws");
        assert_eq!(ws_url("ws://h:1/").unwrap(), "ws://h:1/v1/ws");
        assert_eq!(ws_url("ws://h:1/v1/ws").unwrap(), "ws://h:1/v1/ws");
        assert_eq!(ws_url("ws://h:1/proxy/ws").unwrap(), "ws://h:1/proxy/ws");
        assert_eq!(ws_url("http://h:1").unwrap(), "ws://h:1/v1/ws");
        assert_eq!(ws_url("HTTP://h:1/base/").unwrap(), "ws://h:1/base/v1/ws");
        assert_eq!(
            ws_url("127.0.0.1:9400").unwrap(),
            "ws://127.0.0.1:9400/v1/ws"
        );
        assert!(matches!(ws_url("https://h"), Err(Error::InvalidInput(_))));
        assert!(matches!(ws_url("ftp://h"), Err(Error::InvalidInput(_))));
        assert!(matches!(ws_url("http://"), Err(Error::InvalidInput(_))));
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let mut b = Backoff::new(100, 350);
        let d: Vec<u64> = (0..4).map(|_| b.next_delay().as_millis() as u64).collect();
        assert!((75..=100).contains(&d[0]), "{d:?}");
        assert!((150..=200).contains(&d[1]), "{d:?}");
        assert!((263..=350).contains(&d[2]), "{d:?}");
        assert!((263..=350).contains(&d[3]), "{d:?}");
        b.reset();
        assert!(b.next_delay().as_millis() <= 100);
    }
}
