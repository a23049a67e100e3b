//! The browser client (`server/console/client.js`, the same file as
//! `examples/browser/client.js`) attaching map plugins, run by a real Node process (Node 20's
//! WebSocket) against the real broker: `subscribe`, `fetch` and `joinGroup` with `map` (and
//! `filter`), and a malformed `map` option refused by the client with `bad_request`.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TestBroker;
use common::net::Http;
use serde_json::{Value, json};

fn wat(path: &str) -> Vec<u8> {
    let file = format!("{}/../plugins/{path}", env!("CARGO_MANIFEST_DIR"));
    wat::parse_file(&file).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// A map that upper-cases every value (ASCII) and keeps keys and headers: the tag map's
/// `value=upper` without the header, in WAT so this test needs no wasm32 build.
const UPPER_MAP: &str = r#"(module
  (memory (export "memory") 2)
  (global $buffer i32 (i32.const 1024))
  (func (export "sluice_abi_version") (result i32) (i32.const 2))
  (func (export "sluice_kind") (result i32) (i32.const 3))
  (func (export "sluice_alloc") (param $size i32) (result i32)
    (local $pages i32)
    (local.set $pages
      (i32.shr_u
        (i32.add (i32.add (global.get $buffer) (local.get $size)) (i32.const 65535))
        (i32.const 16)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then (return (i32.const 0))))))
    (global.get $buffer))
  (func (export "sluice_init") (param i32 i32) (result i32) (i32.const 0))
  ;; The output is the input with every byte a..z turned to A..Z: in the record layout that
  ;; touches only key, value and header bytes that are lower-case letters, never lengths or
  ;; offsets (little-endian integers, all below 97 in this test, or -1); the timestamp field
  ;; may change, and the host ignores it in a map's answer.
  (func (export "sluice_map")
        (param $in i32) (param $len i32) (param $count i32) (param $out i32) (result i32)
    (local $i i32) (local $b i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $b (i32.load8_u (i32.add (local.get $in) (local.get $i))))
        (if (i32.and (i32.ge_u (local.get $b) (i32.const 97)) (i32.le_u (local.get $b) (i32.const 122)))
          (then (i32.store8 (i32.add (local.get $in) (local.get $i)) (i32.sub (local.get $b) (i32.const 32)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.store (local.get $out) (local.get $in))
    (i32.store offset=4 (local.get $out) (local.get $len))
    (i32.const 0))
)"#;

const SCRIPT: &str = r#"
const { Sluice } = await import(process.env.CLIENT_URL);
const out = (v) => console.log(JSON.stringify(v));
const client = await Sluice.connect(process.env.SLUICE_URL);
const map = { plugin: 'upper', params: { mode: 1 } };
const filter = 'no-tombstones';

const sub = await client.subscribe({ topic: 't', from: 'earliest', map, filter });
const got = [];
for await (const r of sub) {
  got.push([r.offset, r.key, r.value]);
  if (got.length === 2) break;
}
sub.close();
out({ subscribe: got });

const f = await client.fetch('t', 0, 0, { map: 'upper' });
out({ fetch: f.records.map((r) => [r.offset, r.key, r.value]), next: f.nextOffset });

const member = await client.joinGroup({ group: 'g', topics: ['t'], from: 'earliest', map, autoCommit: false });
const mine = [];
for await (const r of member) {
  mine.push([r.offset, r.key, r.value]);
  if (mine.length === 4) break;
}
await member.close();
out({ group: mine });

try {
  await client.fetch('t', 0, 0, { map: 42 });
  out({ refused: null });
} catch (e) {
  out({ refused: e.code, message: e.message });
}
try {
  await client.subscribe({ topic: 't', from: 'earliest', map: 'no-tombstones' });
  out({ wrongKind: null });
} catch (e) {
  out({ wrongKind: e.code, message: e.message });
}
await client.close();
"#;

#[tokio::test]
async fn the_browser_client_attaches_maps_to_subscriptions_fetches_and_group_members() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("t", 1).await;
    for (name, module) in [
        ("upper", wat::parse_str(UPPER_MAP).expect("valid WAT")),
        ("no-tombstones", wat("examples/wat/drop_tombstones.wat")),
    ] {
        let req = http
            .client
            .put(format!("{}/v1/plugins/{name}", http.base))
            .body(module);
        http.send(req).await.expect(200);
    }
    http.produce(
        "t",
        json!([{"key": "a", "value": "one"}, {"key": "b", "value": null}, {"key": "c", "value": "two"}, {"key": "d", "value": "three"}]),
    )
    .await;

    let client = format!("file://{}/console/client.js", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new("node")
        .args([
            "--experimental-websocket",
            "--no-warnings",
            "--input-type=module",
            "-e",
            SCRIPT,
        ])
        .env("CLIENT_URL", client)
        .env("SLUICE_URL", format!("http://{}", broker.addr))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run node (Node 20 or later)");
    // The script ends by itself; a bound on a hang, not a timing assumption.
    let limit = Duration::from_secs(60);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("the node script did not finish in {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "node failed: {stderr}\n{stdout}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    // Filter first (the tombstone at 1 is gone), then the map; stored offsets.
    assert_eq!(
        lines[0]["subscribe"],
        json!([[0, "A", "ONE"], [2, "C", "TWO"]]),
        "{stdout}"
    );
    assert_eq!(
        lines[1]["fetch"],
        json!([
            [0, "A", "ONE"],
            [1, "B", null],
            [2, "C", "TWO"],
            [3, "D", "THREE"]
        ]),
        "{stdout}"
    );
    assert_eq!(lines[1]["next"], 4);
    assert_eq!(
        lines[2]["group"],
        json!([
            [0, "A", "ONE"],
            [1, "B", null],
            [2, "C", "TWO"],
            [3, "D", "THREE"]
        ]),
        "{stdout}"
    );
    assert_eq!(lines[3]["refused"], "bad_request", "{stdout}");
    assert!(
        lines[3]["message"]
            .as_str()
            .unwrap()
            .contains("map must be"),
        "{stdout}"
    );
    assert_eq!(lines[4]["wrongKind"], "invalid_plugin", "{stdout}");
    assert!(
        lines[4]["message"]
            .as_str()
            .unwrap()
            .contains("is a filter, not a map"),
        "{stdout}"
    );
}
