//! The HTTP API of the real `sluice` binary: topics, produce (JSON and record batches), fetch
//! (JSON, raw batches, long-poll), offsets, restarts and crashes, key routing, metrics, health
//! and the OpenAPI document.

mod common;

use common::TestBroker;
use common::net::{Http, batch, decode_batches, guard, offsets};
use serde_json::{Value, json};
use sluice_protocol::partitioner::{murmur2, partition_for_key, to_positive};

const BATCHES: &str = "application/vnd.sluice.batches";

#[tokio::test]
async fn topics_create_list_describe_alter_delete() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);

    let created = http
        .post(
            "/v1/topics",
            &json!({"name": "orders", "partitions": 2, "configs": {"retention.ms": "3600000"}}),
        )
        .await
        .expect(201);
    assert_eq!(created["name"], "orders");
    assert_eq!(created["partitions"].as_array().unwrap().len(), 2);
    assert_eq!(created["configs"]["retention.ms"], "3600000");
    http.post("/v1/topics", &json!({"name": "orders"}))
        .await
        .expect_error(409, "topic_exists");
    http.create_topic("audit", 1).await;

    let list = http.get("/v1/topics").await.expect(200);
    let names: Vec<&str> = list["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    // The broker's own offsets topic is listed, marked internal.
    assert_eq!(names, ["__consumer_offsets", "audit", "orders"]);
    assert_eq!(list["topics"][0]["internal"], true);
    assert_eq!(list["topics"][2]["partitions"], 2);

    let desc = http.get("/v1/topics/orders").await.expect(200);
    assert_eq!(desc["name"], "orders");
    assert_eq!(desc["partitions"][1]["partition"], 1);
    assert_eq!(desc["partitions"][1]["log_end_offset"], 0);
    assert_eq!(desc["configs"]["retention.ms"], "3600000");
    let default_segment_bytes = desc["configs"]["segment.bytes"].clone();

    // Settings change, and partitions grow.
    let altered = http
        .patch(
            "/v1/topics/orders",
            &json!({"configs": {"retention.ms": "7200000", "segment.bytes": "1048576"}, "partitions": 4}),
        )
        .await
        .expect(200);
    assert_eq!(altered["partitions"].as_array().unwrap().len(), 4);
    assert_eq!(altered["configs"]["retention.ms"], "7200000");
    assert_eq!(altered["configs"]["segment.bytes"], "1048576");
    let data = broker.data_dir().join("topics").join("orders");
    assert!(data.join("3").is_dir(), "the new partition has a directory");
    // A new partition takes records.
    assert_eq!(
        http.produce("orders", json!([{"value": "p3", "partition": 3}]))
            .await,
        [(3, 0)]
    );
    // Partitions never shrink; a null setting goes back to the default.
    http.patch("/v1/topics/orders", &json!({"partitions": 2}))
        .await
        .expect_error(400, "invalid_config");
    http.patch(
        "/v1/topics/orders",
        &json!({"configs": {"no.such.setting": "1"}}),
    )
    .await
    .expect_error(400, "invalid_config");
    let reset = http
        .patch(
            "/v1/topics/orders",
            &json!({"configs": {"segment.bytes": null}}),
        )
        .await
        .expect(200);
    assert_eq!(reset["configs"]["segment.bytes"], default_segment_bytes);
    assert_eq!(reset["configs"]["retention.ms"], "7200000");

    // Delete removes the files.
    assert!(data.is_dir());
    let deleted = http.delete("/v1/topics/orders").await.expect(200);
    assert_eq!(deleted, json!({"deleted": "orders"}));
    assert!(!data.exists(), "topic directory still there");
    let leftovers: Vec<_> = std::fs::read_dir(broker.data_dir().join("topics"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("__"))
        .collect();
    assert_eq!(leftovers, ["audit"], "only the other topic remains on disk");
    http.get("/v1/topics/orders")
        .await
        .expect_error(404, "unknown_topic");
    let list = http.get("/v1/topics").await.expect(200);
    assert_eq!(list["topics"].as_array().unwrap().len(), 2, "{list}");
    // The name can be used again, from scratch.
    http.create_topic("orders", 1).await;
    assert!(http.values("orders", 0).await.is_empty());
}

#[tokio::test]
async fn produce_json_payload_forms_headers_partitions_and_keys() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("t", 3).await;

    let key_p = partition_for_key(b"user-1", 3);
    let offs = http
        .produce(
            "t",
            json!([
                {"value": "hello", "partition": 0},
                {"value": {"base64": "/wA="}, "partition": 0},
                {"value": {"price": 3}, "partition": 0, "headers": {"trace": "abc", "bin": {"base64": "/wA="}, "none": null}},
                {"value": 42, "partition": 0},
                {"partition": 0, "key": "tomb"},
                {"key": "user-1", "value": "first"},
                {"key": "user-1", "value": "second"},
                {"key": {"base64": "/wA="}, "value": "binary key", "partition": 2},
            ]),
        )
        .await;
    assert_eq!(offs[..5], [(0, 0), (0, 1), (0, 2), (0, 3), (0, 4)]);
    assert_eq!(offs[5].0, key_p);
    assert_eq!(
        offs[6],
        (key_p, offs[5].1 + 1),
        "same key, same partition, next offset"
    );
    assert_eq!(offs[7].0, 2);

    let p0 = http.fetch("t", 0, 0).await;
    let r = p0["records"].as_array().unwrap();
    assert_eq!(r.len(), 5);
    assert_eq!(r[0]["value"], "hello");
    assert_eq!(r[0]["key"], Value::Null);
    assert!(r[0]["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
    assert_eq!(
        r[1]["value"],
        json!({"base64": "/wA="}),
        "non-UTF-8 bytes come back as base64"
    );
    assert_eq!(
        r[2]["value"], r#"{"price":3}"#,
        "a JSON value is stored as its text"
    );
    assert_eq!(
        r[2]["headers"],
        json!({"trace": "abc", "bin": {"base64": "/wA="}, "none": null})
    );
    assert_eq!(r[3]["value"], "42");
    assert_eq!(r[4]["key"], "tomb");
    assert_eq!(r[4]["value"], Value::Null, "no value is a tombstone");
    assert_eq!(p0["next_offset"], 5);
    assert_eq!(p0["high_watermark"], 5);
    assert_eq!(p0["log_start_offset"], 0);

    let keyed = http.fetch("t", key_p, offs[5].1).await;
    let values: Vec<&Value> = keyed["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["value"])
        .collect();
    assert_eq!(values[..2], [&json!("first"), &json!("second")]);
    assert_eq!(keyed["records"][0]["key"], "user-1");
    let p2 = http.fetch("t", 2, offs[7].1).await;
    let last = p2["records"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["key"], json!({"base64": "/wA="}));
    assert_eq!(last["value"], "binary key");
}

#[tokio::test]
async fn produce_acks_levels() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("acks", 1).await;
    let one = http
        .post(
            "/v1/topics/acks/records?acks=1",
            &json!({"records": [{"value": "a1"}]}),
        )
        .await
        .expect(200);
    assert_eq!(offsets(&one), [(0, 0)]);
    let all = http
        .post(
            "/v1/topics/acks/records?acks=all",
            &json!({"records": [{"value": "aall"}]}),
        )
        .await
        .expect(200);
    assert_eq!(offsets(&all), [(0, 1)]);
    let minus_one = http
        .post(
            "/v1/topics/acks/records?acks=-1",
            &json!({"records": [{"value": "a-1"}]}),
        )
        .await
        .expect(200);
    assert_eq!(offsets(&minus_one), [(0, 2)]);
    // acks=0 answers before the write: no offsets, and the record shows up soon after.
    let zero = http
        .post(
            "/v1/topics/acks/records?acks=0",
            &json!({"records": [{"value": "a0"}]}),
        )
        .await
        .expect(200);
    assert_eq!(zero, json!({"offsets": []}));
    let waited = http
        .get("/v1/topics/acks/partitions/0/records?offset=3&wait_ms=10000")
        .await
        .expect(200);
    assert_eq!(waited["records"][0]["value"], "a0");
    assert_eq!(waited["records"][0]["offset"], 3);
    // Binary bodies take acks too.
    let body = batch(&[(None, b"b0")]);
    let zero = http
        .post_raw("/v1/topics/acks/records?acks=0&partition=0", BATCHES, body)
        .await
        .expect(200);
    assert_eq!(zero, json!({"offsets": []}));
    let waited = http
        .get("/v1/topics/acks/partitions/0/records?offset=4&wait_ms=10000")
        .await
        .expect(200);
    assert_eq!(waited["records"][0]["value"], "b0");

    http.post(
        "/v1/topics/acks/records?acks=2",
        &json!({"records": [{"value": "x"}]}),
    )
    .await
    .expect_error(400, "bad_request");
    let values: Vec<Value> = http
        .values("acks", 0)
        .await
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values, ["a1", "aall", "a-1", "a0", "b0"]);
}

#[tokio::test]
async fn produce_binary_batches() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("bin", 3).await;

    // One batch to an explicit partition.
    let one = batch(&[(None, b"v0"), (None, b"v1"), (Some(b"k"), b"v2")]);
    let r = http
        .post_raw("/v1/topics/bin/records?partition=1&acks=1", BATCHES, one)
        .await
        .expect(200);
    assert_eq!(offsets(&r), [(1, 0)]);
    // Two batches back to back, application/octet-stream works too.
    let mut two = batch(&[(None, b"v3")]);
    two.extend(batch(&[(None, b"v4"), (None, b"v5")]));
    let r = http
        .post_raw(
            "/v1/topics/bin/records?partition=1&acks=all",
            "application/octet-stream",
            two,
        )
        .await
        .expect(200);
    assert_eq!(offsets(&r)[0], (1, 3));
    let p1 = http.fetch("bin", 1, 0).await;
    let values: Vec<&str> = p1["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["v0", "v1", "v2", "v3", "v4", "v5"]);
    assert_eq!(p1["records"][2]["key"], "k");
    assert_eq!(p1["next_offset"], 6);

    // Without a partition, keyed records are routed as Kafka would.
    let keys: Vec<String> = (0..20).map(|i| format!("key-{i}")).collect();
    let records: Vec<(Option<&[u8]>, &[u8])> = keys
        .iter()
        .map(|k| (Some(k.as_bytes()), k.as_bytes()))
        .collect();
    let r = http
        .post_raw("/v1/topics/bin/records", BATCHES, batch(&records))
        .await
        .expect(200);
    let routed = offsets(&r);
    assert_eq!(routed.len(), keys.len());
    for (k, (p, _)) in keys.iter().zip(&routed) {
        assert_eq!(*p, partition_for_key(k.as_bytes(), 3), "key {k}");
    }
    for (k, (p, o)) in keys.iter().zip(&routed) {
        let got = http.fetch("bin", *p, *o).await;
        assert_eq!(got["records"][0]["key"], k.as_str());
        assert_eq!(got["records"][0]["value"], k.as_str());
    }
}

#[tokio::test]
async fn fetch_offset_max_bytes_and_raw_batches() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("f", 1).await;
    for i in 0..10 {
        http.produce("f", json!([{"value": format!("r{i}")}])).await;
    }
    let from5 = http.fetch("f", 0, 5).await;
    let got: Vec<u64> = from5["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(got, [5, 6, 7, 8, 9]);
    assert_eq!(from5["next_offset"], 10);

    // A tiny budget still returns one whole batch (one record each here).
    let small = http
        .get("/v1/topics/f/partitions/0/records?offset=2&max_bytes=1")
        .await
        .expect(200);
    assert_eq!(small["records"].as_array().unwrap().len(), 1);
    assert_eq!(small["records"][0]["value"], "r2");
    assert_eq!(small["next_offset"], 3);
    // Default offset: the earliest.
    let all = http
        .get("/v1/topics/f/partitions/0/records")
        .await
        .expect(200);
    assert_eq!(all["records"].as_array().unwrap().len(), 10);
    // At the end: nothing, and where to continue.
    let end = http.fetch("f", 0, 10).await;
    assert!(
        end.get("records")
            .is_none_or(|r| r.as_array().unwrap().is_empty()),
        "{end}"
    );
    assert_eq!(end["next_offset"], 10);

    // Raw batches.
    let resp = guard(
        "raw fetch",
        http.client
            .get(broker.url("/v1/topics/f/partitions/0/records?offset=4"))
            .header(reqwest::header::ACCEPT, BATCHES)
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h[reqwest::header::CONTENT_TYPE], BATCHES);
    assert_eq!(h["sluice-next-offset"], "10");
    assert_eq!(h["sluice-high-watermark"], "10");
    assert_eq!(h["sluice-log-start-offset"], "0");
    let body = resp.bytes().await.unwrap();
    let records = decode_batches(&body);
    let offsets: Vec<u64> = records.iter().map(|r| r.0).collect();
    assert_eq!(offsets, [4, 5, 6, 7, 8, 9]);
    assert_eq!(records[0].2.as_deref(), Some(&b"r4"[..]));
}

#[tokio::test]
async fn long_poll_fetch_returns_when_a_record_arrives() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("lp", 2).await;
    let waiter = {
        let http = http.clone();
        tokio::spawn(async move {
            http.get("/v1/topics/lp/partitions/1/records?offset=0&wait_ms=20000")
                .await
        })
    };
    let producer = {
        let http = http.clone();
        tokio::spawn(async move {
            http.produce("lp", json!([{"value": "wake up", "partition": 1}]))
                .await
        })
    };
    assert_eq!(producer.await.unwrap(), [(1, 0)]);
    // The guard (15 s) is shorter than wait_ms (20 s): only a wake-up on arrival passes.
    let got = guard("long-poll fetch", waiter).await.unwrap().expect(200);
    assert_eq!(got["records"][0]["value"], "wake up");
    assert_eq!(got["next_offset"], 1);

    // Raw batches long-poll too.
    let raw = {
        let http = http.clone();
        let url = broker.url("/v1/topics/lp/partitions/0/records?offset=0&wait_ms=20000");
        tokio::spawn(async move {
            let r = http
                .client
                .get(url)
                .header(reqwest::header::ACCEPT, BATCHES)
                .send()
                .await
                .unwrap();
            (
                r.headers()["sluice-next-offset"]
                    .to_str()
                    .unwrap()
                    .to_string(),
                r.bytes().await.unwrap(),
            )
        })
    };
    http.produce("lp", json!([{"value": "raw", "partition": 0}]))
        .await;
    let (next, body) = guard("raw long-poll fetch", raw).await.unwrap();
    assert_eq!(next, "1");
    assert_eq!(decode_batches(&body)[0].2.as_deref(), Some(&b"raw"[..]));
}

#[tokio::test]
async fn offsets_earliest_latest_and_by_timestamp() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("o", 2).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    http.produce(
        "o",
        json!([
            {"value": "a", "partition": 0, "timestamp": now - 3000},
            {"value": "b", "partition": 0, "timestamp": now - 2000},
            {"value": "c", "partition": 0, "timestamp": now - 1000},
        ]),
    )
    .await;
    let o = http.get("/v1/topics/o/offsets").await.expect(200);
    assert_eq!(o["topic"], "o");
    assert_eq!(
        o["partitions"][0],
        json!({"partition": 0, "earliest": 0, "latest": 3})
    );
    assert_eq!(
        o["partitions"][1],
        json!({"partition": 1, "earliest": 0, "latest": 0})
    );

    let at = http
        .get(&format!("/v1/topics/o/offsets?timestamp={}", now - 2500))
        .await
        .expect(200);
    assert_eq!(at["partitions"][0]["offset_for_timestamp"], 1);
    assert_eq!(at["partitions"][1]["offset_for_timestamp"], Value::Null);
    let first = http
        .get(&format!("/v1/topics/o/offsets?timestamp={}", now - 10_000))
        .await
        .expect(200);
    assert_eq!(first["partitions"][0]["offset_for_timestamp"], 0);
    let after = http
        .get(&format!("/v1/topics/o/offsets?timestamp={}", now + 60_000))
        .await
        .expect(200);
    assert_eq!(after["partitions"][0]["offset_for_timestamp"], Value::Null);
    http.get("/v1/topics/o/offsets?timestamp=soon")
        .await
        .expect_error(400, "bad_request");
}

#[tokio::test]
async fn restart_finds_topics_settings_and_records() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.post(
        "/v1/topics",
        &json!({"name": "keep", "partitions": 2, "configs": {"retention.ms": "123456789"}}),
    )
    .await
    .expect(201);
    http.produce(
        "keep",
        json!([{"value": "one", "partition": 0}, {"value": "two", "partition": 1}]),
    )
    .await;
    http.post_raw(
        "/v1/topics/keep/records?partition=0",
        BATCHES,
        batch(&[(None, b"three")]),
    )
    .await
    .expect(200);
    http.patch("/v1/topics/keep", &json!({"partitions": 3}))
        .await
        .expect(200);
    let dir = broker.stop();

    let broker = TestBroker::start_in(dir, &[]);
    let http = Http::new(&broker);
    let desc = http.get("/v1/topics/keep").await.expect(200);
    assert_eq!(desc["partitions"].as_array().unwrap().len(), 3);
    assert_eq!(desc["configs"]["retention.ms"], "123456789");
    assert_eq!(
        http.values("keep", 0).await,
        [(0, json!("one")), (1, json!("three"))]
    );
    assert_eq!(http.values("keep", 1).await, [(0, json!("two"))]);
    // And it keeps going where it stopped.
    assert_eq!(
        http.produce("keep", json!([{"value": "four", "partition": 0}]))
            .await,
        [(0, 2)]
    );
}

#[tokio::test]
async fn kill_9_keeps_every_acknowledged_record() {
    let args = ["--log-default", "durability=always"];
    let broker = TestBroker::start(&args);
    let http = Http::new(&broker);
    http.create_topic("crash", 3).await;
    let mut acked: Vec<(u32, u64, String)> = Vec::new();
    for i in 0..40 {
        let value = format!("v{i}");
        if i % 4 == 3 {
            let p = i % 3;
            let r = http
                .post_raw(
                    &format!("/v1/topics/crash/records?partition={p}&acks=all"),
                    BATCHES,
                    batch(&[(None, value.as_bytes())]),
                )
                .await
                .expect(200);
            let (p, o) = offsets(&r)[0];
            acked.push((p, o, value));
        } else {
            let (p, o) = http
                .produce("crash", json!([{"key": format!("k{i}"), "value": value}]))
                .await[0];
            acked.push((p, o, value));
        }
    }
    let dir = broker.kill();

    let broker = TestBroker::start_in(dir, &args);
    let http = Http::new(&broker);
    let mut stored = Vec::new();
    for p in 0..3 {
        for (o, v) in http.values("crash", p).await {
            stored.push((p, o, v.as_str().unwrap().to_string()));
        }
    }
    acked.sort();
    stored.sort();
    assert_eq!(stored, acked);
}

#[tokio::test]
async fn key_routing_matches_kafka_murmur2() {
    // Vectors from Kafka's UtilsTest.testMurmur2.
    assert_eq!(murmur2(b"21"), -973932308);
    assert_eq!(murmur2(b"foobar"), -790332482);
    assert_eq!(to_positive(-973932308), 1173551340);
    assert_eq!(partition_for_key(b"21", 7), 1173551340 % 7);
    assert_eq!(
        partition_for_key(b"foobar", 7),
        ((-790332482i32 & 0x7fff_ffff) as u32) % 7
    );

    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("routed", 7).await;
    let mut keys: Vec<String> = vec!["21".into(), "foobar".into()];
    keys.extend((0..60).map(|i| format!("customer-{i}")));
    let records: Vec<Value> = keys.iter().map(|k| json!({"key": k, "value": k})).collect();
    let offs = http.produce("routed", Value::Array(records)).await;
    let mut used = std::collections::BTreeSet::new();
    for (k, (p, _)) in keys.iter().zip(&offs) {
        assert_eq!(*p, partition_for_key(k.as_bytes(), 7), "key {k}");
        used.insert(*p);
    }
    assert_eq!(
        offs[0].0, 3,
        "\"21\" goes to partition 3 of 7, as with a Kafka client"
    );
    assert_eq!(offs[1].0, 0, "\"foobar\" goes to partition 0 of 7");
    assert!(used.len() > 3, "keys spread over partitions: {used:?}");
}

#[tokio::test]
async fn metrics_health_and_openapi() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    assert_eq!(http.get("/healthz").await.expect(200), "ok\n");
    assert_eq!(http.get("/readyz").await.expect(200), "ready\n");

    http.create_topic("m", 2).await;
    http.produce("m", json!([{"value": "a", "partition": 1}, {"value": "b", "partition": 1}, {"value": "c", "partition": 1}]))
        .await;
    http.fetch("m", 1, 0).await;
    let mut ws = common::net::Ws::connect(&broker).await;
    ws.hello(false).await;

    let text = http.metrics().await;
    let line = |prefix: &str| -> f64 {
        let l = text
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in metrics:\n{text}"));
        l.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let labels = r#"{topic="m",partition="1"}"#;
    assert_eq!(line(&format!("sluice_records_in_total{labels}")), 3.0);
    assert!(line(&format!("sluice_bytes_in_total{labels}")) > 0.0);
    assert_eq!(line(&format!("sluice_records_out_total{labels}")), 3.0);
    assert!(line(&format!("sluice_bytes_out_total{labels}")) > 0.0);
    assert!(line(&format!("sluice_log_size_bytes{labels}")) > 0.0);
    assert_eq!(line(&format!("sluice_log_end_offset{labels}")), 3.0);
    assert_eq!(
        line(r#"sluice_log_size_bytes{topic="m",partition="0"}"#),
        0.0
    );
    assert!(
        text.contains("sluice_http_request_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(
        line(
            r#"sluice_http_request_duration_seconds_count{method="POST",endpoint="/v1/topics/{topic}/records",status="200"}"#
        ) >= 1.0
    );
    assert_eq!(line("sluice_websocket_connections "), 1.0);
    assert!(
        line("sluice_connections ") >= 2.0,
        "the open WebSocket and this request"
    );
    assert!(line("sluice_websocket_frames_in_total") >= 1.0);

    let doc = http.get("/v1/openapi.json").await.expect(200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/topics",
        "/v1/topics/{topic}",
        "/v1/topics/{topic}/records",
        "/v1/topics/{topic}/partitions/{partition}/records",
        "/v1/topics/{topic}/offsets",
    ] {
        assert!(paths.contains_key(p), "openapi.json lacks {p}");
    }
    for m in ["get", "patch", "delete"] {
        assert!(
            paths["/v1/topics/{topic}"].get(m).is_some(),
            "no {m} on /v1/topics/{{topic}}"
        );
    }
    assert!(doc["components"]["schemas"].get("ProduceRequest").is_some());

    // The cluster lists this broker at the address it actually bound (started with port 0).
    let cluster = http.get("/v1/cluster").await.expect(200);
    assert_eq!(cluster["brokers"][0]["address"], broker.addr.to_string());
    assert_ne!(broker.addr.port(), 0);
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405_in_json() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("t", 1).await;
    // (`/` is the web console.)
    for path in [
        "/nope",
        "/v1/nope",
        "/v2/topics",
        "/v1/topics/t/partitions",
        "/v1/topics/t/partitions/0",
    ] {
        let e = http.get(path).await.expect_error(404, "not_found");
        assert!(e["message"].as_str().unwrap().contains("openapi"), "{e}");
    }
    http.post("/v1/nope", &json!({}))
        .await
        .expect_error(404, "not_found");
    let url = |path: &str| broker.url(path);
    let wrong = [
        http.client.delete(url("/v1/topics")),
        http.client.put(url("/v1/topics/t")),
        http.client.post(url("/v1/topics/t")),
        http.client.post(url("/healthz")),
        http.client.delete(url("/v1/topics/t/records")),
        http.client.post(url("/v1/topics/t/partitions/0/records")),
        http.client.put(url("/v1/cluster")),
    ];
    for req in wrong {
        let r = http.send(req).await;
        assert!(r.headers.contains_key(reqwest::header::ALLOW), "{r:?}");
        r.expect_error(405, "method_not_allowed");
    }
    // The topic is untouched.
    assert_eq!(http.get("/v1/topics/t").await.expect(200)["name"], "t");
}

#[tokio::test]
async fn sigterm_answers_long_polls_and_closes_websockets() {
    // A long shutdown timeout: if long-polls were waited out, stop() would fail its own limit.
    let broker = TestBroker::start(&["--shutdown-timeout-ms", "60000"]);
    let http = Http::new(&broker);
    http.create_topic("bye", 1).await;
    http.produce("bye", json!([{"value": "kept"}])).await;

    let mut ws = common::net::Ws::connect(&broker).await;
    ws.hello(false).await;
    ws.send_json(&json!({"id": 1, "op": "subscribe", "topic": "bye", "from": "earliest", "credit_bytes": 1 << 20}))
        .await;
    ws.send_json(&json!({"id": 2, "op": "fetch", "topic": "bye", "partition": 0, "offset": 1, "max_wait_ms": 20000}))
        .await;
    ws.send_json(&json!({"id": 3, "op": "list_topics"})).await;
    // The subscription's answer and push, and the list: the fetch is in flight by then.
    let mut seen = 0;
    while seen < 3 {
        let f = ws.recv_json().await;
        assert!(f["id"] != 2, "the long-poll answered early: {f}");
        seen += 1;
    }
    let poll = {
        let http = http.clone();
        tokio::spawn(async move {
            http.get("/v1/topics/bye/partitions/0/records?offset=1&wait_ms=20000")
                .await
        })
    };
    // Wait until the broker counts the long-poll in progress (with the WebSocket and the
    // metrics request itself).
    guard("long-poll in progress", async {
        loop {
            let text = http.metrics().await;
            let open: f64 = text
                .lines()
                .find_map(|l| l.strip_prefix("sluice_connections "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0.0);
            if open >= 3.0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;

    // The long-poll gets a whole (empty) answer well before its 20 s are up (the guard is
    // 15 s), the WebSocket a "going away" close, and the broker stops.
    let stop = tokio::task::spawn_blocking(move || broker.stop());
    let (answered, dir) = guard("shutdown", async {
        (poll.await.unwrap(), stop.await.unwrap())
    })
    .await;
    let answered = answered.expect(200);
    assert!(
        answered
            .get("records")
            .is_none_or(|r| r.as_array().unwrap().is_empty()),
        "{answered}"
    );
    assert_eq!(answered["next_offset"], 1);
    assert_eq!(ws.closed().await, Some(1001));

    let broker = TestBroker::start_in(dir, &[]);
    assert_eq!(
        Http::new(&broker).values("bye", 0).await,
        [(0, json!("kept"))]
    );
}
