//! Group-mode consumers against the real broker.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use common::{TestBroker, create_topic};
use futures_util::StreamExt;
use sluice_client::{
    Client, Consumer, ConsumerOptions, OffsetReset, ProducerOptions, ProducerRecord, Rebalance,
};

/// Broker flags: heartbeats every 100 ms, so that rebalances settle quickly.
const FLAGS: &[&str] = &["--group-heartbeat-interval-ms", "100"];

const WAIT: Duration = Duration::from_secs(20);

type Key = (String, u32, u64);

fn key(r: &sluice_client::Record) -> Key {
    (r.topic.to_string(), r.partition, r.offset)
}

async fn group_consumer(client: &Client, topic: &str, group: &str, reset: OffsetReset) -> Consumer {
    client
        .consumer(
            ConsumerOptions::new([topic])
                .group(group)
                .auto_offset_reset(reset),
        )
        .await
        .expect("join the group")
}

/// Produces `n` records spread over `partitions` partitions; returns their keys.
async fn produce(
    client: &Client,
    topic: &str,
    partitions: u32,
    n: u32,
    tag: &str,
) -> BTreeSet<Key> {
    let producer = client.producer(ProducerOptions::new());
    let mut handles = Vec::new();
    for i in 0..n {
        let record =
            ProducerRecord::new(topic, format!("{tag}-{i}")).with_partition(i % partitions);
        handles.push(producer.send(record).await.expect("send"));
    }
    let mut keys = BTreeSet::new();
    for h in handles {
        let m = h.await.expect("produced");
        keys.insert((
            m.topic.to_string(),
            m.partition,
            m.offset.expect("acks give offsets"),
        ));
    }
    producer.close().await.expect("close producer");
    keys
}

/// Polls every consumer in turn (short waits) until `done` holds, collecting their records
/// per consumer; panics after `WAIT`.
async fn poll_until(
    consumers: &mut [&mut Consumer],
    seen: &mut [Vec<Key>],
    mut done: impl FnMut(&[&mut Consumer], &[Vec<Key>]) -> bool,
    what: &str,
) {
    let start = Instant::now();
    loop {
        if done(consumers, seen) {
            return;
        }
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        for (c, out) in consumers.iter_mut().zip(seen.iter_mut()) {
            let batch = c
                .poll_batch(1000, Duration::from_millis(20))
                .await
                .expect("poll");
            out.extend(batch.iter().map(key));
        }
    }
}

fn assigned(c: &Consumer) -> BTreeSet<(String, u32)> {
    c.assignment().into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_split_partitions_and_one_takes_over_without_gaps_or_duplicates() {
    let broker = TestBroker::start(FLAGS);
    let client = broker.client().await;
    create_topic(&client, "split", 4).await;

    let mut a = group_consumer(&client, "split", "g", OffsetReset::Earliest).await;
    let mut events_a = a.rebalance_events().expect("first call");
    let mut b = group_consumer(&client, "split", "g", OffsetReset::Earliest).await;
    let all: BTreeSet<(String, u32)> = (0..4).map(|p| ("split".to_string(), p)).collect();

    let mut seen = vec![Vec::new(), Vec::new()];
    poll_until(
        &mut [&mut a, &mut b],
        &mut seen,
        |cs, _| {
            let (x, y) = (assigned(cs[0]), assigned(cs[1]));
            !x.is_empty() && !y.is_empty() && x.is_disjoint(&y) && &x | &y == all
        },
        "a split of the 4 partitions",
    )
    .await;
    let (part_a, part_b) = (assigned(&a), assigned(&b));
    assert_eq!(part_a.len() + part_b.len(), 4);
    // A first had everything, then gave some up.
    let mut a_events = Vec::new();
    while let Ok(e) = events_a.try_recv() {
        a_events.push(e);
    }
    assert!(matches!(a_events.first(), Some(Rebalance::Assigned(p)) if p.len() == 4));
    assert!(a_events.iter().any(|e| matches!(e, Rebalance::Revoked(_))));

    let first = produce(&client, "split", 4, 200, "one").await;
    poll_until(
        &mut [&mut a, &mut b],
        &mut seen,
        |_, seen| seen[0].len() + seen[1].len() >= 200,
        "the first 200 records",
    )
    .await;
    // Each consumer read only its own partitions.
    assert!(
        seen[0]
            .iter()
            .all(|(t, p, _)| part_a.contains(&(t.clone(), *p)))
    );
    assert!(
        seen[1]
            .iter()
            .all(|(t, p, _)| part_b.contains(&(t.clone(), *p)))
    );

    // A commits and leaves; B takes over from A's commits.
    a.commit().await.expect("commit");
    a.close().await.expect("close");
    let second = produce(&client, "split", 4, 200, "two").await;
    let mut rest = vec![Vec::new()];
    let expected = first.len() + second.len();
    let before = seen[0].len() + seen[1].len();
    poll_until(
        &mut [&mut b],
        &mut rest,
        |_, r| before + r[0].len() >= expected,
        "all 400 records",
    )
    .await;
    assert_eq!(assigned(&b), all);
    let everything: Vec<Key> = seen
        .into_iter()
        .flatten()
        .chain(rest.into_iter().flatten())
        .collect();
    let unique: BTreeSet<Key> = everything.iter().cloned().collect();
    assert_eq!(unique.len(), everything.len(), "no duplicates");
    let wanted: BTreeSet<Key> = &first | &second;
    assert_eq!(unique, wanted, "every record exactly once");
    b.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_commit_then_restart_resumes_after_the_commit() {
    let broker = TestBroker::start(FLAGS);
    let client = broker.client().await;
    create_topic(&client, "manual", 2).await;
    let all = produce(&client, "manual", 2, 20, "m").await;

    let options = ConsumerOptions::new(["manual"])
        .group("m")
        .auto_offset_reset(OffsetReset::Earliest)
        .auto_commit_interval_ms(None);
    let mut c = client.consumer(options.clone()).await.expect("join");
    let mut first = Vec::new();
    for _ in 0..10 {
        let r = tokio::time::timeout(WAIT, c.next())
            .await
            .expect("a record in time")
            .expect("stream open")
            .expect("record");
        first.push(key(&r));
    }
    c.commit().await.expect("commit");
    // Read more without committing: these come again after the restart.
    for _ in 0..3 {
        tokio::time::timeout(WAIT, c.next())
            .await
            .expect("a record in time")
            .expect("stream open")
            .expect("record");
    }
    c.close().await.expect("close");

    let mut c = client.consumer(options).await.expect("join again");
    let mut seen = vec![Vec::new()];
    poll_until(
        &mut [&mut c],
        &mut seen,
        |_, s| s[0].len() >= 10,
        "the other 10 records",
    )
    .await;
    let first: BTreeSet<Key> = first.into_iter().collect();
    let rest: BTreeSet<Key> = seen[0].iter().cloned().collect();
    assert_eq!(rest.len(), seen[0].len(), "no duplicates");
    assert!(first.is_disjoint(&rest));
    assert_eq!(&first | &rest, all);
    c.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_offset_reset_earliest_and_latest() {
    let broker = TestBroker::start(FLAGS);
    let client = broker.client().await;
    create_topic(&client, "reset", 2).await;
    let old = produce(&client, "reset", 2, 10, "old").await;

    let mut early = group_consumer(&client, "reset", "early", OffsetReset::Earliest).await;
    let mut late = group_consumer(&client, "reset", "late", OffsetReset::Latest).await;
    let mut seen = vec![Vec::new(), Vec::new()];
    poll_until(
        &mut [&mut early, &mut late],
        &mut seen,
        |cs, s| cs[1].assignment().len() == 2 && s[0].len() >= 10,
        "the old records and the latest consumer's assignment",
    )
    .await;
    let new = produce(&client, "reset", 2, 6, "new").await;
    poll_until(
        &mut [&mut early, &mut late],
        &mut seen,
        |_, s| s[0].len() >= 16 && s[1].len() >= 6,
        "the new records",
    )
    .await;
    let early_seen: BTreeSet<Key> = seen[0].iter().cloned().collect();
    let late_seen: BTreeSet<Key> = seen[1].iter().cloned().collect();
    assert_eq!(early_seen, &old | &new);
    assert_eq!(late_seen, new);
    assert_eq!(seen[1].len(), 6);

    // No reset policy and nothing committed: an error, and nothing read.
    let mut none = group_consumer(&client, "reset", "none", OffsetReset::None).await;
    let error = tokio::time::timeout(WAIT, none.next())
        .await
        .expect("an error in time")
        .expect("stream open");
    assert!(error.is_err());
    assert!(none.assignment().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_session_expires_loses_its_partitions_and_rejoins() {
    let broker = TestBroker::start(&[]);
    let client = broker.client().await;
    create_topic(&client, "fence", 4).await;
    let options = |_: ()| {
        ConsumerOptions::new(["fence"])
            .group("f")
            .session_timeout_ms(600)
            .auto_offset_reset(OffsetReset::Earliest)
    };
    let mut a = client.consumer(options(())).await.expect("join");
    let mut events_a = a.rebalance_events().expect("first call");
    let mut b = client.consumer(options(())).await.expect("join");
    let all: BTreeSet<(String, u32)> = (0..4).map(|p| ("fence".to_string(), p)).collect();
    let mut seen = vec![Vec::new(), Vec::new()];
    poll_until(
        &mut [&mut a, &mut b],
        &mut seen,
        |cs, _| {
            let (x, y) = (assigned(cs[0]), assigned(cs[1]));
            !x.is_empty() && !y.is_empty() && &x | &y == all
        },
        "a split",
    )
    .await;
    while events_a.try_recv().is_ok() {}
    let owned_by_a = assigned(&a);

    // A stops heartbeating: its session ends and B gets everything.
    a.pause_heartbeats(true);
    poll_until(
        &mut [&mut b],
        &mut seen[1..],
        |cs, _| assigned(cs[0]) == all,
        "B to own all",
    )
    .await;
    a.pause_heartbeats(false);
    // A learns it is no longer a member: it loses its partitions (and joins again).
    let start = Instant::now();
    let mut revoked = HashSet::new();
    while !owned_by_a.iter().all(|tp| revoked.contains(tp)) {
        assert!(start.elapsed() < WAIT, "A never lost its partitions");
        let _ = a.poll_batch(100, Duration::from_millis(20)).await;
        let _ = b.poll_batch(100, Duration::from_millis(20)).await;
        while let Ok(e) = events_a.try_recv() {
            if let Rebalance::Revoked(ps) = e {
                revoked.extend(ps);
            }
        }
    }
    // And the group settles again with both members.
    poll_until(
        &mut [&mut a, &mut b],
        &mut seen,
        |cs, _| {
            let (x, y) = (assigned(cs[0]), assigned(cs[1]));
            !x.is_empty() && !y.is_empty() && x.is_disjoint(&y) && &x | &y == all
        },
        "a new split",
    )
    .await;
    a.close().await.expect("close");
    b.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assignment_pushes_rebalance_without_waiting_for_heartbeats() {
    // Heartbeats every 10 s: a split within 5 s needs the broker's pushes.
    let broker = TestBroker::start(&["--group-heartbeat-interval-ms", "10000"]);
    let client = broker.client().await;
    create_topic(&client, "push", 4).await;
    let mut a = group_consumer(&client, "push", "p", OffsetReset::Latest).await;
    let other = broker.client().await;
    let mut b = group_consumer(&other, "push", "p", OffsetReset::Latest).await;
    let all: BTreeSet<(String, u32)> = (0..4).map(|p| ("push".to_string(), p)).collect();
    let start = Instant::now();
    let mut seen = vec![Vec::new(), Vec::new()];
    poll_until(
        &mut [&mut a, &mut b],
        &mut seen,
        |cs, _| {
            let (x, y) = (assigned(cs[0]), assigned(cs[1]));
            x.len() == 2 && y.len() == 2 && &x | &y == all
        },
        "a split",
    )
    .await;
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    a.close().await.expect("close");
    b.close().await.expect("close");
}
