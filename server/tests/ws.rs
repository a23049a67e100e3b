//! The WebSocket endpoint /v1/ws of the real `sluice` binary: handshake, multiplexing, JSON and
//! MessagePack frames, produce/fetch/admin requests, subscriptions with credit, in-flight limit,
//! idle subscribers.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::TestBroker;
use common::net::{Http, Ws, batch, batch_spans, decode_batches, guard};
use futures_util::StreamExt;
use serde_json::{Value, json};
use sluice_protocol::frame::{self, Request, Response as Answer, ServerBody, ServerFrame};
use sluice_protocol::types::{Acks, CreateTopic, RecordOffset, StartFrom};
use sluice_protocol::{ErrorCode, PROTOCOL_VERSION};
use tokio_tungstenite::tungstenite::Message;

fn create(name: &str, partitions: u32) -> Request {
    Request::CreateTopic(CreateTopic {
        name: name.into(),
        partitions,
        replication_factor: 1,
        configs: Default::default(),
    })
}

#[tokio::test]
async fn hello_handshake_and_version_mismatch() {
    let broker = TestBroker::start(&[]);

    // The documented JSON shape.
    let mut ws = Ws::connect(&broker).await;
    ws.send_json(&json!({"id": 1, "op": "hello", "version": PROTOCOL_VERSION, "client": "my-app"}))
        .await;
    let hello = ws.recv_json().await;
    assert_eq!(hello["id"], 1);
    assert_eq!(hello["ok"]["type"], "hello");
    assert_eq!(hello["ok"]["version"], PROTOCOL_VERSION);
    assert!(
        hello["ok"]["server"]
            .as_str()
            .unwrap()
            .starts_with("sluice/")
    );
    assert!(hello["ok"]["max_frame_bytes"].as_u64().unwrap() > 0);
    assert!(hello["ok"]["max_in_flight"].as_u64().unwrap() > 0);
    // A second hello is refused, the connection stays.
    ws.send_json(&json!({"id": 2, "op": "hello", "version": PROTOCOL_VERSION}))
        .await;
    let again = ws.recv_json().await;
    assert_eq!(again["id"], 2);
    assert_eq!(again["error"]["code"], "bad_request");
    assert!(matches!(
        ws.call(3, Request::ListTopics, false).await,
        Ok(Answer::Topics(_))
    ));

    // A version the broker does not speak: an error naming the request, then a close.
    let mut old = Ws::connect(&broker).await;
    old.send_json(&json!({"id": 7, "op": "hello", "version": 999}))
        .await;
    let refused = old.recv_json().await;
    assert_eq!(refused["id"], 7);
    assert_eq!(refused["error"]["code"], "unsupported_version");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("999")
    );
    assert_eq!(old.closed().await, Some(1002));

    // Binary hello is answered in binary.
    let mut bin = Ws::connect(&broker).await;
    bin.hello(true).await;
}

#[tokio::test]
async fn requests_before_hello_get_handshake_required() {
    let broker = TestBroker::start(&[]);
    let mut ws = Ws::connect(&broker).await;
    ws.send_json(&json!({"id": 1, "op": "list_topics"})).await;
    let e = ws.recv_json().await;
    assert_eq!(e["id"], 1);
    assert_eq!(e["error"]["code"], "handshake_required");
    let err = ws.call(2, create("early", 1), true).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::HandshakeRequired);
    // Nothing was done, and the connection still works once it says hello.
    ws.hello(false).await;
    match ws.call(3, Request::ListTopics, false).await {
        Ok(Answer::Topics(t)) => assert!(t.topics.iter().all(|t| t.internal), "{t:?}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn admin_produce_fetch_in_json() {
    let broker = TestBroker::start(&[]);
    let mut ws = Ws::connect(&broker).await;
    ws.hello(false).await;
    match ws.call(1, create("j", 2), false).await {
        Ok(Answer::Topic(t)) => assert_eq!(t.partitions.len(), 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        ws.call(2, create("j", 2), false).await.unwrap_err().code,
        ErrorCode::TopicExists
    );
    // The documented produce shape.
    ws.send_json(&json!({"id": 3, "op": "produce", "topic": "j", "acks": "1",
        "records": [{"key": "k", "value": "v", "partition": 1}, {"value": {"base64": "/wA="}, "partition": 1, "headers": {"h": "x"}}]}))
        .await;
    let produced = ws.recv_json().await;
    assert_eq!(
        produced,
        json!({"id": 3, "ok": {"type": "produced", "offsets": [{"partition": 1, "offset": 0}, {"partition": 1, "offset": 1}]}})
    );
    ws.send_json(&json!({"id": 4, "op": "fetch", "topic": "j", "partition": 1, "offset": 0}))
        .await;
    let fetched = ws.recv_json().await;
    assert_eq!(fetched["id"], 4);
    assert_eq!(fetched["ok"]["type"], "fetched");
    let records = fetched["ok"]["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["key"], "k");
    assert_eq!(records[0]["value"], "v");
    assert_eq!(records[1]["value"], json!({"base64": "/wA="}));
    assert_eq!(records[1]["headers"], json!({"h": "x"}));
    assert_eq!(fetched["ok"]["next_offset"], 2);
    assert!(
        fetched["ok"].get("batches").is_none(),
        "JSON fetches carry records, not batches"
    );

    ws.send_json(&json!({"id": 5, "op": "list_offsets", "topic": "j"}))
        .await;
    let o = ws.recv_json().await;
    assert_eq!(o["ok"]["partitions"][1]["latest"], 2);
    ws.send_json(
        &json!({"id": 6, "op": "alter_topic", "topic": "j", "changes": {"partitions": 3}}),
    )
    .await;
    assert_eq!(
        ws.recv_json().await["ok"]["partitions"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    ws.send_json(&json!({"id": 7, "op": "describe_topic", "topic": "j"}))
        .await;
    assert_eq!(
        ws.recv_json().await["ok"]["partitions"][1]["log_end_offset"],
        2
    );
    ws.send_json(&json!({"id": 8, "op": "fetch", "topic": "nope", "partition": 0, "offset": 0}))
        .await;
    let unknown = ws.recv_json().await;
    assert_eq!(unknown["id"], 8);
    assert_eq!(unknown["error"]["code"], "unknown_topic");
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nope")
    );
    ws.send_json(&json!({"id": 9, "op": "delete_topic", "topic": "j"}))
        .await;
    assert_eq!(
        ws.recv_json().await,
        json!({"id": 9, "ok": {"type": "deleted", "topic": "j"}})
    );
    assert!(!broker.data_dir().join("topics").join("j").exists());
}

#[tokio::test]
async fn binary_frames_carry_batches_both_ways() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    let mut ws = Ws::connect(&broker).await;
    ws.hello(true).await;
    assert!(matches!(
        ws.call(1, create("b", 2), true).await,
        Ok(Answer::Topic(_))
    ));
    let mut batches = batch(&[(Some(b"k0"), b"v0"), (None, &[0xff, 0x00])]);
    batches.extend(batch(&[(None, b"v2")]));
    let produce = Request::Produce {
        topic: "b".into(),
        acks: Acks::Leader,
        records: vec![],
        batches: Some(batches),
        partition: Some(1),
    };
    match ws.call(2, produce, true).await {
        Ok(Answer::Produced(p)) => {
            assert_eq!((p.offsets[0].partition, p.offsets[0].offset), (1, 0))
        }
        other => panic!("{other:?}"),
    }
    let fetch = Request::Fetch {
        topic: "b".into(),
        partition: 1,
        offset: 1,
        max_bytes: None,
        max_wait_ms: None,
        filter: None,
        map: None,
    };
    let f = match ws.call(3, fetch, true).await {
        Ok(Answer::Fetched(f)) => f,
        other => panic!("{other:?}"),
    };
    assert!(f.records.is_empty(), "binary fetches carry raw batches");
    assert_eq!(f.next_offset, 3);
    let raw = decode_batches(&f.batches.expect("batches"));
    // The first batch may start before the requested offset; the client skips those.
    let from1: Vec<_> = raw.into_iter().filter(|r| r.0 >= 1).collect();
    assert_eq!(
        from1,
        [
            (1, None, Some(vec![0xff, 0x00])),
            (2, None, Some(b"v2".to_vec()))
        ]
    );
    // Binary produce of JSON-style records works too; text frames on the same connection are
    // answered in text.
    let records = Request::Produce {
        topic: "b".into(),
        acks: Acks::All,
        records: vec![sluice_protocol::types::ProduceRecord {
            value: Some("r".into()),
            partition: Some(0),
            ..Default::default()
        }],
        batches: None,
        partition: None,
    };
    assert!(matches!(
        ws.call(4, records, true).await,
        Ok(Answer::Produced(_))
    ));
    assert!(matches!(
        ws.call(5, Request::ListTopics, false).await,
        Ok(Answer::Topics(_))
    ));
    assert_eq!(http.values("b", 0).await, [(0, json!("r"))]);
    // A produce needs records or batches, not both or neither.
    let neither = Request::Produce {
        topic: "b".into(),
        acks: Acks::All,
        records: vec![],
        batches: None,
        partition: None,
    };
    assert_eq!(
        ws.call(6, neither, true).await.unwrap_err().code,
        ErrorCode::BadRequest
    );

    // Binary subscriptions push raw batches.
    let sub = Request::Subscribe {
        topic: "b".into(),
        partitions: Some(vec![1]),
        from: StartFrom::Earliest,
        credit_bytes: 1 << 20,
        positions: None,
        filter: None,
        map: None,
    };
    ws.send(7, sub, true).await;
    let mut got = Vec::new();
    let mut answered = false;
    while !answered || got.len() < 3 {
        let (f, binary) = ws.recv_any().await;
        assert!(binary);
        match f.body {
            ServerBody::Ok(Answer::Subscribed {
                subscription,
                positions,
            }) => {
                assert_eq!(f.id, Some(7));
                assert_eq!(subscription, 1);
                assert_eq!((positions[0].partition, positions[0].offset), (1, 0));
                answered = true;
            }
            ServerBody::Records(d) => {
                assert!(answered, "a push came before the subscription was answered");
                assert_eq!(d.subscription, 1);
                got.extend(
                    decode_batches(&d.fetch.batches.expect("batches"))
                        .into_iter()
                        .map(|r| r.0),
                );
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, [0, 1, 2]);
}

#[tokio::test]
async fn multiplexed_requests_are_answered_out_of_order() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("mx", 1).await;
    let mut ws = Ws::connect(&broker).await;
    ws.hello(false).await;
    // A long-poll fetch, then a quick request: the quick one is answered first.
    ws.send_json(&json!({"id": 10, "op": "fetch", "topic": "mx", "partition": 0, "offset": 0, "max_wait_ms": 20000})).await;
    ws.send_json(&json!({"id": 11, "op": "list_topics"})).await;
    let first = ws.recv_json().await;
    assert_eq!(first["id"], 11);
    assert_eq!(
        first["ok"]["topics"][1]["name"], "mx",
        "after the internal __consumer_offsets"
    );
    // A produce on the same connection wakes the fetch; both answers arrive, in any order.
    ws.send_json(&json!({"id": 12, "op": "produce", "topic": "mx", "records": [{"value": "x"}]}))
        .await;
    let mut answers = std::collections::BTreeMap::new();
    for _ in 0..2 {
        let f = ws.recv_json().await;
        answers.insert(f["id"].as_u64().unwrap(), f);
    }
    assert_eq!(answers[&12]["ok"]["offsets"][0]["offset"], 0);
    assert_eq!(answers[&10]["ok"]["records"][0]["value"], "x");
    // Ids are the client's: a large one and zero work.
    assert!(ws.call(u64::MAX, Request::ListTopics, false).await.is_ok());
    assert!(ws.call(0, Request::ListTopics, true).await.is_ok());
}

/// Reads frames until the subscription has pushed every offset in `want` (in order); other
/// frames must be answers to `ids` (returned).
async fn collect_pushes(
    ws: &mut Ws,
    sub: u64,
    want: &[u64],
    ids: &[u64],
) -> (Vec<(u64, Value)>, Vec<serde_json::Value>) {
    let mut got = Vec::new();
    let mut answers = Vec::new();
    while got.len() < want.len() || answers.len() < ids.len() {
        let f = ws.recv_json().await;
        if let Some(r) = f.get("records") {
            assert_eq!(r["subscription"], sub, "{f}");
            assert!(f.get("id").is_none(), "pushes carry no id: {f}");
            for rec in r["records"].as_array().unwrap() {
                got.push((rec["offset"].as_u64().unwrap(), rec["value"].clone()));
            }
        } else {
            assert!(
                ids.contains(&f["id"].as_u64().unwrap()),
                "unexpected frame {f}"
            );
            answers.push(f);
        }
    }
    let offsets: Vec<u64> = got.iter().map(|g| g.0).collect();
    assert_eq!(offsets, want);
    (got, answers)
}

#[tokio::test]
async fn subscribe_from_earliest_latest_and_offset() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("s", 1).await;
    for i in 0..5 {
        http.produce("s", json!([{"value": format!("r{i}")}])).await;
    }
    let mut ws = Ws::connect(&broker).await;
    ws.hello(false).await;

    ws.send_json(&json!({"id": 1, "op": "subscribe", "topic": "s", "from": "earliest", "credit_bytes": 1 << 20})).await;
    let (got, answers) = collect_pushes(&mut ws, 1, &[0, 1, 2, 3, 4], &[1]).await;
    assert_eq!(
        answers[0]["ok"],
        json!({"type": "subscribed", "subscription": 1, "positions": [{"partition": 0, "offset": 0}]})
    );
    assert_eq!(got[4].1, "r4");

    ws.send_json(&json!({"id": 2, "op": "subscribe", "topic": "s", "from": {"offset": 3}, "credit_bytes": 1 << 20})).await;
    let (got, answers) = collect_pushes(&mut ws, 2, &[3, 4], &[2]).await;
    assert_eq!(
        answers[0]["ok"]["positions"],
        json!([{"partition": 0, "offset": 3}])
    );
    assert_eq!(got[0].1, "r3");

    // From latest: nothing old; new records arrive on every live subscription.
    ws.send_json(&json!({"id": 3, "op": "subscribe", "topic": "s", "from": "latest", "credit_bytes": 1 << 20})).await;
    let subscribed = ws.recv_json().await;
    assert_eq!(
        subscribed["ok"]["positions"],
        json!([{"partition": 0, "offset": 5}])
    );
    http.produce("s", json!([{"value": "new"}])).await;
    let mut subs = Vec::new();
    for _ in 0..3 {
        let f = ws.recv_json().await;
        assert_eq!(f["records"]["records"][0]["offset"], 5, "{f}");
        assert_eq!(f["records"]["records"][0]["value"], "new");
        subs.push(f["records"]["subscription"].as_u64().unwrap());
    }
    subs.sort();
    assert_eq!(subs, [1, 2, 3]);

    // Errors: unknown topic, unknown partition, unknown subscription.
    ws.send_json(&json!({"id": 4, "op": "subscribe", "topic": "nope", "credit_bytes": 1}))
        .await;
    assert_eq!(ws.recv_json().await["error"]["code"], "unknown_topic");
    ws.send_json(
        &json!({"id": 5, "op": "subscribe", "topic": "s", "partitions": [3], "credit_bytes": 1}),
    )
    .await;
    assert_eq!(ws.recv_json().await["error"]["code"], "unknown_partition");
    ws.send_json(&json!({"id": 6, "op": "credit", "subscription": 99, "bytes": 1}))
        .await;
    assert_eq!(
        ws.recv_json().await["error"]["code"],
        "unknown_subscription"
    );
    ws.send_json(&json!({"id": 7, "op": "unsubscribe", "subscription": 99}))
        .await;
    assert_eq!(
        ws.recv_json().await["error"]["code"],
        "unknown_subscription"
    );
}

#[tokio::test]
async fn subscription_credit_flow_control_and_unsubscribe() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("c", 1).await;
    let mut ws = Ws::connect(&broker).await;
    ws.hello(false).await;
    // One byte of credit: one batch goes out, then the credit is spent.
    ws.send_json(
        &json!({"id": 1, "op": "subscribe", "topic": "c", "from": "latest", "credit_bytes": 1}),
    )
    .await;
    let subscribed = ws.recv_json().await;
    assert_eq!(subscribed["ok"]["subscription"], 1);
    http.produce("c", json!([{"value": "a"}])).await;
    collect_pushes(&mut ws, 1, &[0], &[]).await;

    // Out of credit: more records, no pushes.
    http.produce("c", json!([{"value": "b"}])).await;
    http.produce("c", json!([{"value": "c"}])).await;
    ws.silent_for(300).await;

    // Credit brings them.
    ws.send_json(&json!({"id": 2, "op": "credit", "subscription": 1, "bytes": 1 << 20}))
        .await;
    let (got, answers) = collect_pushes(&mut ws, 1, &[1, 2], &[2]).await;
    assert_eq!(answers[0]["ok"], json!({"type": "done"}));
    assert_eq!(got[1].1, "c");
    http.produce("c", json!([{"value": "d"}])).await;
    collect_pushes(&mut ws, 1, &[3], &[]).await;

    // Unsubscribed: nothing more.
    ws.send_json(&json!({"id": 3, "op": "unsubscribe", "subscription": 1}))
        .await;
    assert_eq!(
        ws.recv_json().await,
        json!({"id": 3, "ok": {"type": "done"}})
    );
    http.produce("c", json!([{"value": "e"}])).await;
    ws.silent_for(300).await;
    assert!(ws.call(4, Request::ListTopics, false).await.is_ok());
    ws.send_json(&json!({"id": 5, "op": "credit", "subscription": 1, "bytes": 1}))
        .await;
    assert_eq!(
        ws.recv_json().await["error"]["code"],
        "unknown_subscription"
    );
}

#[tokio::test]
async fn too_many_requests_in_flight() {
    let broker = TestBroker::start(&["--max-in-flight", "1"]);
    let http = Http::new(&broker);
    http.create_topic("f", 1).await;
    let mut ws = Ws::connect(&broker).await;
    ws.hello(false).await;
    ws.send_json(&json!({"id": 1, "op": "fetch", "topic": "f", "partition": 0, "offset": 0, "max_wait_ms": 20000})).await;
    ws.send_json(&json!({"id": 2, "op": "list_topics"})).await;
    let refused = ws.recv_json().await;
    assert_eq!(refused["id"], 2);
    assert_eq!(refused["error"]["code"], "too_many_requests");
    http.produce("f", json!([{"value": "v"}])).await;
    let fetched = ws.recv_json().await;
    assert_eq!(fetched["id"], 1);
    assert_eq!(fetched["ok"]["records"][0]["value"], "v");
    // Once the answer is in, the slot is free again.
    for id in 3..10 {
        assert!(
            ws.call(id, Request::ListTopics, false).await.is_ok(),
            "request {id}"
        );
    }
}

#[tokio::test]
async fn too_many_subscriptions() {
    let broker = TestBroker::start(&["--max-subscriptions", "2"]);
    Http::new(&broker).create_topic("s", 1).await;
    let mut ws = Ws::connect(&broker).await;
    ws.hello(false).await;
    for id in 1..=2 {
        ws.send_json(&json!({"id": id, "op": "subscribe", "topic": "s", "credit_bytes": 1}))
            .await;
        assert_eq!(ws.recv_json().await["ok"]["subscription"], id);
    }
    ws.send_json(&json!({"id": 3, "op": "subscribe", "topic": "s", "credit_bytes": 1}))
        .await;
    let refused = ws.recv_json().await;
    assert_eq!(refused["id"], 3);
    assert_eq!(refused["error"]["code"], "too_many_requests");
    // Unsubscribing makes room.
    ws.send_json(&json!({"id": 4, "op": "unsubscribe", "subscription": 1}))
        .await;
    assert_eq!(ws.recv_json().await["ok"]["type"], "done");
    ws.send_json(&json!({"id": 5, "op": "subscribe", "topic": "s", "credit_bytes": 1}))
        .await;
    assert_eq!(ws.recv_json().await["ok"]["subscription"], 3);
}

#[tokio::test]
async fn subscribe_partitions_must_be_distinct_and_not_empty() {
    let broker = TestBroker::start(&[]);
    Http::new(&broker).create_topic("p", 2).await;
    let mut ws = Ws::connect(&broker).await;
    ws.hello(false).await;
    for (id, partitions, says) in [
        (1, json!([]), "empty"),
        (2, json!([1, 0, 1]), "partition 1 is listed twice"),
    ] {
        ws.send_json(&json!({"id": id, "op": "subscribe", "topic": "p", "partitions": partitions, "credit_bytes": 1}))
            .await;
        let e = ws.recv_json().await;
        assert_eq!(e["id"], id);
        assert_eq!(e["error"]["code"], "bad_request", "{e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(says),
            "{e}"
        );
    }
    let twice = Request::Subscribe {
        topic: "p".into(),
        partitions: Some(vec![0, 0]),
        from: StartFrom::Earliest,
        credit_bytes: 1,
        positions: None,
        filter: None,
        map: None,
    };
    assert_eq!(
        ws.call(3, twice, true).await.unwrap_err().code,
        ErrorCode::BadRequest
    );
    // Nothing was subscribed: the first good subscription gets id 1, in the order asked.
    ws.send_json(
        &json!({"id": 4, "op": "subscribe", "topic": "p", "partitions": [1, 0], "credit_bytes": 1}),
    )
    .await;
    assert_eq!(
        ws.recv_json().await,
        json!({"id": 4, "ok": {"type": "subscribed", "subscription": 1,
            "positions": [{"partition": 1, "offset": 0}, {"partition": 0, "offset": 0}]}})
    );
}

/// Reads one JSON push of subscription 1 starting at `next`; checks that its `bytes` is the size
/// of the stored batches of its records (one record per batch, sizes by first offset), moves
/// `next` on and returns the bytes.
async fn costed_push(ws: &mut Ws, next: &mut u64, size_of: &HashMap<u64, usize>) -> u64 {
    let f = ws.recv_json().await;
    let d = &f["records"];
    assert_eq!(d["subscription"], 1, "{f}");
    let bytes = d["bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("no bytes: {f}"));
    let records = d["records"].as_array().unwrap();
    assert_eq!(records[0]["offset"], *next, "{f}");
    let end = d["next_offset"].as_u64().unwrap();
    assert_eq!(end, *next + records.len() as u64, "{f}");
    let expected: usize = (*next..end).map(|o| size_of[&o]).sum();
    assert_eq!(bytes, expected as u64, "{f}");
    *next = end;
    bytes
}

#[tokio::test]
async fn pushes_say_how_much_credit_they_used() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("cost", 1).await;
    // One request, one stored batch, one record each.
    for i in 0..10 {
        http.produce("cost", json!([{"value": format!("value-{i}")}]))
            .await;
    }
    let spans = batch_spans(&http.fetch_raw("cost", 0, 0).await);
    assert_eq!(spans.len(), 10, "{spans:?}");
    let size_of: HashMap<u64, usize> = spans.iter().map(|&(first, _, len)| (first, len)).collect();

    // Binary: `bytes` is the length of the batches the push carries.
    let mut bin = Ws::connect(&broker).await;
    bin.hello(true).await;
    let sub = Request::Subscribe {
        topic: "cost".into(),
        partitions: None,
        from: StartFrom::Earliest,
        credit_bytes: 1 << 20,
        positions: None,
        filter: None,
        map: None,
    };
    bin.send(1, sub, true).await;
    let (mut next, mut total) = (0, 0);
    while next < 10 {
        let (f, _) = bin.recv_any().await;
        match f.body {
            ServerBody::Ok(Answer::Subscribed { .. }) => {}
            ServerBody::Records(d) => {
                let batches = d.fetch.batches.expect("batches");
                assert_eq!(d.bytes, batches.len() as u64);
                total += d.bytes;
                next = d.fetch.next_offset;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(total, spans.iter().map(|s| s.2 as u64).sum::<u64>());

    // JSON: the same count (the stored batches, not the JSON), by which a client tracks its
    // credit. With credit for two and a half batches, pushes stop once they used all of it.
    let mut ws = Ws::connect(&broker).await;
    ws.hello(false).await;
    let credit = (size_of[&0] * 5 / 2) as u64;
    ws.send_json(&json!({"id": 1, "op": "subscribe", "topic": "cost", "from": "earliest", "credit_bytes": credit}))
        .await;
    assert_eq!(ws.recv_json().await["ok"]["subscription"], 1);
    let mut used = 0u64;
    let mut next = 0;
    while used < credit {
        used += costed_push(&mut ws, &mut next, &size_of).await;
    }
    assert!(next < 10, "the credit ran out before the end: {next}");
    ws.silent_for(300).await;
    // Back to exactly zero: still nothing. One byte more: the next push.
    ws.send_json(&json!({"id": 2, "op": "credit", "subscription": 1, "bytes": used - credit}))
        .await;
    assert_eq!(
        ws.recv_json().await,
        json!({"id": 2, "ok": {"type": "done"}})
    );
    ws.silent_for(300).await;
    ws.send_json(&json!({"id": 3, "op": "credit", "subscription": 1, "bytes": 1}))
        .await;
    assert_eq!(
        ws.recv_json().await,
        json!({"id": 3, "ok": {"type": "done"}})
    );
    let from = next;
    assert!(costed_push(&mut ws, &mut next, &size_of).await > 0);
    assert!(next > from);
}

#[tokio::test]
async fn idle_subscribers_are_pinged_instead_of_closed() {
    let broker = TestBroker::start(&["--idle-timeout-ms", "300"]);
    let http = Http::new(&broker);
    http.create_topic("quiet", 1).await;
    let start = Instant::now();
    let mut listener = Ws::connect(&broker).await;
    listener.hello(false).await;
    listener
        .send_json(&json!({"id": 1, "op": "subscribe", "topic": "quiet", "credit_bytes": 1 << 20}))
        .await;
    assert_eq!(listener.recv_json().await["ok"]["subscription"], 1);

    // Without a live subscription the idle timeout closes, as before: never subscribed, or
    // unsubscribed.
    let mut plain = Ws::connect(&broker).await;
    plain.hello(false).await;
    let mut former = Ws::connect(&broker).await;
    former.hello(true).await;
    former
        .send_json(&json!({"id": 1, "op": "subscribe", "topic": "quiet", "credit_bytes": 1}))
        .await;
    assert_eq!(former.recv_json().await["ok"]["subscription"], 1);
    former
        .send_json(&json!({"id": 2, "op": "unsubscribe", "subscription": 1}))
        .await;
    assert_eq!(former.recv_json().await["ok"]["type"], "done");
    assert_eq!(plain.closed().await, Some(1001));
    assert_eq!(former.closed().await, Some(1001));

    // The subscriber, which sends nothing itself (its WebSocket library answers pings), is
    // pinged once per idle period and stays connected.
    let mut pings = 0;
    while pings < 4 {
        match guard("a ping", listener.stream.next()).await {
            Some(Ok(Message::Ping(_))) => pings += 1,
            other => panic!("expected a ping, got {other:?}"),
        }
    }
    assert!(
        start.elapsed() > Duration::from_millis(900),
        "four pings take more than three idle periods: {:?}",
        start.elapsed()
    );
    // Records produced now, long after the last request, are still pushed.
    http.produce("quiet", json!([{"value": "still there?"}]))
        .await;
    let push = listener.recv_json().await;
    assert_eq!(
        push["records"]["records"][0]["value"], "still there?",
        "{push}"
    );
    assert!(listener.call(2, Request::ListTopics, false).await.is_ok());
}

#[tokio::test]
async fn a_subscription_that_fails_names_itself_and_frees_its_slot() {
    let broker = TestBroker::start(&["--max-subscriptions", "1"]);
    let http = Http::new(&broker);
    http.create_topic("gone", 1).await;
    http.create_topic("stays", 1).await;
    let mut ws = Ws::connect(&broker).await;
    ws.hello(false).await;
    ws.send_json(&json!({"id": 1, "op": "subscribe", "topic": "gone", "credit_bytes": 0}))
        .await;
    assert_eq!(ws.recv_json().await["ok"]["subscription"], 1);
    ws.send_json(&json!({"id": 2, "op": "subscribe", "topic": "stays", "credit_bytes": 0}))
        .await;
    assert_eq!(ws.recv_json().await["error"]["code"], "too_many_requests");

    // The topic goes away; the subscription's next read (on new credit) fails, and the error
    // frame says which subscription ended.
    http.delete("/v1/topics/gone").await.expect(200);
    ws.send_json(&json!({"id": 3, "op": "credit", "subscription": 1, "bytes": 1 << 20}))
        .await;
    let mut ended = None;
    let mut answered = false;
    while ended.is_none() || !answered {
        let f = ws.recv_json().await;
        if f.get("id").is_some() {
            assert_eq!(f, json!({"id": 3, "ok": {"type": "done"}}));
            answered = true;
        } else {
            ended = Some(f);
        }
    }
    let ended = ended.unwrap();
    assert_eq!(ended["subscription"], 1, "{ended}");
    assert_eq!(ended["error"]["code"], "unknown_topic", "{ended}");
    let decoded: ServerFrame = frame::from_json(&ended.to_string()).unwrap();
    assert_eq!((decoded.id, decoded.subscription), (None, Some(1)));

    // The ended subscription no longer counts against --max-subscriptions. (Not always at the
    // very moment its error frame arrives: the broker counts it out once its delivery task has
    // finished, just after the frame is queued, so a subscribe right away may still be refused;
    // retry until it is not.)
    let mut id = 4;
    guard("the ended subscription's slot", async {
        loop {
            ws.send_json(
                &json!({"id": id, "op": "subscribe", "topic": "stays", "credit_bytes": 1 << 20}),
            )
            .await;
            let f = ws.recv_json().await;
            assert_eq!(f["id"], id, "{f}");
            if f["error"]["code"] != "too_many_requests" {
                assert_eq!(f["ok"]["subscription"], 2, "{f}");
                return;
            }
            id += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    http.produce("stays", json!([{"value": "s"}])).await;
    let push = ws.recv_json().await;
    assert_eq!(push["records"]["subscription"], 2, "{push}");
}

/// What a client built on `sluice-protocol` makes of frames from a newer broker.
#[test]
fn unknown_error_codes_and_answer_types_decode_leniently() {
    let frames = [
        json!({"id": 1, "error": {"code": "brand_new_code", "message": "from a newer broker"}}),
        json!({"id": 2, "ok": {"type": "brand_new_answer", "field": [1, 2]}}),
        json!({"id": 3, "ok": {"type": "done"}, "future_field": true}),
    ];
    for (i, v) in frames.iter().enumerate() {
        let json: ServerFrame =
            frame::from_json(&v.to_string()).unwrap_or_else(|e| panic!("JSON {v}: {e}"));
        let bin: ServerFrame = frame::from_binary(&frame::to_binary(v))
            .unwrap_or_else(|e| panic!("MessagePack {v}: {e}"));
        assert_eq!(json, bin);
        match (i, json.body) {
            (0, ServerBody::Error(e)) => {
                assert_eq!(e.code, ErrorCode::Internal);
                assert_eq!(e.message, "from a newer broker");
            }
            (1, ServerBody::Ok(Answer::Unknown)) => {}
            (2, ServerBody::Ok(Answer::Done)) => {}
            (_, other) => panic!("{v}: {other:?}"),
        }
    }
    // A frame of an unknown kind does not decode (docs/PROTOCOL.md §8 tells clients to skip it).
    let kind = json!({"id": 4, "brand_new_kind": {}}).to_string();
    assert!(frame::from_json::<ServerFrame>(&kind).is_err());
}

#[tokio::test]
async fn subscribe_can_resume_each_partition_from_its_own_offset() {
    let broker = TestBroker::start(&[]);
    let http = Http::new(&broker);
    http.create_topic("pos", 2).await;
    let records: Vec<_> = (0..10)
        .map(|i| json!({"value": format!("v{i}"), "partition": i % 2}))
        .collect();
    http.produce("pos", json!(records)).await;
    let mut ws = Ws::connect(&broker).await;
    ws.hello(false).await;
    let positions = vec![
        RecordOffset {
            partition: 0,
            offset: 3,
        },
        RecordOffset {
            partition: 1,
            offset: 4,
        },
    ];
    let a = ws
        .call(
            1,
            Request::Subscribe {
                topic: "pos".into(),
                partitions: None,
                from: StartFrom::Earliest,
                credit_bytes: 1 << 20,
                positions: Some(positions.clone()),
                filter: None,
                map: None,
            },
            false,
        )
        .await
        .unwrap();
    let Answer::Subscribed {
        positions: started, ..
    } = a
    else {
        panic!("{a:?}")
    };
    assert_eq!(started, positions);
    let mut got = std::collections::BTreeSet::new();
    while got.len() < 3 {
        let f = ws.recv().await;
        let ServerBody::Records(d) = f.body else {
            panic!("{f:?}")
        };
        for r in d.fetch.records {
            got.insert((d.fetch.partition, r.offset));
        }
    }
    // Partition 0 holds offsets 0..5, partition 1 too: from 3 and 4 that is (0,3), (0,4), (1,4).
    assert_eq!(got, [(0, 3), (0, 4), (1, 4)].into());
}
