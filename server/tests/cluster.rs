//! Cluster mode with real broker processes on loopback: the metadata quorum elects a
//! controller, topics created through any broker exist on every broker with their replicas
//! spread, a killed broker loses its leaderships, a killed controller is replaced and
//! metadata changes carry on, a restarted broker catches up.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

struct Node {
    id: u32,
    port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

struct TestCluster {
    nodes: Vec<Node>,
    peers: String,
    http: reqwest::Client,
    /// One cluster at a time: thirteen clusters of 3-5 brokers at once on two cores starve
    /// the brokers' heartbeats into false failure detection, which is not what these tests
    /// are about. (Held until the brokers are killed.)
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Free loopback ports, found by binding port 0; they are released before the brokers bind
/// them, and a broker that loses the race fails to start, which `start` reports.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

const FAST: &[&str] = &[
    "--broker-heartbeat-interval-ms",
    "100",
    "--broker-session-timeout-ms",
    "800",
    "--controller-election-timeout-ms",
    "300",
];

impl TestCluster {
    fn start(n: u32) -> TestCluster {
        let serial = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
        let ports = free_ports(n as usize);
        let peers = (1..=n)
            .map(|i| format!("{i}@127.0.0.1:{}", ports[i as usize - 1]))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = TestCluster {
            nodes: Vec::new(),
            peers,
            http: reqwest::Client::new(),
            _one_at_a_time: serial,
        };
        for i in 1..=n {
            let mut node = Node {
                id: i,
                port: ports[i as usize - 1],
                child: None,
                dir: tempfile::tempdir().unwrap(),
            };
            c.spawn(&mut node);
            c.nodes.push(node);
        }
        c
    }

    fn spawn(&self, node: &mut Node) {
        self.spawn_with(node, &self.peers.clone(), &[]);
    }

    fn spawn_with(&self, node: &mut Node, peers: &str, extra: &[&str]) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["serve", "--node-id", &node.id.to_string(), "--peers", peers])
            .args(extra)
            .args([
                "--listen",
                &format!("127.0.0.1:{}", node.port),
                "--data-dir",
            ])
            .arg(node.dir.path().join("data"))
            .args(FAST)
            .env(
                "SLUICE_LOG",
                std::env::var("SLUICE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn sluice");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("broker {} exited before it was ready", node.id))
                .unwrap();
            if line.starts_with("sluice listening on http://") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        node.child = Some(child);
    }

    /// Starts a new broker that joins the running cluster (`--join`).
    fn join_new(&mut self) -> u32 {
        let id = self.nodes.len() as u32 + 1;
        let port = free_ports(1)[0];
        let peers = format!("{},{id}@127.0.0.1:{port}", self.peers);
        let mut node = Node {
            id,
            port,
            child: None,
            dir: tempfile::tempdir().unwrap(),
        };
        self.spawn_with(&mut node, &peers, &["--join"]);
        self.nodes.push(node);
        id
    }

    fn url(&self, id: u32, path: &str) -> String {
        format!(
            "http://127.0.0.1:{}{path}",
            self.nodes[id as usize - 1].port
        )
    }

    async fn get(&self, id: u32, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(id, path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    async fn post(&self, id: u32, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(id, path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    async fn status(&self, id: u32) -> Value {
        self.get(id, "/v1/cluster").await.1
    }

    /// Polls broker `id`'s view of the cluster until `ok` holds (or fails after 20 s).
    async fn wait_for(&self, id: u32, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = self.http.get(self.url(id, "/v1/cluster")).send().await
                && let Ok(v) = r.json::<Value>().await
            {
                if ok(&v) {
                    return v;
                }
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting for {what}: {v:#}"
                );
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until broker `id` sees a controller and `alive` brokers alive.
    async fn wait_ready(&self, id: u32, alive: usize) -> Value {
        self.wait_for(id, "a controller and live brokers", |v| {
            !v["controller"].is_null()
                && v["brokers"]
                    .as_array()
                    .is_some_and(|b| b.iter().filter(|b| b["alive"] == true).count() == alive)
        })
        .await
    }

    /// Polls `GET path` on broker `id` until it answers `status` (metadata reaches the other
    /// brokers as they apply it, a moment after the broker that was asked).
    async fn wait_http(&self, id: u32, path: &str, status: u16) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (s, body) = self.get(id, path).await;
            if s == status {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "broker {id}: GET {path} answers {s}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn kill(&mut self, id: u32) {
        let node = &mut self.nodes[id as usize - 1];
        let mut child = node.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn restart(&mut self, id: u32) {
        let mut node = std::mem::replace(
            &mut self.nodes[id as usize - 1],
            Node {
                id,
                port: 0,
                child: None,
                dir: tempfile::tempdir().unwrap(),
            },
        );
        self.spawn(&mut node);
        self.nodes[id as usize - 1] = node;
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn leaders(topic: &Value) -> Vec<Option<u64>> {
    topic["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["leader"].as_u64())
        .collect()
}

fn topic<'a>(status: &'a Value, name: &str) -> Option<&'a Value> {
    status["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
}

#[tokio::test]
async fn three_brokers_share_topics_with_replicas_spread_evenly() {
    let c = TestCluster::start(3);
    for id in 1..=3 {
        c.wait_ready(id, 3).await;
    }
    // Created through broker 2, with the broker's default replication factor (3 of 3).
    let (s, body) = c
        .post(2, "/v1/topics", json!({"name": "orders", "partitions": 6}))
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["replication_factor"], 3);
    for id in 1..=3 {
        let t = c.wait_http(id, "/v1/topics/orders", 200).await;
        // Descriptions name each partition's leader, replicas and ISR (the console shows them).
        for p in t["partitions"].as_array().unwrap() {
            assert!(p["leader"].is_u64(), "{p}");
            assert_eq!(p["replicas"].as_array().map(Vec::len), Some(3), "{p}");
            assert!(p["replica_role"].is_string(), "{p}");
        }
        assert_eq!(t["partitions"].as_array().unwrap().len(), 6);
    }
    let status = c.status(1).await;
    let t = topic(&status, "orders").expect("topic in the metadata");
    let mut led: BTreeMap<u64, usize> = BTreeMap::new();
    for p in t["partitions"].as_array().unwrap() {
        let replicas: Vec<u64> = serde_json::from_value(p["replicas"].clone()).unwrap();
        let mut sorted = replicas.clone();
        sorted.sort();
        assert_eq!(sorted, vec![1, 2, 3], "{p}");
        assert_eq!(p["leader"].as_u64(), Some(replicas[0]));
        assert_eq!(p["leader_epoch"], 0);
        *led.entry(replicas[0]).or_default() += 1;
    }
    assert_eq!(
        led.values().copied().collect::<Vec<_>>(),
        vec![2, 2, 2],
        "{led:?}"
    );

    // `sluice cluster status` shows the same, for humans and as JSON.
    let url = c.url(2, "");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["cluster", "status", "--url", &url])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("controller"), "{text}");
    assert!(text.contains("under-replicated partitions: 0"), "{text}");
    assert_eq!(text.matches("orders").count(), 6, "{text}");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["cluster", "status", "--json", "--url", &url])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["brokers"].as_array().unwrap().len(), 3);

    // Errors the cluster gives: too many replicas, an existing name.
    let (s, e) = c
        .post(
            3,
            "/v1/topics",
            json!({"name": "big", "replication_factor": 4}),
        )
        .await;
    assert_eq!(
        (s, e["code"].as_str()),
        (400, Some("invalid_replication_factor")),
        "{e}"
    );
    let (s, e) = c.post(1, "/v1/topics", json!({"name": "orders"})).await;
    assert_eq!((s, e["code"].as_str()), (409, Some("topic_exists")), "{e}");

    // Settings changed and the topic deleted through other brokers reach every broker.
    let r = c
        .http
        .patch(c.url(3, "/v1/topics/orders"))
        .json(&json!({"configs": {"retention.ms": "3600000"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    for id in 1..=3 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, t) = c.get(id, "/v1/topics/orders").await;
            if t["configs"]["retention.ms"] == "3600000" {
                break;
            }
            assert!(Instant::now() < deadline, "broker {id}: {t}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let r = c
        .http
        .delete(c.url(1, "/v1/topics/orders"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    for id in 1..=3 {
        c.wait_for(id, "the topic gone", |v| topic(v, "orders").is_none())
            .await;
        c.wait_http(id, "/v1/topics/orders", 404).await;
    }
}

#[tokio::test]
async fn killed_brokers_lose_leadership_and_a_new_controller_carries_on() {
    let mut c = TestCluster::start(3);
    let status = c.wait_ready(1, 3).await;
    let (s, body) = c
        .post(1, "/v1/topics", json!({"name": "events", "partitions": 3}))
        .await;
    assert_eq!(s, 201, "{body}");
    let controller = status["controller"].as_u64().unwrap() as u32;
    let survivor = if controller == 1 { 2 } else { 1 };

    // SIGKILL the controller: a new one is elected among the others, the dead broker is
    // marked dead and its partitions get new leaders at a higher epoch.
    let killed_at = Instant::now();
    c.kill(controller);
    let after = c
        .wait_for(
            survivor,
            "a new controller and the dead broker noticed",
            |v| {
                v["controller"]
                    .as_u64()
                    .is_some_and(|id| id != controller as u64)
                    && v["brokers"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|b| b["id"] == controller && b["alive"] == false)
            },
        )
        .await;
    eprintln!(
        "controller {controller} killed: new controller {} and leaders moved after {:?}",
        after["controller"],
        killed_at.elapsed()
    );
    let t = topic(&after, "events").unwrap();
    for p in t["partitions"].as_array().unwrap() {
        assert_ne!(p["leader"].as_u64(), Some(controller as u64), "{p}");
        assert!(p["leader"].is_u64(), "{p}");
        let isr: Vec<u64> = serde_json::from_value(p["isr"].clone()).unwrap();
        assert!(!isr.contains(&(controller as u64)), "{p}");
    }
    assert!(
        t["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["leader_epoch"] == 1),
        "the partition the dead broker led has a new epoch: {t}"
    );

    // Metadata changes continue: a new topic lands on the two live brokers only.
    let (s, body) = c
        .post(
            survivor,
            "/v1/topics",
            json!({"name": "later", "partitions": 2}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["replication_factor"], 2);
    let now = c.status(survivor).await;
    for p in topic(&now, "later").unwrap()["partitions"]
        .as_array()
        .unwrap()
    {
        let replicas: Vec<u64> = serde_json::from_value(p["replicas"].clone()).unwrap();
        assert!(!replicas.contains(&(controller as u64)), "{p}");
    }

    // The killed broker restarts on its data: it is alive again and has the topic created
    // while it was down.
    c.restart(controller);
    c.wait_ready(controller, 3).await;
    c.wait_http(controller, "/v1/topics/later", 200).await;
    assert_eq!(
        leaders(topic(&c.status(controller).await, "events").unwrap()).len(),
        3
    );
}

#[test]
fn cluster_flags_are_checked_with_errors_that_say_what_to_do() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("serve")
            .args(args)
            .args(["--data-dir", "/nonexistent/never-created"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["--peers", "1@127.0.0.1:9401", "--listen", "127.0.0.1:9401"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--node-id"), "{err}");
    let (code, err) = run(&["--node-id", "1"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--peers"), "{err}");
    let (code, err) = run(&[
        "--node-id",
        "4",
        "--peers",
        "1@127.0.0.1:9401",
        "--listen",
        "127.0.0.1:9401",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("not in --peers"), "{err}");
    let (code, err) = run(&["--node-id", "1", "--peers", "1@localhost"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("HOST:PORT"), "{err}");
}

#[tokio::test]
async fn a_single_broker_refuses_replication() {
    let b = common::TestBroker::start(&[]);
    let r = reqwest::Client::new()
        .post(b.url("/v1/topics"))
        .json(&json!({"name": "t", "replication_factor": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["code"], "invalid_replication_factor");
    assert!(e["message"].as_str().unwrap().contains("--peers"), "{e}");
}

/// The leader of `topic`/`partition` as broker `via` sees it.
async fn leader_of(c: &TestCluster, via: u32, topic_name: &str, partition: usize) -> Option<u32> {
    let s = c.status(via).await;
    topic(&s, topic_name)?["partitions"][partition]["leader"]
        .as_u64()
        .map(|l| l as u32)
}

/// Waits until every partition of `topic` has `replicas` in-sync replicas, as broker `via`
/// sees it.
async fn wait_in_sync(c: &TestCluster, via: u32, topic_name: &str, replicas: usize) -> Value {
    c.wait_for(via, "full ISRs", |v| {
        topic(v, topic_name).is_some_and(|t| {
            t["partitions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["isr"].as_array().map(Vec::len) == Some(replicas))
        })
    })
    .await
}

/// The partition's segment files on broker `id`, concatenated in offset order.
fn log_bytes(c: &TestCluster, id: u32, topic_name: &str) -> Vec<u8> {
    let dir = c.nodes[id as usize - 1]
        .dir
        .path()
        .join("data/topics")
        .join(topic_name)
        .join("0");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect()
}

#[tokio::test]
async fn acknowledged_records_survive_a_leader_killed_mid_write() {
    let mut c = TestCluster::start(3);
    c.wait_ready(1, 3).await;
    let (s, body) = c
        .post(
            1,
            "/v1/topics",
            json!({"name": "r", "partitions": 1, "replication_factor": 3}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    wait_in_sync(&c, 1, "r", 3).await;
    let first_leader = leader_of(&c, 1, "r", 0).await.unwrap();

    // Produce with acks=all, one record per request, following the leader on errors; keep
    // every acknowledged (offset, value).
    let mut acked: Vec<(u64, String)> = Vec::new();
    let mut leader = first_leader;
    let mut killed_at: Option<Instant> = None;
    let mut failover = None;
    let mut i = 0;
    while acked.len() < 300 {
        if acked.len() == 150 && killed_at.is_none() {
            c.kill(first_leader);
            killed_at = Some(Instant::now());
        }
        let value = format!("v{i}");
        let r = c
            .http
            .post(c.url(leader, "/v1/topics/r/records?acks=all"))
            .timeout(Duration::from_secs(5))
            .json(&json!({"records": [{"value": value}]}))
            .send()
            .await;
        match r {
            Ok(r) if r.status() == 200 => {
                let v: Value = r.json().await.unwrap();
                acked.push((v["offsets"][0]["offset"].as_u64().unwrap(), value));
                i += 1;
                if let (Some(k), None) = (killed_at, failover) {
                    failover = Some(k.elapsed());
                }
            }
            _ => {
                // Not the leader, or gone: ask a live broker who leads now.
                let via = (1..=3)
                    .find(|b| *b != first_leader || killed_at.is_none())
                    .unwrap();
                if let Some(l) = leader_of(&c, via, "r", 0).await
                    && (killed_at.is_none() || l != first_leader)
                {
                    leader = l;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    let failover = failover.expect("writes resumed after the kill");
    eprintln!("leader {first_leader} killed: writes resumed on {leader} after {failover:?}");
    assert_ne!(leader, first_leader);

    // Every acknowledged record is at its offset on the new leader.
    let mut offsets: Vec<u64> = acked.iter().map(|(o, _)| *o).collect();
    offsets.sort();
    offsets.dedup();
    assert_eq!(offsets.len(), acked.len(), "two acks for one offset");
    let mut at = 0;
    let mut stored = BTreeMap::new();
    loop {
        let (s, body) = c
            .get(
                leader,
                &format!("/v1/topics/r/partitions/0/records?offset={at}&wait_ms=0"),
            )
            .await;
        assert_eq!(s, 200, "{body}");
        // An empty answer leaves `records` out.
        let Some(recs) = body["records"].as_array().filter(|r| !r.is_empty()) else {
            break;
        };
        for r in recs {
            stored.insert(r["offset"].as_u64().unwrap(), r["value"].clone());
        }
        at = body["next_offset"].as_u64().unwrap();
    }
    for (offset, value) in &acked {
        assert_eq!(
            stored.get(offset).and_then(|v| v.as_str()),
            Some(value.as_str()),
            "acknowledged record at {offset} lost or changed"
        );
    }

    // The killed broker comes back: it truncates, catches up and rejoins the ISR; then all
    // three logs are byte-identical.
    c.restart(first_leader);
    let survivor = (1..=3).find(|b| *b != first_leader).unwrap();
    wait_in_sync(&c, survivor, "r", 3).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ends: Vec<Value> = log_ends_of_r(&c).await;
        if ends.iter().all(|e| *e == ends[0]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replicas never converged: {ends:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logs: Vec<Vec<u8>> = (1..=3).map(|id| log_bytes(&c, id, "r")).collect();
    assert!(!logs[0].is_empty());
    assert_eq!(logs[0], logs[1], "replicas 1 and 2 differ");
    assert_eq!(logs[0], logs[2], "replicas 1 and 3 differ");
}

/// (log end, high watermark) of r/0 on each broker.
async fn log_ends_of_r(c: &TestCluster) -> Vec<Value> {
    let mut out = Vec::new();
    for id in 1..=3 {
        let (_, t) = c.get(id, "/v1/topics/r").await;
        out.push(json!([
            t["partitions"][0]["log_end_offset"],
            t["partitions"][0]["high_watermark"]
        ]));
    }
    out
}

#[tokio::test]
async fn min_insync_replicas_refuses_acks_all_but_not_acks_1() {
    // Five brokers, so the metadata quorum survives two of them dying.
    let mut c = TestCluster::start(5);
    c.wait_ready(1, 5).await;
    let (s, body) = c
        .post(
            1,
            "/v1/topics",
            json!({"name": "m", "partitions": 1, "replication_factor": 3,
                   "configs": {"min.insync.replicas": "2"}}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let status = wait_in_sync(&c, 1, "m", 3).await;
    let p = &topic(&status, "m").unwrap()["partitions"][0];
    let leader = p["leader"].as_u64().unwrap() as u32;
    let followers: Vec<u32> = p["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_u64().unwrap() as u32)
        .filter(|r| *r != leader)
        .collect();
    let base = c.url(leader, "/v1/topics/m/records?acks=");
    let http = c.http.clone();
    let produce = |acks: &'static str| {
        let url = format!("{base}{acks}");
        let http = http.clone();
        async move {
            let r = http
                .post(url)
                .json(&json!({"records": [{"value": "x"}]}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    c.wait_http(leader, "/v1/topics/m", 200).await;
    assert_eq!(produce("all").await.0, 200);
    for f in &followers {
        c.kill(*f);
    }
    c.wait_for(leader, "the ISR down to the leader", |v| {
        topic(v, "m").is_some_and(|t| t["partitions"][0]["isr"].as_array().map(Vec::len) == Some(1))
    })
    .await;
    // The leader applies the smaller ISR a moment after the controller commits it; a write
    // taken before that completes with the ISR of its time (as in Kafka). Then: refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (s, e) = produce("all").await;
        if s == 503 {
            assert_eq!(e["code"], "not_enough_replicas", "{e}");
            break;
        }
        assert!(s == 200 && Instant::now() < deadline, "{s}: {e}");
    }
    let (s, body) = produce("1").await;
    assert_eq!(s, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broker_serves_clients_by_forwarding_to_partition_leaders() {
    use futures_util::StreamExt;
    use sluice_client::{Client, ConsumerOptions, ProducerOptions, ProducerRecord, StartFrom};

    let c = TestCluster::start(3);
    c.wait_ready(1, 3).await;
    let (s, body) = c
        .post(1, "/v1/topics", json!({"name": "f", "partitions": 3}))
        .await;
    assert_eq!(s, 201, "{body}");
    wait_in_sync(&c, 1, "f", 3).await;
    // Produce through every broker with the Rust SDK: each leads one partition, so two of
    // three partitions' writes are forwarded by each.
    let mut sent = 0;
    for id in 1..=3 {
        let url = format!("ws://127.0.0.1:{}/v1/ws", c.nodes[id as usize - 1].port);
        let client = Client::connect(&url).await.unwrap();
        c.wait_http(id, "/v1/topics/f", 200).await;
        let producer = client.producer(ProducerOptions::new());
        for i in 0..20 {
            let h = producer
                .send(ProducerRecord::new("f", format!("{id}-{i}")).with_key(format!("k{i}")))
                .await
                .unwrap();
            let m = h.await.unwrap();
            assert!(m.offset.is_some());
            sent += 1;
        }
    }
    // Consume everything through broker 2 (broadcast): fetches of partitions it does not lead
    // are forwarded too.
    let url = format!("ws://127.0.0.1:{}/v1/ws", c.nodes[1].port);
    let client = Client::connect(&url).await.unwrap();
    let mut consumer = client
        .consumer(ConsumerOptions::new(["f"]).start(StartFrom::Earliest))
        .await
        .unwrap();
    let mut got = std::collections::BTreeSet::new();
    while got.len() < sent {
        let r = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {sent} records arrived", got.len()))
            .unwrap()
            .unwrap();
        got.insert(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
    }
    assert_eq!(got.len(), 60);
}

/// Leader kills in a loop under concurrent producers; afterwards a checker compares every
/// acknowledged record with the log and the replicas with each other. Rounds:
/// `SLUICE_CHAOS_ROUNDS` (default 20).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_rounds_lose_no_acknowledged_record() {
    let rounds: usize = std::env::var("SLUICE_CHAOS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut c = TestCluster::start(3);
    c.wait_ready(1, 3).await;
    let (s, body) = c
        .post(
            1,
            "/v1/topics",
            json!({"name": "chaos", "partitions": 1, "replication_factor": 3}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    wait_in_sync(&c, 1, "chaos", 3).await;

    let bases: Vec<String> = (1..=3).map(|id| c.url(id, "")).collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut producers = Vec::new();
    for p in 0..3 {
        let bases = bases.clone();
        let stop = stop.clone();
        let http = reqwest::Client::new();
        producers.push(tokio::spawn(async move {
            let mut acked: Vec<(u64, String)> = Vec::new();
            let mut attempts = 0u64;
            let mut seq = 0u64;
            let mut b = p;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let value = format!("p{p}-{seq}");
                attempts += 1;
                // Any live broker will do: writes are forwarded to the leader.
                let r = http
                    .post(format!("{}/v1/topics/chaos/records?acks=all", bases[b % 3]))
                    .timeout(Duration::from_secs(5))
                    .json(&json!({"records": [{"value": value}]}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        let v: Value = r.json().await.unwrap();
                        acked.push((v["offsets"][0]["offset"].as_u64().unwrap(), value));
                        seq += 1;
                    }
                    _ => {
                        b += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            (acked, attempts)
        }));
    }

    let mut failovers = Vec::new();
    for round in 0..rounds {
        let live = (1..=3)
            .find(|id| c.nodes[*id as usize - 1].child.is_some())
            .unwrap();
        let leader = c
            .wait_for(live, "a leader", |v| {
                topic(v, "chaos").is_some_and(|t| t["partitions"][0]["leader"].is_u64())
            })
            .await;
        let leader = topic(&leader, "chaos").unwrap()["partitions"][0]["leader"]
            .as_u64()
            .unwrap() as u32;
        // Let some writes land on this leader first.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let killed_at = Instant::now();
        c.kill(leader);
        let other = (1..=3).find(|id| *id != leader).unwrap();
        c.wait_for(other, "a new leader", |v| {
            topic(v, "chaos").is_some_and(|t| {
                t["partitions"][0]["leader"]
                    .as_u64()
                    .is_some_and(|l| l != leader as u64)
            })
        })
        .await;
        failovers.push(killed_at.elapsed());
        c.restart(leader);
        wait_in_sync(&c, other, "chaos", 3).await;
        eprintln!(
            "round {round}: killed leader {leader}, new leader after {:?}",
            failovers.last().unwrap()
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = Vec::new();
    let mut attempts = 0;
    for p in producers {
        let (a, n) = p.await.unwrap();
        acked.extend(a);
        attempts += n;
    }

    // Wait until the three replicas agree on log end and high watermark.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (leo, hw) = loop {
        let mut ends = Vec::new();
        for id in 1..=3 {
            let (_, t) = c.get(id, "/v1/topics/chaos").await;
            let p = &t["partitions"][0];
            ends.push((p["log_end_offset"].as_u64(), p["high_watermark"].as_u64()));
        }
        if ends.iter().all(|e| *e == ends[0] && e.0 == e.1) {
            break (ends[0].0.unwrap(), ends[0].1.unwrap());
        }
        assert!(
            Instant::now() < deadline,
            "replicas never converged: {ends:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let leader = leader_of(&c, 1, "chaos", 0).await.unwrap();
    let mut stored: BTreeMap<u64, String> = BTreeMap::new();
    let mut at = 0;
    while at < hw {
        let (s, body) = c
            .get(
                leader,
                &format!("/v1/topics/chaos/partitions/0/records?offset={at}&wait_ms=0"),
            )
            .await;
        assert_eq!(s, 200, "{body}");
        for r in body["records"].as_array().into_iter().flatten() {
            stored.insert(
                r["offset"].as_u64().unwrap(),
                r["value"].as_str().unwrap().to_string(),
            );
        }
        at = body["next_offset"].as_u64().unwrap();
    }
    let lost: Vec<&(u64, String)> = acked
        .iter()
        .filter(|(o, v)| stored.get(o) != Some(v))
        .collect();
    let mut seen = std::collections::HashMap::new();
    for v in stored.values() {
        *seen.entry(v.clone()).or_insert(0) += 1;
    }
    let duplicates = seen.values().filter(|n| **n > 1).count();
    let logs: Vec<Vec<u8>> = (1..=3).map(|id| log_bytes(&c, id, "chaos")).collect();
    let differing = (1..3).filter(|i| logs[*i] != logs[0]).count();
    let mut f = failovers.clone();
    f.sort();
    eprintln!(
        "{rounds} rounds: {} acknowledged of {attempts} attempts, {leo} records stored, lost {}, \
         duplicated (retried after an unacknowledged write) {duplicates}, replicas differing {differing}; \
         failover median {:?}, max {:?}",
        acked.len(),
        lost.len(),
        f.get(f.len() / 2),
        f.last()
    );
    assert!(lost.is_empty(), "lost acknowledged records: {lost:?}");
    assert_eq!(differing, 0, "replica logs differ below the high watermark");
    assert!(acked.len() > rounds, "too few writes to mean anything");
}

/// Committed offsets of `group` as broker `via` answers (None while it cannot).
async fn committed(c: &TestCluster, via: u32, group: &str) -> Option<BTreeMap<u64, u64>> {
    let (s, body) = c.get(via, &format!("/v1/groups/{group}/offsets")).await;
    (s == 200).then(|| {
        body["offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["partition"].as_u64().unwrap(),
                    o["offset"].as_u64().unwrap(),
                )
            })
            .collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_keeps_consuming_through_a_coordinator_failover_and_loses_no_commit() {
    use futures_util::StreamExt;
    use sluice_client::{Client, ConsumerOptions, OffsetReset};

    let mut c = TestCluster::start(3);
    c.wait_ready(1, 3).await;
    let (s, body) = c
        .post(1, "/v1/topics", json!({"name": "jobs", "partitions": 2}))
        .await;
    assert_eq!(s, 201, "{body}");
    wait_in_sync(&c, 1, "jobs", 3).await;
    let http = c.http.clone();
    let produce = |base: String, n: usize, from: usize| {
        let url = format!("{base}/v1/topics/jobs/records?acks=all");
        let http = http.clone();
        async move {
            for i in from..from + n {
                // Retriable answers (503: a leader moving, metadata still spreading) are
                // retried, as any client does.
                let deadline = Instant::now() + Duration::from_secs(20);
                loop {
                    let r = http
                        .post(&url)
                        .json(&json!({"records": [{"key": format!("k{i}"), "value": format!("job-{i}")}]}))
                        .send()
                        .await
                        .unwrap();
                    let status = r.status().as_u16();
                    if status == 200 {
                        break;
                    }
                    let body = r.text().await.unwrap();
                    assert!(
                        status == 503 && Instant::now() < deadline,
                        "{status}: {body}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    };
    produce(c.url(1, ""), 60, 0).await;

    // The group's coordinator: the leader of its __consumer_offsets partition. The first
    // group request creates that topic (replicated) through the controller.
    assert!(committed(&c, 2, "workers").await.is_some());
    let status = c
        .wait_for(1, "__consumer_offsets with leaders", |v| {
            topic(v, "__consumer_offsets").is_some_and(|t| {
                t["partitions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|p| p["leader"].is_u64() && p["isr"].as_array().map(Vec::len) == Some(3))
            })
        })
        .await;
    let offsets = topic(&status, "__consumer_offsets").unwrap();
    let n = offsets["partitions"].as_array().unwrap().len() as u32;
    let p = sluice_protocol::partitioner::partition_for_key(b"workers", n);
    let coordinator = offsets["partitions"][p as usize]["leader"]
        .as_u64()
        .unwrap() as u32;
    let member_broker = (1..=3).find(|b| *b != coordinator).unwrap();
    eprintln!(
        "group coordinator: broker {coordinator}; the member talks to broker {member_broker}"
    );

    let url = format!(
        "ws://127.0.0.1:{}/v1/ws",
        c.nodes[member_broker as usize - 1].port
    );
    let client = Client::connect(&url).await.unwrap();
    let mut consumer = client
        .consumer(
            ConsumerOptions::new(["jobs"])
                .group("workers")
                .auto_offset_reset(OffsetReset::Earliest)
                .auto_commit_interval_ms(None)
                .session_timeout_ms(3_000),
        )
        .await
        .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 60 {
        let r = tokio::time::timeout(Duration::from_secs(15), consumer.next())
            .await
            .expect("records arrive")
            .unwrap()
            .unwrap();
        seen.insert(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
    }
    consumer.commit().await.unwrap();
    let before = committed(&c, member_broker, "workers").await.unwrap();
    assert_eq!(before.values().sum::<u64>(), 60, "{before:?}");

    // SIGKILL the coordinator: a new leader of the offsets partition takes over the group
    // with every committed offset.
    c.kill(coordinator);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(now) = committed(&c, member_broker, "workers").await
            && !now.is_empty()
        {
            assert_eq!(now, before, "committed offsets changed across the failover");
            break;
        }
        assert!(Instant::now() < deadline, "no coordinator took over");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The member keeps consuming (it rejoins the new coordinator) and commits again.
    produce(c.url(member_broker, ""), 40, 60).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 100 {
        assert!(
            Instant::now() < deadline,
            "only {} of 100 consumed",
            seen.len()
        );
        if let Ok(Some(Ok(r))) = tokio::time::timeout(Duration::from_secs(1), consumer.next()).await
        {
            seen.insert(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // The member finds out about the new coordinator at its next heartbeat, rejoins and
        // restarts its partitions from the committed offsets (records after them come again,
        // at least once): keep consuming while committing.
        while let Ok(Some(Ok(_))) =
            tokio::time::timeout(Duration::from_millis(200), consumer.next()).await
        {}
        let r = consumer.commit().await;
        let now = committed(&c, member_broker, "workers").await;
        if r.is_ok() && now.as_ref().is_some_and(|o| o.values().sum::<u64>() == 100) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the commit after the failover never landed: last commit {r:?}, committed {now:?}, assignment {:?}",
            consumer.assignment()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_plugin_uploaded_to_one_broker_reaches_every_broker() {
    let c = TestCluster::start(3);
    c.wait_ready(1, 3).await;
    let module = wat::parse_file(format!(
        "{}/../plugins/examples/wat/drop_tombstones.wat",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let r = c
        .http
        .put(c.url(1, "/v1/plugins/no-tombstones"))
        .body(module)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let sha = c.wait_http(1, "/v1/plugins/no-tombstones", 200).await["sha256"].clone();
    for id in 2..=3 {
        let d = c.wait_http(id, "/v1/plugins/no-tombstones", 200).await;
        assert_eq!(d["sha256"], sha, "broker {id}");
    }
    // Deleted through another broker: gone everywhere.
    let r = c
        .http
        .delete(c.url(3, "/v1/plugins/no-tombstones"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    for id in 1..=3 {
        c.wait_http(id, "/v1/plugins/no-tombstones", 404).await;
    }
}

fn replicas_of(status: &Value, name: &str, partition: usize) -> (Vec<u64>, Vec<u64>, bool) {
    let p = &topic(status, name).unwrap()["partitions"][partition];
    let ids = |v: &Value| -> Vec<u64> {
        let mut x: Vec<u64> = serde_json::from_value(v.clone()).unwrap();
        x.sort();
        x
    };
    (ids(&p["replicas"]), ids(&p["isr"]), p["target"].is_null())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_move_by_reassignment_and_off_a_decommissioned_broker() {
    let c = TestCluster::start(3);
    c.wait_ready(1, 3).await;
    let (s, body) = c
        .post(
            1,
            "/v1/topics",
            json!({"name": "mv", "partitions": 1, "replication_factor": 2}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let status = c
        .wait_for(1, "mv in sync", |v| {
            topic(v, "mv")
                .is_some_and(|t| t["partitions"][0]["isr"].as_array().map(Vec::len) == Some(2))
        })
        .await;
    let (old, _, _) = replicas_of(&status, "mv", 0);
    let spare = (1..=3u64).find(|b| !old.contains(b)).unwrap();
    let keep = old[0];
    c.wait_http(keep as u32, "/v1/topics/mv", 200).await;
    for i in 0..50 {
        let (s, body) = c
            .post(
                keep as u32,
                "/v1/topics/mv/records?acks=all",
                json!({"records": [{"value": format!("m{i}")}]}),
            )
            .await;
        assert_eq!(s, 200, "{body}");
    }
    // Move the partition to [keep, spare] with the CLI.
    let new = format!("{keep},{spare}");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "partition",
            "reassign",
            "mv",
            "0",
            "--replicas",
            &new,
            "--url",
            &c.url(1, ""),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut want = vec![keep, spare];
    want.sort();
    c.wait_for(1, "the move done", |v| {
        let (r, isr, done) = replicas_of(v, "mv", 0);
        done && r == want && isr == want
    })
    .await;
    // The new replica has the same log as the one that stayed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while log_bytes(&c, keep as u32, "mv") != log_bytes(&c, spare as u32, "mv") {
        assert!(Instant::now() < deadline, "the new replica never matched");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!log_bytes(&c, spare as u32, "mv").is_empty());

    // Decommission a broker: every replica it holds moves elsewhere.
    let (s, body) = c
        .post(
            1,
            "/v1/topics",
            json!({"name": "dc", "partitions": 3, "replication_factor": 2}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    wait_in_sync(&c, 1, "dc", 2).await;
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "cluster",
            "decommission",
            "3",
            "--json",
            "--url",
            &c.url(2, ""),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = c
        .wait_for(1, "broker 3 drained", |v| {
            v["topics"].as_array().unwrap().iter().all(|t| {
                t["partitions"].as_array().unwrap().iter().all(|p| {
                    let r: Vec<u64> = serde_json::from_value(p["replicas"].clone()).unwrap();
                    let isr: Vec<u64> = serde_json::from_value(p["isr"].clone()).unwrap();
                    !r.contains(&3) && p["target"].is_null() && isr.len() == r.len()
                })
            })
        })
        .await;
    let b3 = status["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == 3)
        .unwrap();
    assert_eq!(b3["decommissioning"], true);
    // A new topic avoids the draining broker.
    let (s, body) = c
        .post(
            1,
            "/v1/topics",
            json!({"name": "after", "partitions": 4, "replication_factor": 2}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let now = c.status(1).await;
    for p in topic(&now, "after").unwrap()["partitions"]
        .as_array()
        .unwrap()
    {
        assert!(
            !p["replicas"].as_array().unwrap().contains(&json!(3)),
            "{p}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_broker_joins_the_quorum_and_takes_replicas() {
    let mut c = TestCluster::start(3);
    c.wait_ready(1, 3).await;
    let id = c.join_new();
    // It becomes a voter of the metadata quorum and a live broker everyone sees.
    for via in [1, id] {
        c.wait_ready(via, 4).await;
    }
    let status = c.status(1).await;
    let (s, body) = c
        .post(
            id,
            "/v1/topics",
            json!({"name": "wide", "partitions": 8, "replication_factor": 2}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let now = c.status(1).await;
    let on_new = topic(&now, "wide").unwrap()["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["replicas"].as_array().unwrap().contains(&json!(id)))
        .count();
    assert_eq!(
        on_new, 4,
        "8 partitions x 2 replicas over 4 brokers: 4 on the new one"
    );
    // With four voters, the quorum survives one broker down: kill the controller and change
    // metadata again.
    let controller = status["controller"].as_u64().unwrap() as u32;
    c.kill(controller);
    let other = (1..=id).find(|b| *b != controller).unwrap();
    c.wait_for(other, "a new controller", |v| {
        v["controller"]
            .as_u64()
            .is_some_and(|x| x != controller as u64)
    })
    .await;
    let (s, body) = c
        .post(
            other,
            "/v1/topics",
            json!({"name": "later", "partitions": 1}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdk_client_with_a_bootstrap_list_survives_its_broker_dying() {
    use futures_util::StreamExt;
    use sluice_client::{Client, ConsumerOptions, ProducerOptions, ProducerRecord, StartFrom};

    let mut c = TestCluster::start(3);
    c.wait_ready(1, 3).await;
    let (s, body) = c
        .post(1, "/v1/topics", json!({"name": "boot", "partitions": 2}))
        .await;
    assert_eq!(s, 201, "{body}");
    wait_in_sync(&c, 1, "boot", 3).await;
    for id in 1..=3 {
        c.wait_http(id, "/v1/topics/boot", 200).await;
    }
    let list = (1..=3)
        .map(|id| format!("ws://127.0.0.1:{}", c.nodes[id - 1].port))
        .collect::<Vec<_>>()
        .join(",");
    let client = Client::connect(&list).await.unwrap();
    let first = client.url().to_string();
    let connected = (1..=3u32)
        .find(|id| first.contains(&format!(":{}/", c.nodes[*id as usize - 1].port)))
        .expect("connected to one of the list");
    let producer = client.producer(ProducerOptions::new());
    let mut consumer = client
        .consumer(ConsumerOptions::new(["boot"]).start(StartFrom::Earliest))
        .await
        .unwrap();
    let mut sent = 0;
    for i in 0..20 {
        producer
            .send(ProducerRecord::new("boot", format!("a{i}")).with_key(format!("k{i}")))
            .await
            .unwrap()
            .await
            .unwrap();
        sent += 1;
    }
    // The broker the client talks to dies: it moves on to the next one in the list.
    c.kill(connected);
    for i in 0..20 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = producer
                .send(ProducerRecord::new("boot", format!("b{i}")).with_key(format!("k{i}")))
                .await;
            match r {
                Ok(h) => match h.await {
                    Ok(_) => break,
                    Err(e) => assert!(e.is_retriable() && Instant::now() < deadline, "{e}"),
                },
                Err(e) => assert!(e.is_retriable() && Instant::now() < deadline, "{e}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sent += 1;
    }
    assert_ne!(client.url(), first, "the client moved to another broker");
    let mut got = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < sent {
        assert!(
            Instant::now() < deadline,
            "only {} of {sent} records arrived",
            got.len()
        );
        if let Ok(Some(Ok(r))) = tokio::time::timeout(Duration::from_secs(1), consumer.next()).await
        {
            got.insert(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
}
