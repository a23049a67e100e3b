//! The command-line client against a real broker: `sluice serve` on a free port, then
//! `sluice topic|produce|consume|offsets` as a user would run them.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use sluice_protocol::partitioner::partition_for_key;

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// A broker on a free port with its own data directory; killed when dropped.
struct Broker {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
    _stdout: BufReader<ChildStdout>,
}

impl Broker {
    fn start() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("broker.log")).unwrap();
        let mut child = Command::new(SLUICE)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--log",
                "warn",
                "--data-dir",
            ])
            .arg(dir.path().join("data"))
            .env_remove("SLUICE_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        // Wait for the readiness line, which carries the port.
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut line = String::new();
            let n = stdout.read_line(&mut line).unwrap_or(0);
            let _ = tx.send(if n == 0 { None } else { Some(line) });
            stdout
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).ok().flatten();
        let stdout = reader.join().unwrap();
        let Some(line) = line else {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.path().join("broker.log")).unwrap_or_default();
            panic!("the broker did not start:\n{log}");
        };
        let addr = line
            .strip_prefix("sluice listening on http://")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected readiness line {line:?}"));
        Broker {
            url: format!("http://{addr}"),
            child,
            dir,
            _stdout: stdout,
        }
    }

    /// Runs `sluice ARGS --url URL`.
    fn sluice(&self, args: &[&str]) -> Run {
        run_sluice(&self.url, args, None)
    }

    /// Runs `sluice ARGS --url URL` with `input` on standard input.
    fn sluice_in(&self, args: &[&str], input: &[u8]) -> Run {
        run_sluice(&self.url, args, Some(input))
    }

    /// Starts `sluice ARGS --url URL` without waiting for it.
    fn spawn(&self, args: &[&str]) -> Child {
        Command::new(SLUICE)
            .args(args)
            .args(["--url", &self.url])
            .env_remove("SLUICE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Standard output of a command that must have succeeded.
    fn ok(&self) -> &str {
        assert!(self.success, "command failed: {}", self.stderr);
        &self.stdout
    }

    /// Standard error of a command that must have failed.
    fn fails(&self) -> &str {
        assert!(!self.success, "command succeeded: {}", self.stdout);
        &self.stderr
    }

    fn lines(&self) -> Vec<&str> {
        self.ok().lines().collect()
    }

    fn json_lines(&self) -> Vec<Value> {
        self.ok()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn json(&self) -> Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

fn run_sluice(url: &str, args: &[&str], input: Option<&[u8]>) -> Run {
    let mut child = Command::new(SLUICE)
        .args(args)
        .args(["--url", url])
        .env_remove("SLUICE_URL")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        std::thread::spawn(move || stdin.write_all(&input));
    }
    let out = child.wait_with_output().unwrap();
    Run {
        success: out.status.success(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Waits until the clock is past `ms`, so later records get later timestamps.
fn wait_past(ms: i64) {
    while now_ms() <= ms {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn topic_create_list_describe_alter_delete() {
    let b = Broker::start();
    let out = b.sluice(&["topic", "create", "orders", "--partitions", "3"]);
    assert_eq!(
        out.ok().trim(),
        "created topic orders with 3 partitions (replication factor 1)"
    );

    let created = b
        .sluice(&[
            "topic",
            "create",
            "audit",
            "--config",
            "retention.ms=3600000",
            "--json",
        ])
        .json();
    assert_eq!(created["name"], "audit");
    assert_eq!(created["partitions"].as_array().unwrap().len(), 1);
    assert_eq!(created["configs"]["retention.ms"], "3600000");

    let err = b.sluice(&["topic", "create", "orders"]);
    assert!(err.fails().contains("topic_exists"), "{}", err.stderr);
    let err = b.sluice(&["topic", "create", "bad/name"]);
    assert!(err.fails().contains("invalid_topic_name"), "{}", err.stderr);

    // Internal topics (`__consumer_offsets`) only with --internal.
    let with_internal = b.sluice(&["topic", "list", "--internal"]);
    assert!(
        with_internal
            .lines()
            .iter()
            .any(|l| l.starts_with("__consumer_offsets") && l.ends_with("yes")),
        "{}",
        with_internal.stdout
    );
    let list = b.sluice(&["topic", "list"]);
    let lines = list.lines();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["TOPIC", "PARTITIONS", "INTERNAL"]
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["audit", "1", "no"]
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["orders", "3", "no"]
    );
    // Columns line up.
    assert_eq!(lines[1].find('1'), lines[0].find("PARTITIONS"));
    let list = b.sluice(&["topic", "list", "--json"]).json();
    let names: Vec<&str> = list["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["audit", "orders"]);

    let describe = b.sluice(&["topic", "describe", "orders"]);
    let text = describe.ok();
    assert!(text.contains("topic:              orders"), "{text}");
    assert!(text.contains("PARTITION  LOG-START"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("retention.ms ")),
        "{text}"
    );
    let default_retention = b.sluice(&["topic", "describe", "orders", "--json"]).json()["configs"]
        ["retention.ms"]
        .clone();

    let altered = b
        .sluice(&[
            "topic",
            "alter",
            "orders",
            "--partitions",
            "4",
            "--config",
            "retention.ms=1000",
            "--json",
        ])
        .json();
    assert_eq!(altered["partitions"].as_array().unwrap().len(), 4);
    assert_eq!(altered["configs"]["retention.ms"], "1000");
    let out = b.sluice(&[
        "topic",
        "alter",
        "orders",
        "--delete-config",
        "retention.ms",
    ]);
    assert!(
        out.ok()
            .starts_with("altered topic orders: retention.ms reset to the default"),
        "{}",
        out.stdout
    );
    let described = b.sluice(&["topic", "describe", "orders", "--json"]).json();
    assert_eq!(described["configs"]["retention.ms"], default_retention);
    assert_eq!(described["partitions"].as_array().unwrap().len(), 4);
    let err = b.sluice(&["topic", "alter", "orders", "--partitions", "2"]);
    err.fails();
    let err = b.sluice(&["topic", "alter", "orders"]);
    assert!(err.fails().contains("--partitions"), "{}", err.stderr);

    assert_eq!(
        b.sluice(&["topic", "delete", "orders"]).ok().trim(),
        "deleted topic orders"
    );
    assert_eq!(
        b.sluice(&["topic", "delete", "audit", "--json"]).json(),
        serde_json::json!({"deleted": "audit"})
    );
    let err = b.sluice(&["topic", "describe", "orders"]);
    assert!(err.fails().contains("unknown_topic"), "{}", err.stderr);
    let out = b.sluice(&["topic", "list"]);
    assert!(out.ok().starts_with("no topics"), "{}", out.stdout);
}

#[test]
fn keyed_lines_route_by_murmur2_and_keep_their_order() {
    let b = Broker::start();
    b.sluice(&["topic", "create", "events", "--partitions", "3"])
        .ok();
    let input: String = (0..100)
        .map(|i| format!("user-{}:value-{i}\n", i % 7))
        .collect();
    let produced = b.sluice_in(
        &[
            "produce",
            "events",
            "--key-separator",
            ":",
            "--batch",
            "16",
            "--header",
            "source=test",
            "--json",
        ],
        input.as_bytes(),
    );
    let offsets = produced.json_lines();
    assert_eq!(offsets.len(), 100);
    for (i, o) in offsets.iter().enumerate() {
        let key = format!("user-{}", i % 7);
        assert_eq!(
            o["partition"],
            partition_for_key(key.as_bytes(), 3),
            "record {i}"
        );
    }

    let consumed = b.sluice(&["consume", "events", "--json"]).json_lines();
    assert_eq!(consumed.len(), 100);
    let mut seen = std::collections::HashMap::new();
    for r in &consumed {
        let key = r["key"].as_str().unwrap();
        let value = r["value"].as_str().unwrap();
        let i: usize = value.strip_prefix("value-").unwrap().parse().unwrap();
        assert_eq!(key, format!("user-{}", i % 7));
        assert_eq!(r["topic"], "events");
        assert_eq!(r["partition"], partition_for_key(key.as_bytes(), 3));
        assert_eq!(r["headers"], serde_json::json!({"source": "test"}));
        assert_eq!(offsets[i]["offset"], r["offset"], "record {i}");
        // Records of one key come out in the order they went in.
        if let Some(prev) = seen.insert(key.to_string(), i) {
            assert!(prev < i, "{key}: {prev} before {i}");
        }
    }

    let kv = b.sluice(&["consume", "events", "--format", "kv", "--partition", "0"]);
    for line in kv.lines() {
        let (key, value) = line.split_once('\t').unwrap();
        assert_eq!(partition_for_key(key.as_bytes(), 3), 0);
        assert!(value.starts_with("value-"));
    }

    // Without --json: a summary.
    let out = b.sluice_in(&["produce", "events", "--key", "k"], b"one\ntwo\n");
    let p = partition_for_key(b"k", 3);
    assert_eq!(
        out.ok().trim(),
        format!("produced 2 records to events (partition {p})")
    );
    let out = b.sluice_in(&["produce", "events", "--acks", "0"], b"x\n");
    assert!(
        out.ok().starts_with("sent 1 record to events"),
        "{}",
        out.stdout
    );
    let err = b.sluice_in(
        &["produce", "events", "--key-separator", ":"],
        b"a:1\nno separator\n",
    );
    assert!(
        err.fails().contains("line 2 has no key separator"),
        "{}",
        err.stderr
    );
}

#[test]
fn consume_from_offsets_timestamps_and_limits() {
    let b = Broker::start();
    b.sluice(&["topic", "create", "log"]).ok();
    let input: String = (0..10).map(|i| format!("v{i}\n")).collect();
    b.sluice_in(&["produce", "log"], input.as_bytes()).ok();

    let all = b.sluice(&["consume", "log"]);
    assert_eq!(
        all.lines(),
        (0..10).map(|i| format!("v{i}")).collect::<Vec<_>>()
    );
    assert_eq!(
        b.sluice(&["consume", "log", "--from", "7"]).lines(),
        ["v7", "v8", "v9"]
    );
    assert_eq!(
        b.sluice(&["consume", "log", "--max", "2"]).lines(),
        ["v0", "v1"]
    );
    assert_eq!(
        b.sluice(&[
            "consume",
            "log",
            "--from",
            "8",
            "--partition",
            "0",
            "--max",
            "5"
        ])
        .lines(),
        ["v8", "v9"]
    );
    assert!(
        b.sluice(&["consume", "log", "--from", "latest"])
            .lines()
            .is_empty()
    );
    assert!(
        b.sluice(&["consume", "log", "--from", "99"])
            .lines()
            .is_empty()
    );
    // A byte budget smaller than one batch still makes progress.
    assert_eq!(
        b.sluice(&["consume", "log", "--max-bytes", "1"])
            .lines()
            .len(),
        10
    );
    let err = b.sluice(&["consume", "log", "--partition", "3"]);
    assert!(err.fails().contains("unknown_partition"), "{}", err.stderr);

    // Later records, found by time.
    let last = b
        .sluice(&["consume", "log", "--from", "9", "--json"])
        .json_lines();
    wait_past(last[0]["timestamp"].as_i64().unwrap());
    let t = now_ms();
    b.sluice_in(&["produce", "log"], b"w0\nw1\nw2\n").ok();
    let at = format!("@{t}");
    assert_eq!(
        b.sluice(&["consume", "log", "--from", &at]).lines(),
        ["w0", "w1", "w2"]
    );
    let future = format!("@{}", now_ms() + 60_000);
    assert!(
        b.sluice(&["consume", "log", "--from", &future])
            .lines()
            .is_empty()
    );

    let offsets = b
        .sluice(&["offsets", "log", "--timestamp", &t.to_string(), "--json"])
        .json();
    assert_eq!(
        offsets,
        serde_json::json!({"topic": "log", "partitions": [{"partition": 0, "earliest": 0, "latest": 13, "offset_for_timestamp": 10}]})
    );
    let table = b.sluice(&["offsets", "log"]);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["PARTITION", "EARLIEST", "LATEST"],
            vec!["0", "0", "13"]
        ]
    );
    let table = b.sluice(&[
        "offsets",
        "log",
        "--timestamp",
        &(now_ms() + 60_000).to_string(),
    ]);
    assert_eq!(
        table.lines()[1].split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "13", "-"]
    );
    let offsets = b
        .sluice(&[
            "offsets",
            "log",
            "--timestamp",
            &(now_ms() + 60_000).to_string(),
            "--json",
        ])
        .json();
    assert_eq!(
        offsets["partitions"][0]["offset_for_timestamp"],
        Value::Null
    );
    assert!(
        offsets["partitions"][0]
            .as_object()
            .unwrap()
            .contains_key("offset_for_timestamp")
    );
}

#[test]
fn binary_input_comes_back_as_base64() {
    let b = Broker::start();
    b.sluice(&["topic", "create", "bin"]).ok();
    let path = b.dir.path().join("input.bin");
    std::fs::write(&path, b"text\r\n\xff\x00\x01\n").unwrap();
    let out = b.sluice(&["produce", "bin", "--file", path.to_str().unwrap()]);
    assert_eq!(out.ok().trim(), "produced 2 records to bin (partition 0)");
    assert_eq!(b.sluice(&["consume", "bin"]).lines(), ["text", "/wAB"]);
    let json = b.sluice(&["consume", "bin", "--json"]).json_lines();
    assert_eq!(json[1]["value"], serde_json::json!({"base64": "/wAB"}));
    assert_eq!(json[1]["key"], Value::Null);
    assert_eq!(
        b.sluice(&["consume", "bin", "--format", "kv"]).lines(),
        ["null\ttext", "null\t/wAB"]
    );
}

#[test]
fn follow_waits_for_new_records() {
    let b = Broker::start();
    b.sluice(&["topic", "create", "live", "--partitions", "3"])
        .ok();
    let consumer = b.spawn(&[
        "consume", "live", "--follow", "--max", "6", "--format", "kv",
    ]);
    // The consumer starts at the earliest offsets (all 0), so nothing can be missed.
    b.sluice_in(
        &["produce", "live", "--key-separator", "="],
        b"a=1\nb=2\nc=3\n",
    )
    .ok();
    b.sluice_in(
        &["produce", "live", "--key-separator", "="],
        b"a=4\nb=5\nc=6\n",
    )
    .ok();
    let out = consumer.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    lines.sort();
    assert_eq!(lines, ["a\t1", "a\t4", "b\t2", "b\t5", "c\t3", "c\t6"]);
}

#[test]
fn follow_stops_cleanly_on_ctrl_c() {
    let b = Broker::start();
    b.sluice(&["topic", "create", "live"]).ok();
    b.sluice_in(&["produce", "live"], b"first\n").ok();
    let mut consumer = b.spawn(&["consume", "live", "--follow"]);
    // Once the first record is printed the consumer is long-polling with its handler in place.
    let mut stdout = BufReader::new(consumer.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "first\n");
    let status = Command::new("kill")
        .args(["-INT", &consumer.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = consumer.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn errors_name_their_code() {
    let b = Broker::start();
    for args in [
        &["topic", "describe", "nope"][..],
        &["consume", "nope"],
        &["offsets", "nope"],
        &["topic", "delete", "nope"],
    ] {
        let err = b.sluice(args);
        assert!(
            err.fails().contains("unknown_topic"),
            "{args:?}: {}",
            err.stderr
        );
    }
    let err = b.sluice_in(&["produce", "nope"], b"x\n");
    assert!(err.fails().contains("unknown_topic"), "{}", err.stderr);
    let err = b.sluice(&["topic", "describe", "nope", "--json"]);
    let body: Value = serde_json::from_str(err.fails().trim()).unwrap();
    assert_eq!(body["code"], "unknown_topic");

    // No broker at all: say how to start one.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = run_sluice(&format!("http://{free}"), &["topic", "list"], None);
    assert!(err.fails().contains("sluice serve"), "{}", err.stderr);
}
