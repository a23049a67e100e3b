//! Plugins through the SDK against the real broker: the admin registry, filtered consumers
//! (broadcast and group, across a broker restart and a group restart), pause and resume, and
//! group administration.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{TestBroker, create_topic, example_plugin, free_port};
use futures_util::StreamExt;
use sluice_client::{
    Client, Consumer, ConsumerOptions, Error, ErrorCode, NewTopic, OffsetReset, ProducerOptions,
    ProducerRecord, Record, StartFrom,
};

const WAIT: Duration = Duration::from_secs(20);

/// Produces `values` to one partition; returns their offsets.
async fn produce(client: &Client, topic: &str, partition: u32, values: &[&str]) -> Vec<u64> {
    let producer = client.producer(ProducerOptions::new());
    let mut handles = Vec::new();
    for v in values {
        let record = ProducerRecord::new(topic, as_json(v)).with_partition(partition);
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

/// `"ERROR a"` as the JSON log line `{"level":"ERROR","msg":"a"}` (plain text stays as it is).
fn as_json(v: &str) -> String {
    match v.split_once(' ') {
        Some((level, msg)) => format!(r#"{{"level":"{level}","msg":"{msg}"}}"#),
        None => v.to_string(),
    }
}

/// A record's value, turned back from [`as_json`] form into `"ERROR a"`.
fn value(r: &Record) -> String {
    let text = String::from_utf8(r.value.as_ref().expect("a value").to_vec()).expect("UTF-8");
    match text.strip_prefix(r#"{"level":""#) {
        Some(rest) => {
            let (level, rest) = rest.split_once('"').expect("level");
            let msg = rest
                .strip_prefix(r#","msg":""#)
                .and_then(|m| m.strip_suffix(r#""}"#))
                .expect("msg");
            format!("{level} {msg}")
        }
        None => text,
    }
}

/// Polls until the consumer's position in `topic`/`partition` reaches `offset` (the broker
/// reports positions past records a filter dropped), asserting no record comes meanwhile.
async fn poll_until_position(consumer: &mut Consumer, topic: &str, partition: u32, offset: u64) {
    tokio::time::timeout(WAIT, async {
        while consumer.position(topic, partition) != Some(offset) {
            let got = consumer
                .poll_batch(100, Duration::from_millis(50))
                .await
                .expect("poll");
            assert!(got.is_empty(), "unexpected records {got:?}");
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "position of {topic}/{partition} stayed at {:?}, not {offset}",
            consumer.position(topic, partition)
        )
    });
}

fn broker_code(e: &Error) -> ErrorCode {
    e.code()
        .unwrap_or_else(|| panic!("a broker error, not {e:?}"))
}

#[tokio::test]
async fn admin_uploads_lists_describes_and_deletes_plugins() {
    let broker = TestBroker::start(&[]);
    let client = broker.client().await;
    let admin = client.admin();
    let module = example_plugin("json_filter");
    let p = admin
        .upload_plugin("grep", module.clone())
        .await
        .expect("upload");
    assert_eq!(
        (p.name.as_str(), p.kind.as_str(), p.abi_version),
        ("grep", "filter", 1)
    );
    assert_eq!(p.size_bytes, module.len());
    assert!(p.sha256.len() == 64 && p.sha256.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(p.uploaded_ms > 0);
    admin
        .upload_plugin("route", example_plugin("json_partitioner"))
        .await
        .expect("upload the partitioner");
    let names: Vec<String> = admin
        .list_plugins()
        .await
        .expect("list")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["grep", "route"]);
    assert_eq!(
        admin.describe_plugin("route").await.expect("describe").kind,
        "partitioner"
    );

    // Refusals, each with its code.
    for (name, module) in [
        ("junk", b"definitely not wasm".to_vec()),
        ("bad/name", module.clone()),
        ("empty", Vec::new()),
    ] {
        let e = admin.upload_plugin(name, module).await.unwrap_err();
        assert_eq!(broker_code(&e), ErrorCode::InvalidPlugin, "{name}: {e}");
    }
    let e = admin.describe_plugin("nope").await.unwrap_err();
    assert_eq!(broker_code(&e), ErrorCode::UnknownPlugin);
    // A topic's partitioner cannot be deleted while the topic uses it.
    admin
        .create_topic(
            NewTopic::new("regions")
                .partitions(2)
                .config("partitioner", "route")
                .config("partitioner.param.route.eu", "1"),
        )
        .await
        .expect("create a topic routed by the plugin");
    let e = admin.delete_plugin("route").await.unwrap_err();
    assert_eq!(broker_code(&e), ErrorCode::InvalidConfig, "{e}");
    assert!(e.to_string().contains("regions"), "{e}");

    admin.delete_plugin("grep").await.expect("delete");
    let e = admin.delete_plugin("grep").await.unwrap_err();
    assert_eq!(broker_code(&e), ErrorCode::UnknownPlugin);
    let names: Vec<String> = admin
        .list_plugins()
        .await
        .expect("list")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["route"]);
}

#[tokio::test]
async fn a_filtered_broadcast_consumer_gets_only_kept_records_also_after_a_broker_restart() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let broker = TestBroker::start_on(tempfile::tempdir().unwrap(), &listen, &[]);
    let client = broker.client().await;
    create_topic(&client, "logs", 2).await;
    client
        .admin()
        .upload_plugin("grep", example_plugin("json_filter"))
        .await
        .expect("upload");

    // Unknown plugins and refused parameters fail the consumer at creation.
    let e = client
        .consumer(ConsumerOptions::new(["logs"]).filter("nope", [("field", "level")]))
        .await
        .unwrap_err();
    assert_eq!(broker_code(&e), ErrorCode::UnknownPlugin);
    let e = client
        .consumer(ConsumerOptions::new(["logs"]).filter("grep", [("field", "level"), ("op", "~")]))
        .await
        .unwrap_err();
    assert_eq!(broker_code(&e), ErrorCode::InvalidPlugin, "{e}");

    produce(
        &client,
        "logs",
        0,
        &["ERROR a", "info b", "ERROR c", "info d"],
    )
    .await;
    produce(&client, "logs", 1, &["info e", "ERROR f", "info g"]).await;
    let options = ConsumerOptions::new(["logs"])
        .start(StartFrom::Earliest)
        .filter(
            "grep",
            [("field", "level"), ("op", "=="), ("value", "ERROR")],
        );
    assert_eq!(
        options.filter_spec().map(|(n, p)| (n, p.len())),
        Some(("grep", 3))
    );
    let mut consumer = client.consumer(options).await.expect("consumer");
    let mut got = BTreeMap::new();
    for _ in 0..3 {
        let r = next(&mut consumer).await;
        got.insert((r.partition, r.offset), value(&r));
    }
    let expected = BTreeMap::from([
        ((0, 0), "ERROR a".to_string()),
        ((0, 2), "ERROR c".to_string()),
        ((1, 1), "ERROR f".to_string()),
    ]);
    assert_eq!(got, expected);
    // The positions pass the dropped records at the ends of both partitions.
    poll_until_position(&mut consumer, "logs", 0, 4).await;
    poll_until_position(&mut consumer, "logs", 1, 3).await;

    // The broker restarts; the consumer subscribes again, with its filter, from its positions.
    let dir = broker.stop();
    let broker = TestBroker::start_on(dir, &listen, &[]);
    produce(&client, "logs", 0, &["info h", "ERROR i"]).await;
    produce(&client, "logs", 1, &["ERROR j", "info k"]).await;
    let mut after = BTreeMap::new();
    for _ in 0..2 {
        let r = next(&mut consumer).await;
        after.insert((r.partition, r.offset), value(&r));
    }
    assert_eq!(
        after,
        BTreeMap::from([
            ((0, 5), "ERROR i".to_string()),
            ((1, 3), "ERROR j".to_string()),
        ])
    );
    poll_until_position(&mut consumer, "logs", 1, 5).await;
    drop(broker);
}

#[tokio::test]
async fn a_filtered_group_consumer_commits_past_dropped_records_and_resumes_there() {
    let broker = TestBroker::start(&["--group-heartbeat-interval-ms", "100"]);
    let client = broker.client().await;
    let admin = client.admin();
    create_topic(&client, "orders", 1).await;
    admin
        .upload_plugin("grep", example_plugin("json_filter"))
        .await
        .expect("upload");
    produce(
        &client,
        "orders",
        0,
        &["info 0", "ERROR 1", "info 2", "ERROR 3", "info 4", "info 5"],
    )
    .await;
    let options = ConsumerOptions::new(["orders"])
        .group("alerts")
        .auto_offset_reset(OffsetReset::Earliest)
        .auto_commit_interval_ms(None)
        .filter(
            "grep",
            [("field", "level"), ("op", "=="), ("value", "ERROR")],
        );
    let mut consumer = client.consumer(options.clone()).await.expect("join");
    let got: Vec<u64> = [next(&mut consumer).await, next(&mut consumer).await]
        .iter()
        .map(|r| r.offset)
        .collect();
    assert_eq!(got, [1, 3]);
    poll_until_position(&mut consumer, "orders", 0, 6).await;
    consumer.commit().await.expect("commit");

    // Group administration while the member is active.
    let groups = admin.list_groups().await.expect("list groups");
    let g = groups.iter().find(|g| g.group == "alerts").expect("listed");
    assert_eq!(g.members, 1);
    let d = admin.describe_group("alerts").await.expect("describe");
    assert_eq!(d.members.len(), 1);
    let lag = &d.partitions[0];
    assert_eq!(
        (lag.topic.as_str(), lag.partition, lag.committed, lag.lag),
        ("orders", 0, Some(6), 0)
    );
    assert_eq!(lag.owner.as_deref(), Some(d.members[0].member_id.as_str()));
    let e = admin
        .reset_offsets("alerts", StartFrom::Earliest, None)
        .await
        .unwrap_err();
    assert_eq!(broker_code(&e), ErrorCode::GroupNotEmpty);
    let e = admin.delete_group("alerts").await.unwrap_err();
    assert_eq!(broker_code(&e), ErrorCode::GroupNotEmpty);
    consumer.close().await.expect("close");

    // A new member resumes after the dropped records: only what the filter keeps after 6.
    produce(&client, "orders", 0, &["info 6", "ERROR 7"]).await;
    let d = admin.describe_group("alerts").await.expect("describe");
    assert_eq!(
        (d.partitions[0].committed, d.partitions[0].lag),
        (Some(6), 2)
    );
    let mut consumer = client.consumer(options.clone()).await.expect("rejoin");
    let r = next(&mut consumer).await;
    assert_eq!((r.offset, value(&r).as_str()), (7, "ERROR 7"));
    consumer.close().await.expect("close");

    // Offsets moved back while the group is empty: the filter applies again from there.
    let moved = admin
        .reset_offsets("alerts", StartFrom::Offset(2), Some(&["orders"]))
        .await
        .expect("reset");
    assert_eq!(
        moved
            .iter()
            .map(|o| (o.topic.as_str(), o.partition, o.offset))
            .collect::<Vec<_>>(),
        [("orders", 0, 2)]
    );
    assert_eq!(
        admin
            .group_offsets("alerts", None)
            .await
            .expect("offsets")
            .iter()
            .map(|o| o.offset)
            .collect::<Vec<_>>(),
        [2]
    );
    let mut consumer = client.consumer(options).await.expect("rejoin");
    assert_eq!(next(&mut consumer).await.offset, 3);
    assert_eq!(next(&mut consumer).await.offset, 7);
    consumer.close().await.expect("close");

    admin.delete_group("alerts").await.expect("delete");
    let e = admin.describe_group("alerts").await.unwrap_err();
    assert_eq!(broker_code(&e), ErrorCode::UnknownGroup);
    let e = admin.delete_group("alerts").await.unwrap_err();
    assert_eq!(broker_code(&e), ErrorCode::UnknownGroup);
}

#[tokio::test]
async fn a_group_consumer_with_an_unknown_filter_reports_it_on_the_stream() {
    let broker = TestBroker::start(&["--group-heartbeat-interval-ms", "100"]);
    let client = broker.client().await;
    create_topic(&client, "t", 1).await;
    let mut consumer = client
        .consumer(
            ConsumerOptions::new(["t"])
                .group("g")
                .filter("missing", [("field", "level")]),
        )
        .await
        .expect("join");
    let e = tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("an answer within the wait")
        .expect("the stream goes on")
        .unwrap_err();
    assert_eq!(broker_code(&e), ErrorCode::UnknownPlugin, "{e}");
}

#[tokio::test]
async fn paused_partitions_wait_and_resume_where_they_were() {
    let broker = TestBroker::start(&[]);
    let client = broker.client().await;
    create_topic(&client, "t", 2).await;
    let values: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    produce(&client, "t", 0, &values).await;
    produce(&client, "t", 1, &values).await;
    let mut consumer = client
        .consumer(
            ConsumerOptions::new(["t"])
                .start(StartFrom::Earliest)
                .credit_bytes(1),
        )
        .await
        .expect("consumer");
    let e = consumer.pause(&[("t", 0), ("t", 7)]).unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
    assert!(
        consumer.paused().is_empty(),
        "a failed pause pauses nothing"
    );
    assert!(matches!(
        consumer.resume(&[("other", 0)]),
        Err(Error::InvalidInput(_))
    ));

    // Read partition 0 up to offset 3, then pause it.
    let mut next_p0 = 0;
    let mut seen_p1 = Vec::new();
    while next_p0 < 3 {
        let r = next(&mut consumer).await;
        if r.partition == 0 {
            assert_eq!(r.offset, next_p0);
            next_p0 += 1;
        } else {
            seen_p1.push(r.offset);
        }
    }
    consumer.pause(&[("t", 0)]).expect("pause");
    consumer.pause(&[("t", 0)]).expect("pausing twice is fine");
    assert_eq!(consumer.paused(), [("t".to_string(), 0)]);
    assert_eq!(consumer.position("t", 0), Some(3));
    // Only partition 1 flows now, to its end.
    while seen_p1.len() < 10 {
        let r = next(&mut consumer).await;
        assert_eq!(r.partition, 1, "a record of the paused partition: {r:?}");
        seen_p1.push(r.offset);
    }
    assert_eq!(seen_p1, (0..10).collect::<Vec<u64>>());
    assert_eq!(consumer.position("t", 0), Some(3));

    // Resumed, partition 0 continues at 3 without a gap or a repeat.
    consumer.resume(&[("t", 0)]).expect("resume");
    assert!(consumer.paused().is_empty());
    for offset in 3..10 {
        let r = next(&mut consumer).await;
        assert_eq!((r.partition, r.offset), (0, offset));
    }
}

#[tokio::test]
async fn a_paused_group_partition_keeps_its_committed_position() {
    let broker = TestBroker::start(&["--group-heartbeat-interval-ms", "100"]);
    let client = broker.client().await;
    create_topic(&client, "t", 1).await;
    produce(&client, "t", 0, &["a", "b", "c", "d"]).await;
    let mut consumer = client
        .consumer(
            ConsumerOptions::new(["t"])
                .group("g")
                .auto_offset_reset(OffsetReset::Earliest)
                .auto_commit_interval_ms(None),
        )
        .await
        .expect("join");
    assert_eq!(next(&mut consumer).await.offset, 0);
    assert_eq!(next(&mut consumer).await.offset, 1);
    consumer.pause(&[("t", 0)]).expect("pause");
    let got = consumer
        .poll_batch(10, Duration::from_millis(300))
        .await
        .expect("poll");
    assert!(got.is_empty(), "{got:?}");
    consumer.commit().await.expect("commit");
    let d = client.admin().describe_group("g").await.expect("describe");
    assert_eq!(d.partitions[0].committed, Some(2));
    consumer.resume(&[("t", 0)]).expect("resume");
    assert_eq!(next(&mut consumer).await.offset, 2);
    assert_eq!(next(&mut consumer).await.offset, 3);
    consumer.close().await.expect("close");
}

#[tokio::test]
async fn the_producer_lets_the_broker_route_topics_with_a_partitioner_plugin() {
    let broker = TestBroker::start(&[]);
    let client = broker.client().await;
    let admin = client.admin();
    admin
        .upload_plugin("by-region", example_plugin("json_partitioner"))
        .await
        .expect("upload");
    admin
        .create_topic(
            NewTopic::new("orders")
                .partitions(3)
                .config("partitioner", "by-region")
                .config("partitioner.param.route.eu", "1")
                .config("partitioner.param.route.us", "2")
                .config("partitioner.param.default", "0"),
        )
        .await
        .expect("create");
    let producer = client.producer(ProducerOptions::new().linger_ms(20));
    let mut handles = Vec::new();
    for (i, region) in ["eu", "us", "ap", "eu", "us", "eu"].iter().enumerate() {
        // Keys that murmur2 would spread elsewhere: the plugin decides, not the key.
        let record = ProducerRecord::new("orders", format!(r#"{{"region":"{region}","n":{i}}}"#))
            .with_key(format!("key-{i}"));
        let h = producer.send(record).await.expect("send");
        assert_eq!(h.partition(), sluice_client::ROUTED_BY_BROKER);
        handles.push((*region, h));
    }
    // An explicit partition still wins.
    let explicit = producer
        .send(ProducerRecord::new("orders", r#"{"region":"eu"}"#).with_partition(2))
        .await
        .expect("send");
    let mut expected: BTreeMap<(u32, u64), &str> = BTreeMap::new();
    for (region, h) in handles {
        let m = h.await.expect("produced");
        let want = match region {
            "eu" => 1,
            "us" => 2,
            _ => 0,
        };
        assert_eq!(m.partition, want, "{region}");
        expected.insert((m.partition, m.offset.expect("offset")), region);
    }
    let m = explicit.await.expect("produced");
    assert_eq!(m.partition, 2);
    producer.close().await.expect("close");
    assert_eq!(
        expected.keys().map(|k| k.0).collect::<Vec<_>>(),
        [0, 1, 1, 1, 2, 2]
    );
    // The records are where the answers said.
    let mut consumer = client
        .consumer(ConsumerOptions::new(["orders"]).start(StartFrom::Earliest))
        .await
        .expect("consumer");
    let mut got = BTreeMap::new();
    for _ in 0..7 {
        let r = next(&mut consumer).await;
        got.insert((r.partition, r.offset), value(&r));
    }
    for ((p, o), region) in expected {
        assert!(
            got[&(p, o)].contains(&format!(r#""region":"{region}""#)),
            "{p}/{o}: {}",
            got[&(p, o)]
        );
    }
}
