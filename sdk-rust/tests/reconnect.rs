//! The broker restarts under a producer and a consumer: the producer retries, the consumer
//! resumes where it was, and nothing is lost or seen twice.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{TestBroker, create_topic, free_port};
use futures_util::StreamExt;
use sluice_client::{
    Acks, Consumer, ConsumerOptions, ProducerOptions, ProducerRecord, Record, StartFrom,
};

async fn take(consumer: &mut Consumer, n: usize) -> Vec<Record> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(15), consumer.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} records arrived", out.len()))
            .expect("the stream does not end")
            .expect("no error");
        out.push(next);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_and_consumer_survive_a_broker_restart() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let broker = TestBroker::start_on(tempfile::tempdir().unwrap(), &listen, &[]);
    let client = broker.client().await;
    create_topic(&client, "events", 2).await;

    let producer = client.producer(ProducerOptions::new().acks(Acks::All).linger_ms(2));
    let value = |i: u32| format!("event-{i}");
    let mut handles = Vec::new();
    for i in 0..600 {
        handles.push(
            producer
                .send(ProducerRecord::new("events", value(i)).with_key(format!("k{}", i % 7)))
                .await
                .unwrap(),
        );
    }
    producer.flush().await.unwrap();
    for h in handles.drain(..) {
        h.await.unwrap();
    }

    // The consumer is part-way through when the broker goes away.
    let mut consumer = client
        .consumer(
            ConsumerOptions::new(["events"])
                .start(StartFrom::Earliest)
                .credit_bytes(8 << 10),
        )
        .await
        .unwrap();
    let mut seen = take(&mut consumer, 250).await;

    let dir = broker.stop();
    // Records sent while the broker is down wait, then go out after the restart.
    for i in 600..1000 {
        handles.push(
            producer
                .send(ProducerRecord::new("events", value(i)).with_key(format!("k{}", i % 7)))
                .await
                .unwrap(),
        );
    }
    let broker = TestBroker::start_on(dir, &listen, &[]);
    tokio::time::timeout(Duration::from_secs(20), producer.flush())
        .await
        .expect("the producer delivers after the restart")
        .unwrap();
    for h in handles {
        h.await.expect("retried until delivered");
    }

    seen.extend(take(&mut consumer, 750).await);
    // Per partition: offsets 0, 1, 2, ... without a gap or a repeat.
    let mut by_partition: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for r in &seen {
        by_partition.entry(r.partition).or_default().push(r.offset);
    }
    for (p, offsets) in &by_partition {
        assert_eq!(
            offsets,
            &(0..offsets.len() as u64).collect::<Vec<_>>(),
            "partition {p}"
        );
    }
    // Every record was written once.
    let mut values: Vec<String> = seen
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect();
    values.sort();
    let mut expected: Vec<String> = (0..1000).map(value).collect();
    expected.sort();
    assert_eq!(values, expected);
    assert!(
        consumer
            .poll_batch(1, Duration::from_millis(200))
            .await
            .unwrap()
            .is_empty()
    );

    // The client works as before.
    assert_eq!(
        client
            .admin()
            .list_offsets("events", None)
            .await
            .unwrap()
            .iter()
            .map(|o| o.latest)
            .sum::<u64>(),
        1000
    );
    producer.close().await.unwrap();
    drop(broker);
}
