//! Producing and consuming through the real broker.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::{TestBroker, create_topic};
use futures_util::{FutureExt, StreamExt};
use sluice_client::{
    Acks, Bytes, Consumer, ConsumerOptions, Header, ProducerOptions, ProducerRecord, Record,
    SendHandle, StartFrom,
};
use sluice_protocol::partitioner::partition_for_key;

/// Reads exactly `n` records, failing if they do not come within a generous time.
async fn take(consumer: &mut Consumer, n: usize) -> Vec<Record> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} records arrived", out.len()))
            .expect("the stream does not end")
            .expect("no error");
        out.push(next);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_round_trip_with_keys_values_headers_and_timestamps() {
    let broker = TestBroker::start(&[]);
    let client = broker.client().await;
    create_topic(&client, "rt", 3).await;
    let producer = client.producer(ProducerOptions::new());

    let records = vec![
        ProducerRecord::new("rt", "hello")
            .with_key("user-1")
            .with_header("trace", "abc")
            .with_header("trace", "again")
            .with_timestamp(1_700_000_000_000),
        ProducerRecord {
            headers: vec![Header::null("nothing"), Header::new("bin", vec![0u8, 255])],
            ..ProducerRecord::new("rt", vec![0u8, 1, 2, 255])
        },
        ProducerRecord::null_value("rt").with_key("tomb"),
        ProducerRecord::null_value("rt").with_partition(1),
        ProducerRecord::new("rt", "").with_key(""),
        ProducerRecord::new("rt", "old").with_timestamp(-5),
    ];
    let mut handles = Vec::new();
    for r in records.clone() {
        handles.push(producer.send(r).await.unwrap());
    }
    let mut sent = BTreeMap::new();
    for (r, h) in records.into_iter().zip(handles) {
        let m = h.await.unwrap();
        assert_eq!(&*m.topic, "rt");
        if let Some(ts) = r.timestamp {
            assert_eq!(m.timestamp, ts);
        }
        sent.insert(
            (m.partition, m.offset.expect("acks=all gives offsets")),
            (r, m),
        );
    }

    let mut consumer = client
        .consumer(ConsumerOptions::new(["rt"]).start(StartFrom::Earliest))
        .await
        .unwrap();
    let got = take(&mut consumer, sent.len()).await;
    for rec in got {
        let (r, m) = sent
            .get(&(rec.partition, rec.offset))
            .unwrap_or_else(|| panic!("unexpected record {rec:?}"));
        assert_eq!(&*rec.topic, "rt");
        assert_eq!(rec.key, r.key);
        assert_eq!(rec.value, r.value);
        assert_eq!(rec.headers, r.headers);
        assert_eq!(rec.timestamp, m.timestamp);
        if let Some(p) = r.partition {
            assert_eq!(rec.partition, p);
        }
        if let Some(k) = &r.key {
            assert_eq!(rec.partition, partition_for_key(k, 3));
        }
    }
    // Nothing more.
    assert!(
        consumer
            .poll_batch(10, Duration::from_millis(200))
            .await
            .unwrap()
            .is_empty()
    );
    producer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_partition_keeps_the_order_of_sends_under_concurrency() {
    let broker = TestBroker::start(&[]);
    let client = broker.client().await;
    create_topic(&client, "order", 4).await;
    // Small batches and no linger: many requests, several partitions in flight at once.
    let producer = client.producer(
        ProducerOptions::new()
            .acks(Acks::Leader)
            .linger_ms(0)
            .batch_bytes(2048),
    );
    let tasks = 8;
    let per_task = 400;
    let mut joins = Vec::new();
    for t in 0..tasks {
        let producer = producer.clone();
        joins.push(tokio::spawn(async move {
            let mut handles: Vec<(String, u32, SendHandle)> = Vec::new();
            for i in 0..per_task {
                let key = format!("task{t}-key{}", i % 5);
                let h = producer
                    .send(ProducerRecord::new("order", format!("{t}:{i}")).with_key(key.clone()))
                    .await
                    .unwrap();
                handles.push((key, i, h));
            }
            let mut out = Vec::new();
            for (key, i, h) in handles {
                out.push((key, i, h.await.unwrap()));
            }
            out
        }));
    }
    let mut by_key: HashMap<String, Vec<(u32, u64)>> = HashMap::new();
    let mut per_partition: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for j in joins {
        for (key, i, m) in j.await.unwrap() {
            assert_eq!(m.partition, partition_for_key(key.as_bytes(), 4));
            by_key.entry(key).or_default().push((i, m.offset.unwrap()));
            per_partition
                .entry(m.partition)
                .or_default()
                .push(m.offset.unwrap());
        }
    }
    // Within a key (one partition, one sender), offsets follow the order of sends.
    for (key, sends) in &by_key {
        assert!(
            sends.windows(2).all(|w| w[0].1 < w[1].1),
            "{key}: offsets out of send order"
        );
    }
    // Every offset of every partition was handed out exactly once.
    let mut total = 0;
    for (p, mut offsets) in per_partition {
        offsets.sort_unstable();
        assert_eq!(
            offsets,
            (0..offsets.len() as u64).collect::<Vec<_>>(),
            "partition {p}"
        );
        total += offsets.len();
    }
    assert_eq!(total, tasks * per_task as usize);

    // The consumer sees each key's records in the order they were sent.
    let mut consumer = client
        .consumer(ConsumerOptions::new(["order"]).start(StartFrom::Earliest))
        .await
        .unwrap();
    let got = take(&mut consumer, total).await;
    let mut last: HashMap<(u32, u32), i64> = HashMap::new();
    for r in got {
        let value = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
        let (t, i) = value.split_once(':').unwrap();
        let (t, i): (u32, i64) = (t.parse().unwrap(), i.parse().unwrap());
        let k = (t, (i % 5) as u32);
        let prev = last.insert(k, i).unwrap_or(-1);
        assert!(
            i > prev,
            "task {t} key {} went back from {prev} to {i}",
            k.1
        );
    }
    producer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_none_leader_and_all() {
    let broker = TestBroker::start(&[]);
    let client = broker.client().await;
    create_topic(&client, "acks", 1).await;
    for (acks, known) in [(Acks::None, false), (Acks::Leader, true), (Acks::All, true)] {
        let producer = client.producer(ProducerOptions::new().acks(acks));
        let mut handles = Vec::new();
        for i in 0..50 {
            handles.push(
                producer
                    .send(ProducerRecord::new("acks", format!("{acks}:{i}")))
                    .await
                    .unwrap(),
            );
        }
        for h in handles {
            let m = h.await.unwrap();
            assert_eq!(m.offset.is_some(), known, "acks={acks}");
        }
        producer.close().await.unwrap();
    }
    let mut consumer = client
        .consumer(ConsumerOptions::new(["acks"]).start(StartFrom::Earliest))
        .await
        .unwrap();
    let got = take(&mut consumer, 150).await;
    assert_eq!(
        got.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..150).collect::<Vec<_>>()
    );
    assert_eq!(got[0].value.as_deref(), Some(&b"0:0"[..]));
    assert_eq!(got[149].value.as_deref(), Some(&b"all:49"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_sends_lingering_batches_and_waits_for_them() {
    let broker = TestBroker::start(&[]);
    let client = broker.client().await;
    create_topic(&client, "flush", 2).await;
    // A linger far longer than the test: only flush can send these.
    let producer = client.producer(ProducerOptions::new().linger_ms(600_000));
    let mut handles = Vec::new();
    for i in 0..20 {
        handles.push(
            producer
                .send(ProducerRecord::new("flush", format!("{i}")).with_key(format!("{i}")))
                .await
                .unwrap(),
        );
    }
    tokio::time::timeout(Duration::from_secs(10), producer.flush())
        .await
        .expect("flush finishes")
        .unwrap();
    for h in handles {
        let m = h.now_or_never().expect("done after flush").unwrap();
        assert!(m.offset.is_some());
    }
    let offsets = client.admin().list_offsets("flush", None).await.unwrap();
    assert_eq!(offsets.iter().map(|o| o.latest).sum::<u64>(), 20);
    producer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_land_where_kafka_and_the_broker_route_them() {
    let broker = TestBroker::start(&[]);
    let client = broker.client().await;
    create_topic(&client, "three", 3).await;
    create_topic(&client, "four", 4).await;
    let producer = client.producer(ProducerOptions::new());
    // The vectors of docs/PROTOCOL.md §7 (checked against the broker's own routing).
    for (topic, expected) in [("three", 2), ("four", 0)] {
        for key in ["user-1", "user-2"] {
            let h = producer
                .send(ProducerRecord::new(topic, "v").with_key(key))
                .await
                .unwrap();
            assert_eq!(h.partition(), expected, "{key} in {topic}");
            assert_eq!(h.await.unwrap().partition, expected);
        }
    }
    // Many keys: the records are stored in the partition the shared partitioner names.
    let mut expected = BTreeMap::new();
    for i in 0..300 {
        let key = format!("key-{i}");
        let h = producer
            .send(ProducerRecord::new("four", key.clone()).with_key(key.clone()))
            .await
            .unwrap();
        expected.insert(key.clone(), partition_for_key(key.as_bytes(), 4));
        assert_eq!(h.partition(), expected[&key]);
    }
    producer.flush().await.unwrap();
    let mut consumer = client
        .consumer(ConsumerOptions::new(["four"]).start(StartFrom::Earliest))
        .await
        .unwrap();
    for r in take(&mut consumer, 302).await {
        let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
        if let Some(p) = expected.get(&key) {
            assert_eq!(r.partition, *p, "{key}");
        }
    }
    // Keyless records stick to one partition per batch.
    let sticky = client.producer(ProducerOptions::new().linger_ms(600_000));
    let mut parts = Vec::new();
    for i in 0..10 {
        let h = sticky
            .send(ProducerRecord::new("three", format!("{i}")))
            .await
            .unwrap();
        parts.push(h.partition());
    }
    assert!(parts.iter().all(|p| *p == parts[0]), "{parts:?}");
    sticky.close().await.unwrap();
    producer.close().await.unwrap();
}

/// One partition holding records 0..10 with timestamps 1000..1010.
async fn ten_records(client: &sluice_client::Client, topic: &str) {
    create_topic(client, topic, 1).await;
    let producer = client.producer(ProducerOptions::new());
    for i in 0..10 {
        producer
            .send(ProducerRecord::new(topic, format!("{i}")).with_timestamp(1000 + i))
            .await
            .unwrap()
            .detach();
    }
    producer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_start_at_earliest_latest_offset_or_timestamp() {
    let broker = TestBroker::start(&[]);
    let client = broker.client().await;
    ten_records(&client, "starts").await;

    for (start, first) in [
        (StartFrom::Earliest, 0),
        (StartFrom::Offset(5), 5),
        (StartFrom::Timestamp(1007), 7),
        (StartFrom::Offset(99), 10),
    ] {
        let mut consumer = client
            .consumer(ConsumerOptions::new(["starts"]).start(start))
            .await
            .unwrap();
        assert_eq!(consumer.position("starts", 0), Some(first), "{start:?}");
        if first < 10 {
            let r = take(&mut consumer, 1).await.remove(0);
            assert_eq!(r.offset, first, "{start:?}");
            assert_eq!(r.timestamp, 1000 + first as i64);
            assert_eq!(consumer.position("starts", 0), Some(first + 1));
        }
    }

    let mut latest = client
        .consumer(ConsumerOptions::new(["starts"]).start(StartFrom::Latest))
        .await
        .unwrap();
    assert_eq!(latest.position("starts", 0), Some(10));
    assert_eq!(latest.assignment(), vec![("starts".to_string(), 0)]);
    let producer = client.producer(ProducerOptions::new());
    producer
        .send(ProducerRecord::new("starts", "new"))
        .await
        .unwrap()
        .detach();
    producer.flush().await.unwrap();
    let r = take(&mut latest, 1).await.remove(0);
    assert_eq!((r.offset, r.value), (10, Some(Bytes::from("new"))));
    producer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seek_moves_the_position_both_ways() {
    let broker = TestBroker::start(&[]);
    let client = broker.client().await;
    ten_records(&client, "seek").await;
    let mut consumer = client
        .consumer(ConsumerOptions::new(["seek"]).start(StartFrom::Earliest))
        .await
        .unwrap();
    let first: Vec<u64> = take(&mut consumer, 3)
        .await
        .iter()
        .map(|r| r.offset)
        .collect();
    assert_eq!(first, [0, 1, 2]);
    consumer.seek("seek", 0, 1).unwrap();
    assert_eq!(consumer.position("seek", 0), Some(1));
    let again: Vec<u64> = take(&mut consumer, 2)
        .await
        .iter()
        .map(|r| r.offset)
        .collect();
    assert_eq!(again, [1, 2]);
    consumer.seek("seek", 0, 8).unwrap();
    let ahead: Vec<u64> = take(&mut consumer, 2)
        .await
        .iter()
        .map(|r| r.offset)
        .collect();
    assert_eq!(ahead, [8, 9]);
    assert!(consumer.seek("seek", 3, 0).is_err());
    assert!(consumer.seek("other", 0, 0).is_err());
    let batch = consumer
        .poll_batch(10, Duration::from_millis(100))
        .await
        .unwrap();
    assert!(batch.is_empty());
    consumer.seek("seek", 0, 0).unwrap();
    let batch = consumer
        .poll_batch(4, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(batch.first().map(|r| r.offset), Some(0));
    assert!(batch.len() <= 4);
    consumer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_is_not_polled_gets_no_more_than_its_credit() {
    let broker = TestBroker::start(&[]);
    let client = broker.client().await;
    create_topic(&client, "credit", 1).await;
    let batch_bytes = 16 << 10;
    let producer = client.producer(
        ProducerOptions::new()
            .acks(Acks::Leader)
            .batch_bytes(batch_bytes),
    );
    let n = 4000;
    for i in 0..n {
        producer
            .send(ProducerRecord::new("credit", vec![(i % 251) as u8; 1000]))
            .await
            .unwrap()
            .detach();
    }
    producer.flush().await.unwrap();

    let credit = 64 << 10;
    let mut consumer = client
        .consumer(
            ConsumerOptions::new(["credit"])
                .start(StartFrom::Earliest)
                .credit_bytes(credit),
        )
        .await
        .unwrap();
    take(&mut consumer, 1).await;
    // The broker pushes ~4 MB if nothing stops it; give it time to try.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = consumer.buffered_bytes();
    assert!(
        held <= credit + batch_bytes as u64,
        "holding {held} bytes with a credit of {credit}"
    );
    // Consuming grants credit back: everything arrives, in order.
    let rest = take(&mut consumer, n - 1).await;
    assert!(
        rest.iter()
            .enumerate()
            .all(|(i, r)| r.offset == i as u64 + 1)
    );
    assert_eq!(
        rest.last().unwrap().value.as_ref().unwrap()[0],
        ((n - 1) % 251) as u8
    );
    producer.close().await.unwrap();
}
