//! The exported API (what Swift, Kotlin and Python call) against the real broker.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestBroker, example_plugin, websocket_connections};
use sluice_ffi::{
    ClientOptions, ConsumerOptions, FilterOptions, ProducerOptions, ProducerRecord, SluiceClient,
    SluiceConsumer, SluiceError, StartPosition, TopicPartitionOffset,
};

async fn connect(broker: &TestBroker) -> Arc<SluiceClient> {
    SluiceClient::connect_with(
        broker.url(),
        ClientOptions {
            request_timeout_ms: Some(10_000),
            connect_timeout_ms: Some(5_000),
            client_name: Some("sluice-ffi-tests".into()),
        },
    )
    .await
    .expect("connect to the test broker")
}

fn record(topic: &str, i: usize) -> ProducerRecord {
    ProducerRecord {
        topic: topic.into(),
        value: Some(format!("{{\"n\":{i}}}").into_bytes()),
        key: Some(format!("k{i}").into_bytes()),
        headers: vec![sluice_ffi::Header {
            key: "i".into(),
            value: Some(i.to_string().into_bytes()),
        }],
        partition: None,
        timestamp_ms: None,
    }
}

fn consumer_options(topic: &str) -> ConsumerOptions {
    ConsumerOptions {
        topics: vec![topic.into()],
        group: None,
        start: Some(StartPosition::Earliest),
        partitions: None,
        filter: None,
        auto_commit: false,
        auto_commit_interval_ms: None,
        instance_id: None,
        session_timeout_ms: None,
        credit_bytes: None,
    }
}

/// Polls until `n` records came (or 20 s passed without them), and answers them.
async fn poll_n(consumer: &SluiceConsumer, n: usize) -> Vec<sluice_ffi::ConsumedRecord> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} records came within 20 s",
            out.len()
        );
        out.extend(consumer.poll_batch(500, 500).await.expect("poll_batch"));
    }
    out
}

/// Waits (up to 10 s) for the broker's WebSocket connection count to reach `n`.
async fn wait_connections(broker: &TestBroker, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let open = websocket_connections(broker.addr);
        if open == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the broker still has {open} WebSocket connections, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_batch_then_consume_as_a_group_and_commit() {
    let broker = TestBroker::start(&[]);
    let client = connect(&broker).await;
    let admin = client.admin();
    let created = admin
        .create_topic("orders".into(), 3, HashMap::new())
        .await
        .expect("create topic");
    assert_eq!(created.partitions.len(), 3);
    assert!(
        admin
            .list_topics()
            .await
            .unwrap()
            .iter()
            .any(|t| t.name == "orders" && t.partitions == 3)
    );

    let producer = client
        .producer(ProducerOptions::default())
        .expect("producer");
    let records: Vec<_> = (0..1000).map(|i| record("orders", i)).collect();
    let sent = producer.send_batch(records).await.expect("send_batch");
    assert_eq!(sent.len(), 1000);
    // Keyed records: the partition murmur2 picks, offsets dense per partition.
    let mut per_partition: HashMap<u32, Vec<u64>> = HashMap::new();
    for (i, m) in sent.iter().enumerate() {
        assert_eq!(m.topic, "orders");
        assert_eq!(
            m.partition,
            sluice_client::partition_for_key(format!("k{i}").as_bytes(), 3)
        );
        per_partition
            .entry(m.partition)
            .or_default()
            .push(m.offset.expect("acks=all answers offsets"));
    }
    for offsets in per_partition.values() {
        assert_eq!(*offsets, (0..offsets.len() as u64).collect::<Vec<_>>());
    }
    let one = producer
        .send(ProducerRecord {
            partition: Some(1),
            ..record("orders", 1000)
        })
        .await
        .expect("send");
    assert_eq!(one.partition, 1);
    assert_eq!(one.offset, Some(per_partition[&1].len() as u64));
    // The columnar form: values and keys, a summary per partition.
    let keys: Vec<Vec<u8>> = (0..300).map(|i| format!("v{i}").into_bytes()).collect();
    let values: Vec<Vec<u8>> = (0..300)
        .map(|i| format!("value {i}").into_bytes())
        .collect();
    let summary = producer
        .send_values("orders".into(), values, Some(keys.clone()))
        .await
        .expect("send_values");
    assert_eq!(summary.topic, "orders");
    assert_eq!(
        summary.partitions.iter().map(|p| p.records).sum::<u64>(),
        300
    );
    for p in &summary.partitions {
        let expected = keys
            .iter()
            .filter(|k| sluice_client::partition_for_key(k, 3) == p.partition)
            .count() as u64;
        assert_eq!(p.records, expected, "partition {}", p.partition);
        // Nothing else writes to the topic: the offsets follow the 1001 records before.
        let before = per_partition.get(&p.partition).map_or(0, Vec::len) as u64
            + u64::from(p.partition == 1);
        assert_eq!(p.first_offset, Some(before));
        assert_eq!(p.last_offset, Some(before + expected - 1));
    }
    producer.flush().await.expect("flush");
    producer.close().await.expect("close");
    // Read them back and leave the group consumer below the 1001 records of send/send_batch.
    let broadcast = client
        .consumer(consumer_options("orders"))
        .await
        .expect("broadcast consumer");
    let all = poll_n(&broadcast, 1301).await;
    let from_values: Vec<_> = all
        .iter()
        .filter(|r| r.key.as_deref().is_some_and(|k| k.starts_with(b"v")))
        .collect();
    assert_eq!(from_values.len(), 300);
    assert!(from_values.iter().all(|r| r.headers.is_empty()));
    broadcast.close().await.unwrap();

    let consumer = client
        .consumer(ConsumerOptions {
            group: Some("billing".into()),
            ..consumer_options("orders")
        })
        .await
        .expect("group consumer");
    let got = poll_n(&consumer, 1301).await;
    assert_eq!(got.len(), 1301);
    let mut values: Vec<usize> = got
        .iter()
        .filter(|r| !r.headers.is_empty())
        .map(|r| {
            let i: usize = std::str::from_utf8(&r.headers[0].value.clone().unwrap())
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(r.key.as_deref(), Some(format!("k{i}").as_bytes()));
            assert_eq!(
                r.value.as_deref(),
                Some(format!("{{\"n\":{i}}}").as_bytes())
            );
            i
        })
        .collect();
    values.sort_unstable();
    assert_eq!(values, (0..1001).collect::<Vec<_>>());
    assert_eq!(consumer.assignment().await.unwrap().len(), 3);
    consumer.commit().await.expect("commit");

    let groups = admin.list_groups().await.expect("list groups");
    assert!(groups.iter().any(|g| g.group == "billing"), "{groups:?}");
    let described = admin.describe_group("billing".into()).await.unwrap();
    assert_eq!(described.members.len(), 1);
    assert_eq!(described.members[0].assigned.len(), 3);
    let committed: u64 = described
        .partitions
        .iter()
        .map(|p| p.committed.unwrap_or(0))
        .sum();
    assert_eq!(committed, 1301);
    assert!(described.partitions.iter().all(|p| p.lag == 0));

    // Seek back and read partition 1 again from its start.
    consumer.seek("orders".into(), 1, 0).await.expect("seek");
    assert_eq!(
        consumer.position("orders".into(), 1).await.unwrap(),
        Some(0)
    );
    let in_p1 = got.iter().filter(|r| r.partition == 1).count();
    let again = poll_n(&consumer, in_p1).await;
    assert!(again.iter().all(|r| r.partition == 1));
    assert_eq!(again[0].offset, 0);

    // Committing explicit offsets moves the group's committed offset back.
    consumer
        .commit_offsets(vec![TopicPartitionOffset {
            topic: "orders".into(),
            partition: 1,
            offset: 5,
        }])
        .await
        .expect("commit_offsets");
    let described = admin.describe_group("billing".into()).await.unwrap();
    let p1 = described
        .partitions
        .iter()
        .find(|p| p.partition == 1)
        .unwrap();
    assert_eq!(p1.committed, Some(5));

    consumer.close().await.expect("close consumer");
    assert_eq!(
        consumer.poll_batch(10, 0).await.unwrap_err(),
        SluiceError::Closed
    );
    consumer.close().await.expect("closing twice is fine");
    admin
        .delete_topic("orders".into())
        .await
        .expect("delete topic");
    client.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_plugin_with_params_in_broadcast_mode() {
    let broker = TestBroker::start(&[]);
    let client = connect(&broker).await;
    let admin = client.admin();
    admin
        .create_topic("events".into(), 2, HashMap::new())
        .await
        .unwrap();
    let uploaded = admin
        .upload_plugin("big".into(), example_plugin("json_filter"))
        .await
        .expect("upload json_filter");
    assert_eq!(uploaded.kind, "filter");
    assert!(
        admin
            .list_plugins()
            .await
            .unwrap()
            .iter()
            .any(|p| p.name == "big")
    );

    let producer = client.producer(ProducerOptions::default()).unwrap();
    producer
        .send_batch((0..300).map(|i| record("events", i)).collect())
        .await
        .unwrap();
    producer.close().await.unwrap();

    let params = HashMap::from([
        ("field".to_string(), "n".to_string()),
        ("op".to_string(), ">=".to_string()),
        ("value".to_string(), "250".to_string()),
    ]);
    let consumer = client
        .consumer(ConsumerOptions {
            filter: Some(FilterOptions {
                plugin: "big".into(),
                params,
            }),
            ..consumer_options("events")
        })
        .await
        .expect("filtered consumer");
    let got = poll_n(&consumer, 50).await;
    let mut ns: Vec<usize> = got
        .iter()
        .map(|r| {
            let v = String::from_utf8(r.value.clone().unwrap()).unwrap();
            v.trim_start_matches("{\"n\":")
                .trim_end_matches('}')
                .parse()
                .unwrap()
        })
        .collect();
    ns.sort_unstable();
    assert_eq!(ns, (250..300).collect::<Vec<_>>());
    // Nothing else comes: positions moved past what the filter dropped.
    assert!(consumer.poll_batch(100, 300).await.unwrap().is_empty());
    consumer.close().await.unwrap();

    admin.delete_plugin("big".into()).await.expect("delete");
    let err = client
        .consumer(ConsumerOptions {
            filter: Some(FilterOptions {
                plugin: "big".into(),
                params: HashMap::new(),
            }),
            ..consumer_options("events")
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unknown_plugin", "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_the_broker_code() {
    let broker = TestBroker::start(&[]);
    let client = connect(&broker).await;
    let admin = client.admin();
    admin
        .create_topic("t".into(), 1, HashMap::new())
        .await
        .unwrap();

    let err = admin
        .create_topic("t".into(), 1, HashMap::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SluiceError::Broker { code, .. } if code == "topic_exists"),
        "{err:?}"
    );
    let err = admin.describe_topic("nope".into()).await.unwrap_err();
    assert_eq!(err.code(), "unknown_topic");
    let err = admin
        .upload_plugin("junk".into(), b"not wasm".to_vec())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_plugin");
    let err = admin.describe_group("nobody".into()).await.unwrap_err();
    assert_eq!(err.code(), "unknown_group");

    let producer = client.producer(ProducerOptions::default()).unwrap();
    let err = producer
        .send_batch(vec![record("nope", 0)])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unknown_topic");
    let err = producer
        .send(ProducerRecord {
            partition: Some(7),
            ..record("t", 0)
        })
        .await
        .unwrap_err();
    assert!(matches!(err, SluiceError::InvalidInput { .. }), "{err:?}");
    let too_many = (0..100_001).map(|i| record("t", i)).collect();
    let err = producer.send_batch(too_many).await.unwrap_err();
    assert!(matches!(err, SluiceError::InvalidInput { .. }), "{err:?}");
    let err = producer
        .send_values("t".into(), vec![b"a".to_vec(), b"b".to_vec()], Some(vec![]))
        .await
        .unwrap_err();
    assert!(matches!(err, SluiceError::InvalidInput { .. }), "{err:?}");
    let err = producer
        .send_values("t".into(), vec![vec![]; 100_001], None)
        .await
        .unwrap_err();
    assert!(matches!(err, SluiceError::InvalidInput { .. }), "{err:?}");
    let err = producer
        .send_values("nope".into(), vec![b"a".to_vec()], None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unknown_topic");
    producer.close().await.unwrap();
    assert_eq!(
        producer.send(record("t", 0)).await.unwrap_err(),
        SluiceError::Closed
    );

    let consumer = client.consumer(consumer_options("t")).await.unwrap();
    for (max, timeout) in [(0, 10), (100_001, 10), (10, 3_600_001)] {
        let err = consumer.poll_batch(max, timeout).await.unwrap_err();
        assert!(matches!(err, SluiceError::InvalidInput { .. }), "{err:?}");
    }
    let err = client
        .consumer(ConsumerOptions {
            group: Some("g".into()),
            start: Some(StartPosition::Offset { offset: 3 }),
            ..consumer_options("t")
        })
        .await
        .unwrap_err();
    assert!(matches!(err, SluiceError::InvalidInput { .. }), "{err:?}");
    let err = client
        .consumer(ConsumerOptions {
            topics: vec![],
            ..consumer_options("t")
        })
        .await
        .unwrap_err();
    assert!(matches!(err, SluiceError::InvalidInput { .. }), "{err:?}");

    client.close();
    assert_eq!(
        admin.list_topics().await.unwrap_err(),
        SluiceError::Closed,
        "requests after close fail with Closed"
    );

    // Nothing listens on a port we just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = SluiceClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert!(matches!(err, SluiceError::Connection { .. }), "{err:?}");
    let err = SluiceClient::connect("ftp://x".into()).await.unwrap_err();
    assert!(matches!(err, SluiceError::InvalidInput { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_object_closes_the_connection() {
    let broker = TestBroker::start(&[]);
    let client = connect(&broker).await;
    client
        .admin()
        .create_topic("t".into(), 1, HashMap::new())
        .await
        .unwrap();
    let producer = client.producer(ProducerOptions::default()).unwrap();
    let consumer = client
        .consumer(ConsumerOptions {
            group: Some("g".into()),
            ..consumer_options("t")
        })
        .await
        .unwrap();
    wait_connections(&broker, 1).await;
    // The client object goes first; the producer and the consumer still use the connection.
    drop(client);
    producer
        .send(record("t", 0))
        .await
        .expect("still connected");
    assert_eq!(poll_n(&consumer, 1).await.len(), 1);
    drop(producer);
    drop(consumer);
    wait_connections(&broker, 0).await;
}
