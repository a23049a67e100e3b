//! Map plugins attached to WebSocket subscriptions and fetches and to HTTP fetches: records
//! come back rewritten with their offsets, timestamps and positions unchanged, after the filter
//! when both are given; a hostile map fails only the request or subscription that ran it; a
//! plugin of the other kind is refused with a clear error.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use common::TestBroker;
use common::net::{Http, Ws, decode_batches, guard};
use serde_json::{Value, json};
use sluice_protocol::ErrorCode;
use sluice_protocol::frame::{Request, Response as Answer, ServerBody};
use sluice_protocol::types::{ConsumedRecord, FilterSpec, MapSpec, StartFrom};

fn wat(path: &str) -> Vec<u8> {
    let file = format!("{}/../plugins/{path}", env!("CARGO_MANIFEST_DIR"));
    wat::parse_file(&file).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// A built example plugin of the separate `plugins/` workspace (`tag_map`), built once per test
/// binary into `<target dir>/plugins` as the plugin host's and the SDK's tests do;
/// `SLUICE_PLUGINS_DIR` names a directory of already-built `.wasm` files instead.
fn example(name: &str) -> Vec<u8> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("SLUICE_PLUGINS_DIR") {
            return PathBuf::from(dir);
        }
        // CARGO_TARGET_TMPDIR is <target dir>/tmp.
        let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("the tmp dir is inside the target dir")
            .join("plugins");
        let output = Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "--locked",
                "--target",
                "wasm32-unknown-unknown",
            ])
            .current_dir(format!("{}/../plugins", env!("CARGO_MANIFEST_DIR")))
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .expect("run cargo to build the example plugins");
        assert!(
            output.status.success(),
            "building the example plugins failed (is the target installed? \
             `rustup target add wasm32-unknown-unknown`):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        target.join("wasm32-unknown-unknown/release")
    });
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A map that traps on every call.
const TRAPPING_MAP: &str = r#"(module
  (memory (export "memory") 2)
  (func (export "sluice_abi_version") (result i32) (i32.const 2))
  (func (export "sluice_kind") (result i32) (i32.const 3))
  (func (export "sluice_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "sluice_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "sluice_map") (param i32 i32 i32 i32) (result i32) unreachable))"#;

async fn upload(http: &Http, name: &str, module: Vec<u8>) -> Value {
    let req = http
        .client
        .put(format!("{}/v1/plugins/{name}", http.base))
        .body(module);
    http.send(req).await.expect(200)
}

fn params(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn map(name: &str, pairs: &[(&str, &str)]) -> Option<MapSpec> {
    Some(MapSpec {
        plugin: name.into(),
        params: params(pairs),
    })
}

fn filter(name: &str) -> Option<FilterSpec> {
    Some(FilterSpec {
        plugin: name.into(),
        params: Default::default(),
    })
}

fn subscribe(topic: &str, filter: Option<FilterSpec>, map: Option<MapSpec>) -> Request {
    Request::Subscribe {
        topic: topic.into(),
        partitions: None,
        from: StartFrom::Earliest,
        credit_bytes: 1 << 20,
        positions: None,
        filter,
        map,
    }
}

fn fetch(topic: &str, filter: Option<FilterSpec>, map: Option<MapSpec>) -> Request {
    Request::Fetch {
        topic: topic.into(),
        partition: 0,
        offset: 0,
        max_bytes: None,
        max_wait_ms: None,
        filter,
        map,
    }
}

fn text(p: &Option<sluice_protocol::Payload>) -> Option<String> {
    p.as_ref()
        .map(|p| String::from_utf8(p.as_bytes().to_vec()).unwrap())
}

/// (offset, key, value) of decoded records.
fn summary(records: &[ConsumedRecord]) -> Vec<(u64, Option<String>, Option<String>)> {
    records
        .iter()
        .map(|r| (r.offset, text(&r.key), text(&r.value)))
        .collect()
}

/// (offset, key, value) of a binary push's rewritten batches (CRCs checked).
fn binary_summary(
    f: &sluice_protocol::types::FetchResponse,
) -> Vec<(u64, Option<String>, Option<String>)> {
    let text = |b: Option<Vec<u8>>| b.map(|b| String::from_utf8(b).unwrap());
    decode_batches(f.batches.as_ref().expect("batches"))
        .into_iter()
        .map(|(o, k, v)| (o, text(k), text(v)))
        .collect()
}

fn header(r: &ConsumedRecord, name: &str) -> Option<String> {
    r.headers
        .0
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| text(v))
}

/// (offset, key, value) of an HTTP fetch's JSON records.
fn json_summary(body: &Value) -> Vec<(u64, Option<String>, Option<String>)> {
    body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["offset"].as_u64().unwrap(),
                r["key"].as_str().map(String::from),
                r["value"].as_str().map(String::from),
            )
        })
        .collect()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[tokio::test]
async fn a_map_rewrites_subscribed_and_fetched_records_keeping_offsets_and_timestamps() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("t", 1).await;
    let p = upload(&http, "tag", example("tag_map")).await;
    assert_eq!(
        (p["kind"].as_str(), p["abi_version"].as_i64()),
        (Some("map"), Some(2))
    );
    http.produce(
        "t",
        json!([{"key": "a", "value": "one"}, {"key": "b", "value": null}, {"key": "c", "value": "three"}]),
    )
    .await;
    let stored = http.fetch("t", 0, 0).await;
    let stored_ts: Vec<i64> = stored["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["timestamp"].as_i64().unwrap())
        .collect();
    let upper = vec![
        (0, s("a"), s("ONE")),
        (1, s("b"), None),
        (2, s("c"), s("THREE")),
    ];

    // WebSocket subscriptions, JSON (decoded records) and binary (the rewritten batches); each
    // round produces one more record.
    let mut want = upper.clone();
    for (binary, next) in [(false, "four"), (true, "five")] {
        let mut ws = Ws::connect(&broker).await;
        ws.hello(binary).await;
        let sub = subscribe("t", None, map("tag", &[("value", "upper"), ("tag", "t1")]));
        assert!(matches!(
            ws.call(1, sub, binary).await.unwrap(),
            Answer::Subscribed { .. }
        ));
        let (f, _) = guard("mapped records", ws.recv_any()).await;
        let ServerBody::Records(d) = f.body else {
            panic!("{f:?}")
        };
        assert_eq!(d.fetch.next_offset, want.len() as u64);
        if binary {
            assert_eq!(binary_summary(&d.fetch), want);
        } else {
            assert_eq!(summary(&d.fetch.records), want);
            let ts: Vec<i64> = d.fetch.records.iter().map(|r| r.timestamp).collect();
            assert_eq!(ts, stored_ts);
            for r in &d.fetch.records {
                assert_eq!(header(r, "mapped-by"), s("t1"), "{r:?}");
            }
        }
        // The subscription carries on from where the map left it.
        let offset = want.len() as u64;
        http.produce("t", json!([{"key": next, "value": next}]))
            .await;
        let (f, _) = guard("the next mapped record", ws.recv_any()).await;
        let ServerBody::Records(d) = f.body else {
            panic!("{f:?}")
        };
        assert_eq!(d.fetch.next_offset, offset + 1);
        want.push((offset, s(next), s(&next.to_uppercase())));
        let got = if binary {
            binary_summary(&d.fetch)
        } else {
            summary(&d.fetch.records)
        };
        assert_eq!(got[..], want[want.len() - 1..]);
    }
    let stored = http.fetch("t", 0, 0).await;
    let stored_ts: Vec<i64> = stored["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["timestamp"].as_i64().unwrap())
        .collect();

    // A WebSocket fetch.
    let mut ws = Ws::connect(&broker).await;
    ws.hello(false).await;
    let Answer::Fetched(f) = ws
        .call(1, fetch("t", None, map("tag", &[("value", "mask")])), false)
        .await
        .unwrap()
    else {
        panic!("fetch answered with something else")
    };
    assert_eq!(
        summary(&f.records)[..3],
        [
            (0, s("a"), s("***")),
            (1, s("b"), None),
            (2, s("c"), s("*****"))
        ]
    );
    assert_eq!(f.next_offset, 5);

    // An HTTP fetch, `?map=NAME&map.KEY=VALUE`: decoded records and the raw batches.
    let body = http
        .get("/v1/topics/t/partitions/0/records?offset=0&map=tag&map.value=upper&map.header=h&map.tag=v")
        .await
        .expect(200);
    assert_eq!(json_summary(&body)[..3], upper[..]);
    assert_eq!(body["next_offset"], 5);
    for (r, ts) in body["records"].as_array().unwrap().iter().zip(&stored_ts) {
        assert_eq!(r["headers"]["h"], "v", "{r}");
        assert_eq!(r["timestamp"].as_i64(), Some(*ts), "{r}");
    }
    let raw = http
        .client
        .get(
            http.base.clone()
                + "/v1/topics/t/partitions/0/records?offset=0&map=tag&map.value=upper",
        )
        .header("accept", "application/vnd.sluice.batches")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 200);
    assert_eq!(raw.headers()["sluice-next-offset"], "5");
    let records = decode_batches(&raw.bytes().await.unwrap());
    assert_eq!(records.len(), 5);
    assert_eq!(records[0], (0, Some(b"a".to_vec()), Some(b"ONE".to_vec())));
    assert_eq!(records[1], (1, Some(b"b".to_vec()), None));
}

#[tokio::test]
async fn a_filter_and_a_map_together_drop_first_then_rewrite() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("t", 1).await;
    upload(
        &http,
        "no-tombstones",
        wat("examples/wat/drop_tombstones.wat"),
    )
    .await;
    upload(&http, "tag", example("tag_map")).await;
    http.produce(
        "t",
        json!([{"key": "a", "value": "x"}, {"key": "b", "value": null}, {"key": "c", "value": "y"}, {"key": "d", "value": null}]),
    )
    .await;
    let want = vec![(0, s("a"), s("X")), (2, s("c"), s("Y"))];

    let mut ws = Ws::connect(&broker).await;
    ws.hello(false).await;
    let sub = subscribe(
        "t",
        filter("no-tombstones"),
        map("tag", &[("value", "upper")]),
    );
    assert!(matches!(
        ws.call(1, sub, false).await.unwrap(),
        Answer::Subscribed { .. }
    ));
    let f = guard("filtered and mapped records", ws.recv()).await;
    let ServerBody::Records(d) = f.body else {
        panic!("{f:?}")
    };
    assert_eq!(summary(&d.fetch.records), want);
    assert_eq!(d.fetch.next_offset, 4);

    let Answer::Fetched(f) = ws
        .call(
            2,
            fetch(
                "t",
                filter("no-tombstones"),
                map("tag", &[("value", "upper")]),
            ),
            false,
        )
        .await
        .unwrap()
    else {
        panic!("fetch answered with something else")
    };
    assert_eq!(summary(&f.records), want);
    assert_eq!(f.next_offset, 4);

    let body = http
        .get("/v1/topics/t/partitions/0/records?offset=0&filter=no-tombstones&map=tag&map.value=upper")
        .await
        .expect(200);
    assert_eq!(json_summary(&body), want);
    assert_eq!(body["next_offset"], 4);

    // When the filter keeps nothing, the subscription still reports its position.
    http.produce("t", json!([{"key": "e", "value": null}]))
        .await;
    let f = guard("an empty push", ws.recv()).await;
    let ServerBody::Records(d) = f.body else {
        panic!("{f:?}")
    };
    assert!(d.fetch.records.is_empty(), "{d:?}");
    assert_eq!(d.fetch.next_offset, 5);
}

#[tokio::test]
async fn a_hostile_map_fails_only_its_subscription_while_another_keeps_streaming() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("t", 1).await;
    upload(&http, "tag", example("tag_map")).await;
    upload(&http, "garbage", wat("hostile/map_garbage.wat")).await;
    upload(&http, "outside", wat("hostile/map_outside.wat")).await;
    upload(&http, "moves", wat("hostile/map_moves_offsets.wat")).await;
    upload(
        &http,
        "trap",
        wat::parse_str(TRAPPING_MAP).expect("valid WAT"),
    )
    .await;
    http.produce(
        "t",
        json!([{"key": "a", "value": "one"}, {"key": "b", "value": "two"}]),
    )
    .await;

    // One connection: a subscription through each hostile map, and a good one.
    let mut ws = Ws::connect(&broker).await;
    ws.hello(false).await;
    let hostile = ["garbage", "outside", "moves", "trap"];
    let good_id = 9;
    for (id, name) in (1..).zip(hostile) {
        ws.send(id, subscribe("t", None, map(name, &[])), false)
            .await;
    }
    ws.send(
        good_id,
        subscribe("t", None, map("tag", &[("value", "upper")])),
        false,
    )
    .await;
    // Answers, subscription errors and pushes interleave: collect them, then check.
    let mut sid_of = std::collections::BTreeMap::new();
    let mut errors = Vec::new();
    let mut pushes = Vec::new();
    while sid_of.len() < hostile.len() + 1
        || errors.len() < hostile.len()
        || pushes.iter().map(|(_, n)| n).sum::<usize>() < 2
    {
        let f = guard("answers, errors and records", ws.recv()).await;
        match (f.id, f.subscription, f.body) {
            (Some(id), _, ServerBody::Ok(Answer::Subscribed { subscription, .. })) => {
                sid_of.insert(id, subscription);
            }
            (None, Some(sid), ServerBody::Error(e)) => errors.push((sid, e)),
            (None, None, ServerBody::Records(d)) => {
                pushes.push((d.subscription, d.fetch.records.len()));
                assert_eq!(
                    summary(&d.fetch.records),
                    [(0, s("a"), s("ONE")), (1, s("b"), s("TWO"))]
                );
            }
            other => panic!("{other:?}"),
        }
    }
    let good = sid_of[&good_id];
    assert!(pushes.iter().all(|(sid, _)| *sid == good), "{pushes:?}");
    let mut failed: Vec<u64> = errors.iter().map(|(sid, _)| *sid).collect();
    failed.sort_unstable();
    let mut hostile_sids: Vec<u64> = (1..=hostile.len() as u64).map(|id| sid_of[&id]).collect();
    hostile_sids.sort_unstable();
    assert_eq!(failed, hostile_sids, "one error per hostile subscription");
    for (id, name) in (1..).zip(hostile) {
        let (_, e) = errors
            .iter()
            .find(|(sid, _)| *sid == sid_of[&id])
            .expect("its error");
        assert_eq!(e.code, ErrorCode::PluginFailed, "{name}: {e:?}");
        assert!(e.message.contains(&format!("`{name}`")), "{e:?}");
        assert!(e.message.contains("offset"), "{e:?}");
    }
    // The good subscription keeps streaming; the connection keeps answering.
    http.produce("t", json!([{"key": "c", "value": "three"}]))
        .await;
    let f = guard("the next record", ws.recv()).await;
    let ServerBody::Records(d) = f.body else {
        panic!("{f:?}")
    };
    assert_eq!(d.subscription, good);
    assert_eq!(summary(&d.fetch.records), [(2, s("c"), s("THREE"))]);

    // Fetches through a hostile map fail alone too.
    for (id, name) in (20..).zip(hostile) {
        let e = ws
            .call(id, fetch("t", None, map(name, &[])), false)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::PluginFailed, "{name}: {e:?}");
        assert!(e.message.contains(name), "{e:?}");
        let e = http
            .get(&format!(
                "/v1/topics/t/partitions/0/records?offset=0&map={name}"
            ))
            .await
            .expect_error(500, "plugin_failed");
        assert!(e["message"].as_str().unwrap().contains(name), "{e}");
    }
    assert!(matches!(
        ws.call(30, fetch("t", None, map("tag", &[])), false)
            .await
            .unwrap(),
        Answer::Fetched(_)
    ));
    let d = http.get("/v1/plugins/garbage").await.expect(200);
    assert!(
        d["errors"].as_u64().unwrap() >= 1 && d["last_error"].is_string(),
        "{d}"
    );
}

#[tokio::test]
async fn a_plugin_of_the_other_kind_or_an_unknown_one_is_refused_with_a_clear_error() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("t", 1).await;
    upload(
        &http,
        "no-tombstones",
        wat("examples/wat/drop_tombstones.wat"),
    )
    .await;
    upload(&http, "same", wat("examples/wat/identity_map.wat")).await;
    upload(&http, "tag", example("tag_map")).await;
    http.produce("t", json!([{"value": "x"}])).await;
    let mut ws = Ws::connect(&broker).await;
    ws.hello(true).await;
    let cases: [(Option<FilterSpec>, Option<MapSpec>, ErrorCode, &str); 5] = [
        (
            None,
            map("no-tombstones", &[]),
            ErrorCode::InvalidPlugin,
            "plugin `no-tombstones` is a filter, not a map",
        ),
        (
            filter("same"),
            None,
            ErrorCode::InvalidPlugin,
            "plugin `same` is a map, not a filter",
        ),
        (
            None,
            map("nope", &[]),
            ErrorCode::UnknownPlugin,
            "plugin `nope` does not exist",
        ),
        (
            None,
            map("tag", &[("value", "sideways")]),
            ErrorCode::InvalidPlugin,
            "sideways",
        ),
        (
            filter("no-tombstones"),
            map("no-tombstones", &[]),
            ErrorCode::InvalidPlugin,
            "is a filter, not a map",
        ),
    ];
    for (id, (f, m, code, what)) in (1..).zip(cases) {
        let e = ws
            .call(id, subscribe("t", f.clone(), m.clone()), true)
            .await
            .unwrap_err();
        assert_eq!(e.code, code, "{e:?}");
        assert!(e.message.contains(what), "{what}: {e:?}");
        let e = ws.call(id + 100, fetch("t", f, m), true).await.unwrap_err();
        assert_eq!(e.code, code, "{e:?}");
        assert!(e.message.contains(what), "{what}: {e:?}");
    }
    for (query, status, code, what) in [
        (
            "map=no-tombstones",
            400,
            "invalid_plugin",
            "is a filter, not a map",
        ),
        (
            "filter=same",
            400,
            "invalid_plugin",
            "is a map, not a filter",
        ),
        ("map=nope", 404, "unknown_plugin", "`nope` does not exist"),
    ] {
        let e = http
            .get(&format!(
                "/v1/topics/t/partitions/0/records?offset=0&{query}"
            ))
            .await
            .expect_error(status, code);
        assert!(e["message"].as_str().unwrap().contains(what), "{e}");
    }
    // A JSON client that predates maps (no `map` field) is served as before.
    let mut ws = Ws::connect(&broker).await;
    ws.hello(false).await;
    ws.send_json(&json!({"id": 1, "op": "fetch", "topic": "t", "partition": 0, "offset": 0}))
        .await;
    let v = ws.recv_json().await;
    assert_eq!(v["ok"]["records"][0]["value"], "x", "{v}");
}
