//! Map plugins through the SDK against the real broker: `ConsumerOptions::map` in broadcast
//! mode (kept across a broker restart) and in group mode with a filter (commits after mapped
//! reads resume at the right place), refusals, and a failing map surfacing as `plugin_failed`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{TestBroker, create_topic, example_plugin, free_port};
use futures_util::StreamExt;
use sluice_client::{
    Client, Consumer, ConsumerOptions, Error, ErrorCode, OffsetReset, ProducerOptions,
    ProducerRecord, Record, StartFrom,
};

const WAIT: Duration = Duration::from_secs(20);

/// Produces `values` to one partition; returns their offsets.
async fn produce(client: &Client, topic: &str, partition: u32, values: &[&str]) -> Vec<u64> {
    let producer = client.producer(ProducerOptions::new());
    let mut handles = Vec::new();
    for v in values {
        let record = ProducerRecord::new(topic, v.to_string()).with_partition(partition);
        handles.push(producer.send(record).await.expect("send"));
    }
    let mut offsets = Vec::new();
    for h in handles {
        offsets.push(
            h.await
                .expect("produced")
                .offset
                .expect("acks give offsets"),
        );
    }
    producer.close().await.expect("close producer");
    offsets
}

/// The next record, within [`WAIT`].
async fn next(consumer: &mut Consumer) -> Record {
    tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("a record within the wait")
        .expect("the stream goes on")
        .expect("a record, not an error")
}

fn value(r: &Record) -> String {
    String::from_utf8(r.value.as_ref().expect("a value").to_vec()).expect("UTF-8")
}

fn header(r: &Record, name: &str) -> Option<String> {
    r.headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value.as_ref())
        .map(|v| String::from_utf8(v.to_vec()).expect("UTF-8"))
}

/// A map that traps on every call, compiled from this WAT (this crate has no WAT parser):
///
/// ```text
/// (module
///   (memory (export "memory") 2)
///   (func (export "sluice_abi_version") (result i32) (i32.const 2))
///   (func (export "sluice_kind") (result i32) (i32.const 3))
///   (func (export "sluice_alloc") (param i32) (result i32) (i32.const 1024))
///   (func (export "sluice_init") (param i32 i32) (result i32) (i32.const 0))
///   (func (export "sluice_map") (param i32 i32 i32 i32) (result i32) unreachable))
/// ```
const TRAPPING_MAP: [u8; 164] = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x18, 0x04, 0x60, 0x00, 0x01, 0x7f, 0x60,
    0x01, 0x7f, 0x01, 0x7f, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f, 0x60, 0x04, 0x7f, 0x7f, 0x7f, 0x7f,
    0x01, 0x7f, 0x03, 0x06, 0x05, 0x00, 0x00, 0x01, 0x02, 0x03, 0x05, 0x03, 0x01, 0x00, 0x02, 0x07,
    0x57, 0x06, 0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02, 0x00, 0x12, 0x73, 0x6c, 0x75, 0x69,
    0x63, 0x65, 0x5f, 0x61, 0x62, 0x69, 0x5f, 0x76, 0x65, 0x72, 0x73, 0x69, 0x6f, 0x6e, 0x00, 0x00,
    0x0b, 0x73, 0x6c, 0x75, 0x69, 0x63, 0x65, 0x5f, 0x6b, 0x69, 0x6e, 0x64, 0x00, 0x01, 0x0c, 0x73,
    0x6c, 0x75, 0x69, 0x63, 0x65, 0x5f, 0x61, 0x6c, 0x6c, 0x6f, 0x63, 0x00, 0x02, 0x0b, 0x73, 0x6c,
    0x75, 0x69, 0x63, 0x65, 0x5f, 0x69, 0x6e, 0x69, 0x74, 0x00, 0x03, 0x0a, 0x73, 0x6c, 0x75, 0x69,
    0x63, 0x65, 0x5f, 0x6d, 0x61, 0x70, 0x00, 0x04, 0x0a, 0x1a, 0x05, 0x04, 0x00, 0x41, 0x02, 0x0b,
    0x04, 0x00, 0x41, 0x03, 0x0b, 0x05, 0x00, 0x41, 0x80, 0x08, 0x0b, 0x04, 0x00, 0x41, 0x00, 0x0b,
    0x03, 0x00, 0x00, 0x0b,
];

fn broker_code(e: &Error) -> ErrorCode {
    e.code()
        .unwrap_or_else(|| panic!("a broker error, not {e:?}"))
}

#[tokio::test]
async fn a_mapped_broadcast_consumer_gets_rewritten_records_also_after_a_broker_restart() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let broker = TestBroker::start_on(tempfile::tempdir().unwrap(), &listen, &[]);
    let client = broker.client().await;
    create_topic(&client, "logs", 2).await;
    let admin = client.admin();
    admin
        .upload_plugin("tag", example_plugin("tag_map"))
        .await
        .expect("upload");
    admin
        .upload_plugin("grep", example_plugin("json_filter"))
        .await
        .expect("upload");

    // Unknown plugins, plugins of the other kind and refused parameters fail at creation.
    let e = client
        .consumer(ConsumerOptions::new(["logs"]).map("nope", [("value", "upper")]))
        .await
        .unwrap_err();
    assert_eq!(broker_code(&e), ErrorCode::UnknownPlugin);
    let e = client
        .consumer(ConsumerOptions::new(["logs"]).map("grep", [("field", "level")]))
        .await
        .unwrap_err();
    assert_eq!(broker_code(&e), ErrorCode::InvalidPlugin, "{e}");
    assert!(e.to_string().contains("is a filter, not a map"), "{e}");
    let e = client
        .consumer(ConsumerOptions::new(["logs"]).filter("tag", [("value", "upper")]))
        .await
        .unwrap_err();
    assert_eq!(broker_code(&e), ErrorCode::InvalidPlugin, "{e}");
    assert!(e.to_string().contains("is a map, not a filter"), "{e}");
    let e = client
        .consumer(ConsumerOptions::new(["logs"]).map("tag", [("value", "sideways")]))
        .await
        .unwrap_err();
    assert_eq!(broker_code(&e), ErrorCode::InvalidPlugin, "{e}");

    let p0 = produce(&client, "logs", 0, &["a", "b"]).await;
    let p1 = produce(&client, "logs", 1, &["c"]).await;
    let options = ConsumerOptions::new(["logs"])
        .start(StartFrom::Earliest)
        .map("tag", [("value", "upper"), ("tag", "sdk")]);
    assert_eq!(
        options.map_spec().map(|(n, p)| (n, p.len())),
        Some(("tag", 2))
    );
    let mut consumer = client.consumer(options).await.expect("consumer");
    let mut got = BTreeMap::new();
    for _ in 0..3 {
        let r = next(&mut consumer).await;
        assert_eq!(header(&r, "mapped-by").as_deref(), Some("sdk"), "{r:?}");
        got.insert((r.partition, r.offset), value(&r));
    }
    assert_eq!(
        got,
        BTreeMap::from([
            ((0, p0[0]), "A".to_string()),
            ((0, p0[1]), "B".to_string()),
            ((1, p1[0]), "C".to_string()),
        ])
    );
    assert_eq!(consumer.position("logs", 0), Some(2));

    // The broker restarts; the consumer subscribes again with its map, from its positions.
    let dir = broker.stop();
    let broker = TestBroker::start_on(dir, &listen, &[]);
    produce(&client, "logs", 0, &["d"]).await;
    produce(&client, "logs", 1, &["e"]).await;
    let mut after = BTreeMap::new();
    for _ in 0..2 {
        let r = next(&mut consumer).await;
        assert_eq!(header(&r, "mapped-by").as_deref(), Some("sdk"), "{r:?}");
        after.insert((r.partition, r.offset), value(&r));
    }
    assert_eq!(
        after,
        BTreeMap::from([((0, 2), "D".to_string()), ((1, 1), "E".to_string())])
    );
    drop(broker);
}

#[tokio::test]
async fn a_filtered_and_mapped_group_consumer_commits_and_resumes_at_the_stored_offsets() {
    let broker = TestBroker::start(&["--group-heartbeat-interval-ms", "100"]);
    let client = broker.client().await;
    let admin = client.admin();
    create_topic(&client, "orders", 1).await;
    admin
        .upload_plugin("grep", example_plugin("json_filter"))
        .await
        .expect("upload");
    admin
        .upload_plugin("tag", example_plugin("tag_map"))
        .await
        .expect("upload");
    let line = |level: &str, msg: &str| format!(r#"{{"level":"{level}","msg":"{msg}"}}"#);
    let values: Vec<String> = [
        ("info", "0"),
        ("ERROR", "one"),
        ("info", "2"),
        ("ERROR", "three"),
        ("info", "4"),
    ]
    .iter()
    .map(|(l, m)| line(l, m))
    .collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    produce(&client, "orders", 0, &refs).await;
    let options = ConsumerOptions::new(["orders"])
        .group("alerts")
        .auto_offset_reset(OffsetReset::Earliest)
        .auto_commit_interval_ms(None)
        .filter(
            "grep",
            [("field", "level"), ("op", "=="), ("value", "ERROR")],
        )
        .map("tag", [("value", "mask")]);
    let mut consumer = client.consumer(options.clone()).await.expect("join");
    let got: Vec<(u64, String)> = [next(&mut consumer).await, next(&mut consumer).await]
        .iter()
        .map(|r| (r.offset, value(r)))
        .collect();
    // Kept by the filter (on the stored value), then masked by the map.
    assert_eq!(
        got,
        [
            (1, "*".repeat(values[1].len())),
            (3, "*".repeat(values[3].len()))
        ]
    );
    tokio::time::timeout(WAIT, async {
        while consumer.position("orders", 0) != Some(5) {
            let got = consumer
                .poll_batch(100, Duration::from_millis(50))
                .await
                .expect("poll");
            assert!(got.is_empty(), "unexpected records {got:?}");
        }
    })
    .await
    .expect("the position passes the dropped records");
    consumer.commit().await.expect("commit");
    consumer.close().await.expect("close");
    let d = admin.describe_group("alerts").await.expect("describe");
    assert_eq!(d.partitions[0].committed, Some(5));

    // A new member resumes at the committed offset, with the filter and the map.
    let last = line("ERROR", "six");
    produce(&client, "orders", 0, &[&line("info", "5"), &last]).await;
    let mut consumer = client.consumer(options).await.expect("rejoin");
    let r = next(&mut consumer).await;
    assert_eq!((r.offset, value(&r)), (6, "*".repeat(last.len())));
    consumer.close().await.expect("close");
}

#[tokio::test]
async fn a_failing_map_ends_its_consumer_with_plugin_failed_while_another_keeps_reading() {
    let broker = TestBroker::start(&[]);
    let client = broker.client().await;
    create_topic(&client, "t", 1).await;
    let admin = client.admin();
    admin
        .upload_plugin("trap", TRAPPING_MAP.to_vec())
        .await
        .expect("upload");
    admin
        .upload_plugin("tag", example_plugin("tag_map"))
        .await
        .expect("upload");
    produce(&client, "t", 0, &["x"]).await;
    let mut bad = client
        .consumer(
            ConsumerOptions::new(["t"])
                .start(StartFrom::Earliest)
                .map("trap", Vec::<(String, String)>::new()),
        )
        .await
        .expect("attaching works; running fails");
    let mut good = client
        .consumer(
            ConsumerOptions::new(["t"])
                .start(StartFrom::Earliest)
                .map("tag", [("value", "upper")]),
        )
        .await
        .expect("consumer");
    let e = tokio::time::timeout(WAIT, bad.next())
        .await
        .expect("an answer within the wait")
        .expect("the stream reports the failure")
        .unwrap_err();
    assert_eq!(broker_code(&e), ErrorCode::PluginFailed, "{e}");
    assert!(
        e.to_string().contains("`trap`") && e.to_string().contains("offset"),
        "{e}"
    );
    assert_eq!(value(&next(&mut good).await), "X");
    produce(&client, "t", 0, &["y"]).await;
    let r = next(&mut good).await;
    assert_eq!((r.offset, value(&r)), (1, "Y".to_string()));
}
