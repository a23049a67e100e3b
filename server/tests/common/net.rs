//! HTTP and WebSocket clients for driving a [`TestBroker`](super::TestBroker) the way a user
//! would: plain reqwest for HTTP, tokio-tungstenite for WebSocket.

use std::future::Future;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sluice_protocol::frame::{
    self, ClientFrame, Request, Response as Answer, ServerBody, ServerFrame,
};
use sluice_protocol::{ErrorBody, PROTOCOL_VERSION};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::TestBroker;

/// Upper bound on any single wait in a test; only reached when something is broken.
pub const GUARD: Duration = Duration::from_secs(15);

/// Awaits `f`, failing the test if it takes longer than [`GUARD`].
pub async fn guard<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(GUARD, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {GUARD:?}: {what}"),
    }
}

/// A JSON-speaking HTTP client bound to one broker.
#[derive(Clone)]
pub struct Http {
    pub client: reqwest::Client,
    pub base: String,
}

/// A response: status and body (JSON when it parses, else the text as a JSON string).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Asserts the status and returns the body.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        self.body
    }

    /// Asserts an error answer with this status and code; returns the body.
    #[track_caller]
    pub fn expect_error(self, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        assert_eq!(
            self.body["code"], code,
            "unexpected error body: {}",
            self.body
        );
        assert!(
            self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "error without a message: {}",
            self.body
        );
        self.body
    }
}

impl Http {
    pub fn new(broker: &TestBroker) -> Http {
        Http {
            client: reqwest::Client::new(),
            base: broker.url(""),
        }
    }

    async fn reply(resp: reqwest::Response) -> Reply {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("read body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = guard("HTTP request", req.send())
            .await
            .expect("HTTP request");
        Self::reply(resp).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.client.delete(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(self.client.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.send(self.client.patch(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// POSTs raw bytes with a content type.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        self.send(
            self.client
                .post(format!("{}{path}", self.base))
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body),
        )
        .await
    }

    /// Creates a topic, asserting success.
    pub async fn create_topic(&self, name: &str, partitions: u32) -> Value {
        self.post(
            "/v1/topics",
            &json!({"name": name, "partitions": partitions}),
        )
        .await
        .expect(201)
    }

    /// Produces JSON records with acks=all, asserting success; returns the offsets.
    pub async fn produce(&self, topic: &str, records: Value) -> Vec<(u32, u64)> {
        let body = self
            .post(
                &format!("/v1/topics/{topic}/records"),
                &json!({ "records": records }),
            )
            .await
            .expect(200);
        offsets(&body)
    }

    /// Fetches JSON records of a partition from `offset` (no wait), asserting success.
    pub async fn fetch(&self, topic: &str, partition: u32, offset: u64) -> Value {
        self.get(&format!(
            "/v1/topics/{topic}/partitions/{partition}/records?offset={offset}"
        ))
        .await
        .expect(200)
    }

    /// Fetches the stored batches of a partition from `offset` (no wait), asserting success.
    pub async fn fetch_raw(&self, topic: &str, partition: u32, offset: u64) -> Vec<u8> {
        let url = format!(
            "{}/v1/topics/{topic}/partitions/{partition}/records?offset={offset}",
            self.base
        );
        let resp = guard(
            "raw fetch",
            self.client
                .get(url)
                .header(reqwest::header::ACCEPT, "application/vnd.sluice.batches")
                .send(),
        )
        .await
        .expect("raw fetch");
        assert_eq!(resp.status(), 200, "raw fetch");
        resp.bytes().await.expect("read body").to_vec()
    }

    /// Every record value of a partition from offset 0, as (offset, value) pairs.
    pub async fn values(&self, topic: &str, partition: u32) -> Vec<(u64, Value)> {
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let body = self.fetch(topic, partition, offset).await;
            let records = body["records"].as_array().cloned().unwrap_or_default();
            for r in &records {
                out.push((r["offset"].as_u64().expect("offset"), r["value"].clone()));
            }
            let next = body["next_offset"].as_u64().expect("next_offset");
            if records.is_empty()
                || next >= body["high_watermark"].as_u64().expect("high_watermark")
            {
                return out;
            }
            offset = next;
        }
    }

    /// The text of GET /metrics.
    pub async fn metrics(&self) -> String {
        match self.get("/metrics").await.expect(200) {
            Value::String(s) => s,
            other => panic!("metrics is not text: {other}"),
        }
    }
}

/// (partition, offset) pairs of a produce answer.
pub fn offsets(body: &Value) -> Vec<(u32, u64)> {
    body["offsets"]
        .as_array()
        .unwrap_or_else(|| panic!("no offsets in {body}"))
        .iter()
        .map(|o| {
            (
                o["partition"].as_u64().unwrap() as u32,
                o["offset"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Encodes one uncompressed batch holding these (key, value) records.
pub fn batch(records: &[(Option<&[u8]>, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let now = 1_700_000_000_000;
    let mut b = sluice_record::BatchBuilder::new(&mut out, 0, now);
    for (k, v) in records {
        b.push(now, *k, Some(v), &[]);
    }
    let _ = b.finish().expect("at least one record");
    out
}

/// The (first offset, last offset, length in bytes) of each of concatenated batches.
pub fn batch_spans(bytes: &[u8]) -> Vec<(u64, u64, usize)> {
    sluice_record::Batches::new(bytes)
        .map(|b| {
            let b = b.expect("whole batch");
            let h = b.header();
            (
                h.base_offset as u64,
                h.last_offset() as u64,
                b.as_bytes().len(),
            )
        })
        .collect()
}

/// A decoded record: (offset, key, value).
pub type Stored = (u64, Option<Vec<u8>>, Option<Vec<u8>>);

/// Decodes concatenated batches into (offset, key, value) triples.
pub fn decode_batches(bytes: &[u8]) -> Vec<Stored> {
    let mut out = Vec::new();
    for b in sluice_record::Batches::new(bytes) {
        let b = b.expect("whole batch");
        b.validate().expect("valid batch");
        let base = b.header().base_offset;
        for r in b.records().expect("records") {
            let r = r.expect("record");
            out.push((
                r.offset(base) as u64,
                r.key.map(<[u8]>::to_vec),
                r.value.map(<[u8]>::to_vec),
            ));
        }
    }
    out
}

pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket client.
pub struct Ws {
    pub stream: WsStream,
}

/// How a connection attempt ended.
pub enum Connect {
    Open(Box<Ws>),
    /// The upgrade was refused with this status and body.
    Refused(u16, Value),
}

impl Ws {
    /// Connects to the broker's /v1/ws (no hello yet).
    pub async fn connect(broker: &TestBroker) -> Ws {
        match Self::try_connect(broker).await {
            Connect::Open(ws) => *ws,
            Connect::Refused(status, body) => panic!("WebSocket upgrade refused: {status} {body}"),
        }
    }

    pub async fn try_connect(broker: &TestBroker) -> Connect {
        use tokio_tungstenite::tungstenite::Error;
        match guard(
            "WebSocket connect",
            tokio_tungstenite::connect_async(broker.ws_url()),
        )
        .await
        {
            Ok((stream, _)) => Connect::Open(Box::new(Ws { stream })),
            Err(Error::Http(resp)) => {
                let body = resp.body().as_deref().unwrap_or_default();
                let body = serde_json::from_slice(body).unwrap_or(Value::Null);
                Connect::Refused(resp.status().as_u16(), body)
            }
            Err(e) => panic!("WebSocket connect: {e}"),
        }
    }

    /// Connects with a tiny socket receive buffer, so a client that stops reading fills the
    /// broker's send path after little data.
    pub async fn connect_small_buffer(broker: &TestBroker) -> Ws {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let tcp = guard("TCP connect", socket.connect(broker.addr))
            .await
            .expect("connect");
        let (stream, _) = guard(
            "WebSocket handshake",
            tokio_tungstenite::client_async(broker.ws_url(), MaybeTlsStream::Plain(tcp)),
        )
        .await
        .expect("WebSocket handshake");
        Ws { stream }
    }

    pub async fn send_msg(&mut self, msg: Message) {
        guard("WebSocket send", self.stream.send(msg))
            .await
            .expect("WebSocket send");
    }

    pub async fn send_text(&mut self, text: &str) {
        self.send_msg(Message::text(text)).await;
    }

    pub async fn send_json(&mut self, v: &Value) {
        self.send_text(&v.to_string()).await;
    }

    /// Sends a request as a JSON text frame or a MessagePack binary frame.
    pub async fn send(&mut self, id: u64, request: Request, binary: bool) {
        let f = ClientFrame { id, request };
        let msg = if binary {
            Message::binary(frame::to_binary(&f))
        } else {
            Message::text(frame::to_json(&f))
        };
        self.send_msg(msg).await;
    }

    /// The next data or close message (pings and pongs skipped); panics if the stream ends.
    pub async fn next_msg(&mut self) -> Message {
        loop {
            let m = guard("WebSocket receive", self.stream.next())
                .await
                .expect("WebSocket stream ended")
                .expect("WebSocket receive");
            match m {
                Message::Ping(_) | Message::Pong(_) => continue,
                other => return other,
            }
        }
    }

    /// The next frame, decoded from whichever encoding it came in; with whether it was binary.
    pub async fn recv_any(&mut self) -> (ServerFrame, bool) {
        match self.next_msg().await {
            Message::Text(t) => (
                frame::from_json(t.as_str()).unwrap_or_else(|e| panic!("bad JSON frame {t}: {e}")),
                false,
            ),
            Message::Binary(b) => (frame::from_binary(&b).expect("bad binary frame"), true),
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next frame, which must be a JSON text frame.
    pub async fn recv(&mut self) -> ServerFrame {
        let (f, binary) = self.recv_any().await;
        assert!(!binary, "expected a text frame, got binary {f:?}");
        f
    }

    /// The next frame as raw JSON.
    pub async fn recv_json(&mut self) -> Value {
        match self.next_msg().await {
            Message::Text(t) => serde_json::from_str(t.as_str()).expect("JSON frame"),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The hello handshake (JSON or binary); asserts success.
    pub async fn hello(&mut self, binary: bool) {
        self.send(
            0,
            Request::Hello {
                version: PROTOCOL_VERSION,
                client: Some("tests".into()),
            },
            binary,
        )
        .await;
        let (f, was_binary) = self.recv_any().await;
        assert_eq!(was_binary, binary, "answered in the other encoding");
        assert_eq!(f.id, Some(0));
        match f.body {
            ServerBody::Ok(Answer::Hello(h)) => assert_eq!(h.version, PROTOCOL_VERSION),
            other => panic!("hello failed: {other:?}"),
        }
    }

    /// Sends a request and returns its answer; fails on any other frame in between.
    pub async fn call(
        &mut self,
        id: u64,
        request: Request,
        binary: bool,
    ) -> Result<Answer, ErrorBody> {
        self.send(id, request, binary).await;
        let (f, was_binary) = self.recv_any().await;
        assert_eq!(was_binary, binary, "answered in the other encoding");
        assert_eq!(f.id, Some(id), "expected the answer to {id}, got {f:?}");
        match f.body {
            ServerBody::Ok(a) => Ok(a),
            ServerBody::Error(e) => Err(e),
            ServerBody::Records(d) => panic!("unexpected push {d:?}"),
        }
    }

    /// Reads until the server closes; returns the close code, or None when the stream ended
    /// (or failed) without a close frame. Data frames before the close are skipped.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            match guard("WebSocket close", self.stream.next()).await {
                None | Some(Err(_)) => return None,
                Some(Ok(Message::Close(c))) => return c.map(|c| u16::from(c.code)),
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Asserts that no frame arrives within `ms` milliseconds (a bounded negative check).
    pub async fn silent_for(&mut self, ms: u64) {
        if let Ok(m) = tokio::time::timeout(Duration::from_millis(ms), self.stream.next()).await {
            panic!("expected nothing, got {m:?}");
        }
    }
}
