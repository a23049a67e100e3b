//! WebAssembly plugins through the broker: upload, list, describe, delete; filters on HTTP
//! fetches and WebSocket subscriptions; hostile plugins fail only the request that ran them.

mod common;

use common::TestBroker;
use common::net::{Http, Ws, guard};
use serde_json::json;
use sluice_protocol::ErrorCode;
use sluice_protocol::frame::{Request, Response as Answer, ServerBody};
use sluice_protocol::types::{FilterSpec, StartFrom};

fn wat(path: &str) -> Vec<u8> {
    let file = format!("{}/../plugins/{path}", env!("CARGO_MANIFEST_DIR"));
    wat::parse_file(&file).unwrap_or_else(|e| panic!("{file}: {e}"))
}

async fn upload(http: &Http, name: &str, module: Vec<u8>) -> common::net::Reply {
    let req = http
        .client
        .put(format!("{}/v1/plugins/{name}", http.base))
        .body(module);
    http.send(req).await
}

#[tokio::test]
async fn a_filter_runs_on_http_fetches_and_websocket_subscriptions() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("t", 1).await;
    let p = upload(
        &http,
        "no-tombstones",
        wat("examples/wat/drop_tombstones.wat"),
    )
    .await
    .expect(200);
    assert_eq!(p["kind"], "filter");
    assert_eq!(p["abi_version"], 1);
    assert_eq!(p["sha256"].as_str().unwrap().len(), 64);
    http.produce("t", json!([{"key": "a", "value": "1"}, {"key": "b", "value": null}, {"key": "c", "value": "3"}, {"key": "d", "value": null}]))
        .await;

    // HTTP fetch with the filter: only records with a value; the position passes the rest.
    let f = http
        .get("/v1/topics/t/partitions/0/records?offset=0&filter=no-tombstones")
        .await
        .expect(200);
    let keys: Vec<&str> = f["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["a", "c"]);
    assert_eq!(f["next_offset"], 4);

    // WebSocket subscription with the filter.
    let mut ws = Ws::connect(&broker).await;
    ws.hello(false).await;
    let sub = Request::Subscribe {
        topic: "t".into(),
        partitions: None,
        from: StartFrom::Earliest,
        credit_bytes: 1 << 20,
        positions: None,
        filter: Some(FilterSpec {
            plugin: "no-tombstones".into(),
            params: Default::default(),
        }),
        map: None,
    };
    assert!(matches!(
        ws.call(1, sub, false).await.unwrap(),
        Answer::Subscribed { .. }
    ));
    let mut got = Vec::new();
    while got.len() < 2 {
        let f = ws.recv().await;
        let ServerBody::Records(d) = f.body else {
            panic!("{f:?}")
        };
        got.extend(d.fetch.records.into_iter().map(|r| r.offset));
    }
    assert_eq!(got, [0, 2]);
    http.produce(
        "t",
        json!([{"key": "e", "value": null}, {"key": "f", "value": "6"}]),
    )
    .await;
    let f = ws.recv().await;
    let ServerBody::Records(d) = f.body else {
        panic!("{f:?}")
    };
    assert_eq!(
        d.fetch.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [5]
    );

    // Registry: list, describe (with counters), delete; unknown names are 404.
    let list = http.get("/v1/plugins").await.expect(200);
    assert_eq!(list["plugins"][0]["name"], "no-tombstones");
    let d = http.get("/v1/plugins/no-tombstones").await.expect(200);
    assert!(d["records"].as_u64().unwrap() >= 4, "{d}");
    http.delete("/v1/plugins/no-tombstones").await.expect(200);
    http.get("/v1/plugins/no-tombstones")
        .await
        .expect_error(404, "unknown_plugin");
    http.get("/v1/topics/t/partitions/0/records?filter=no-tombstones")
        .await
        .expect_error(404, "unknown_plugin");
}

#[tokio::test]
async fn bad_modules_are_refused_at_upload_and_hostile_ones_fail_only_their_request() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("t", 1).await;
    http.create_topic("other", 1).await;
    for (name, module, what) in [
        ("junk", b"definitely not wasm".to_vec(), "not"),
        ("v2", wat("hostile/wrong_abi_version.wat"), "version"),
        ("missing", wat("hostile/missing_exports.wat"), "export"),
        ("wasi", wat("hostile/imports_wasi.wat"), "import"),
    ] {
        let e = upload(&http, name, module)
            .await
            .expect_error(400, "invalid_plugin");
        assert!(
            e["message"].as_str().unwrap().to_lowercase().contains(what),
            "{name}: {e}"
        );
    }
    assert!(
        http.get("/v1/plugins").await.expect(200)["plugins"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    upload(&http, "loop", wat("hostile/infinite_loop.wat"))
        .await
        .expect(200);
    upload(&http, "trap", wat("hostile/trap.wat"))
        .await
        .expect(200);
    http.produce("t", json!([{"value": "x"}])).await;
    http.produce("other", json!([{"value": "y"}])).await;
    // A consumer of another topic keeps streaming while the hostile plugins fail.
    let mut ws = Ws::connect(&broker).await;
    ws.hello(false).await;
    let sub = Request::Subscribe {
        topic: "other".into(),
        partitions: None,
        from: StartFrom::Earliest,
        credit_bytes: 1 << 20,
        positions: None,
        filter: None,
        map: None,
    };
    assert!(matches!(
        ws.call(1, sub, false).await.unwrap(),
        Answer::Subscribed { .. }
    ));
    for name in ["loop", "trap"] {
        let e = http
            .get(&format!("/v1/topics/t/partitions/0/records?filter={name}"))
            .await
            .expect_error(500, "plugin_failed");
        assert!(e["message"].as_str().unwrap().contains(name), "{e}");
    }
    let f = guard("the other consumer still gets records", ws.recv()).await;
    assert!(matches!(f.body, ServerBody::Records(_)), "{f:?}");
    http.produce("other", json!([{"value": "z"}])).await;
    let f = guard("and new ones", ws.recv()).await;
    assert!(matches!(f.body, ServerBody::Records(_)), "{f:?}");
    // Nothing written was lost; the plugin's health shows the failure.
    assert_eq!(
        http.get("/v1/topics/t/partitions/0/records?offset=0")
            .await
            .expect(200)["records"][0]["value"],
        "x"
    );
    let d = http.get("/v1/plugins/loop").await.expect(200);
    assert!(
        d["errors"].as_u64().unwrap() >= 1 && d["last_error"].is_string(),
        "{d}"
    );
    let _ = ErrorCode::PluginFailed;
}

#[tokio::test]
async fn plugins_survive_a_restart() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    upload(&http, "keep", wat("examples/wat/drop_tombstones.wat"))
        .await
        .expect(200);
    let sha = http.get("/v1/plugins/keep").await.expect(200)["sha256"].clone();
    let dir = broker.stop();
    let broker = TestBroker::start_in(dir, &[]);
    let http = Http::new(&broker);
    assert_eq!(
        http.get("/v1/plugins/keep").await.expect(200)["sha256"],
        sha
    );
}

#[tokio::test]
async fn the_plugin_cli_uploads_lists_describes_and_deletes() {
    let broker = TestBroker::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.wasm");
    std::fs::write(&file, wat("examples/wat/drop_tombstones.wat")).unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"nope").unwrap();
    let url = format!("http://{}", broker.addr);
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .args(["--url", &url])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(&["plugin", "upload", "f", file.to_str().unwrap()]);
    assert!(ok && out.contains("uploaded filter plugin f"), "{out}{err}");
    let (ok, out, err) = run(&["plugin", "upload", "bad", junk.to_str().unwrap()]);
    assert!(!ok && err.contains("invalid_plugin"), "{out}{err}");
    let (ok, out, _) = run(&["plugin", "list"]);
    assert!(ok && out.contains("filter"), "{out}");
    let (ok, out, _) = run(&["plugin", "describe", "f", "--json"]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["kind"],
        "filter"
    );
    let (ok, _, _) = run(&["plugin", "delete", "f"]);
    assert!(ok);
    let (ok, _, err) = run(&["plugin", "describe", "f"]);
    assert!(!ok && err.contains("unknown_plugin"), "{err}");
}

/// A partitioner that sends every record to the last partition (the hostile one, fixed).
fn last_partition_wat() -> Vec<u8> {
    let file = format!(
        "{}/../plugins/hostile/bad_partitioner.wat",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(file).unwrap();
    let fixed = text.replace(
        "(i32.shl (local.get $i) (i32.const 2))) (local.get $partitions))",
        "(i32.shl (local.get $i) (i32.const 2))) (i32.sub (local.get $partitions) (i32.const 1)))",
    );
    assert_ne!(fixed, text, "the hostile module changed shape");
    wat::parse_str(&fixed).unwrap()
}

#[tokio::test]
async fn a_topic_partitioner_plugin_routes_records_sent_without_a_partition() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    upload(&http, "last", last_partition_wat())
        .await
        .expect(200);
    upload(&http, "oob", wat("hostile/bad_partitioner.wat"))
        .await
        .expect(200);
    upload(&http, "keep", wat("examples/wat/drop_tombstones.wat"))
        .await
        .expect(200);
    // A filter is not a partitioner, and unknown plugins are refused at create.
    http.post(
        "/v1/topics",
        &json!({"name": "x", "partitions": 3, "configs": {"partitioner": "keep"}}),
    )
    .await
    .expect_error(400, "invalid_config");
    http.post(
        "/v1/topics",
        &json!({"name": "x", "partitions": 3, "configs": {"partitioner": "nope"}}),
    )
    .await
    .expect_error(400, "invalid_config");
    http.post(
        "/v1/topics",
        &json!({"name": "t", "partitions": 3, "configs": {"partitioner": "last"}}),
    )
    .await
    .expect(201);
    let offsets = http.produce("t", json!([{"key": "a", "value": "1"}, {"value": "2"}, {"key": "c", "value": "3", "partition": 0}])).await;
    assert_eq!(
        offsets.iter().map(|o| o.0).collect::<Vec<_>>(),
        [2, 2, 0],
        "plugin for the first two, explicit for the last"
    );
    // The plugin cannot be deleted while the topic uses it.
    http.delete("/v1/plugins/last")
        .await
        .expect_error(400, "invalid_config");
    // A partitioner answering out of range fails the produce, writing nothing.
    http.patch("/v1/topics/t", &json!({"configs": {"partitioner": "oob"}}))
        .await
        .expect(200);
    let e = http
        .post(
            "/v1/topics/t/records",
            &json!({"records": [{"value": "x"}]}),
        )
        .await
        .expect_error(500, "plugin_failed");
    assert!(e["message"].as_str().unwrap().contains("oob"), "{e}");
    let d = http.get("/v1/topics/t").await.expect(200);
    let total: u64 = d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["log_end_offset"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 3);
    // Back to the built-in routing.
    http.patch("/v1/topics/t", &json!({"configs": {"partitioner": null}}))
        .await
        .expect(200);
    http.delete("/v1/plugins/last").await.expect(200);
    http.produce("t", json!([{"key": "21", "value": "k"}]))
        .await;
}

#[tokio::test]
async fn the_plugin_list_names_the_topics_that_route_with_each_partitioner() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    upload(&http, "route", wat("hostile/bad_partitioner.wat"))
        .await
        .expect(200);
    upload(&http, "keep", wat("examples/wat/drop_tombstones.wat"))
        .await
        .expect(200);
    for name in ["b", "a"] {
        http.post(
            "/v1/topics",
            &json!({"name": name, "partitions": 2, "configs": {"partitioner": "route"}}),
        )
        .await
        .expect(201);
    }
    http.create_topic("plain", 1).await;
    let users = |list: &serde_json::Value, name: &str| {
        list["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {list}"))["partitioner_of"]
            .clone()
    };
    let list = http.get("/v1/plugins").await.expect(200);
    assert_eq!(users(&list, "route"), json!(["a", "b"]));
    assert_eq!(users(&list, "keep"), json!([]));
    let one = http.get("/v1/plugins/route").await.expect(200);
    assert_eq!(one["kind"], "partitioner");
    assert_eq!(one["partitioner_of"], json!(["a", "b"]));

    // Taking it off a topic removes that topic; a delete is refused while one is left.
    http.patch("/v1/topics/a", &json!({"configs": {"partitioner": null}}))
        .await
        .expect(200);
    let one = http.get("/v1/plugins/route").await.expect(200);
    assert_eq!(one["partitioner_of"], json!(["b"]));
    let refused = http
        .delete("/v1/plugins/route")
        .await
        .expect_error(400, "invalid_config");
    assert!(
        refused["message"].as_str().unwrap().contains("`b`"),
        "{refused}"
    );
    http.delete("/v1/topics/b").await.expect(200);
    http.delete("/v1/plugins/route").await.expect(200);
    http.get("/v1/plugins/route")
        .await
        .expect_error(404, "unknown_plugin");
}
