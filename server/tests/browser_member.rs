//! Not a test by itself: the Rust half of a browser end-to-end test. `tests/browser/e2e.test.mjs`
//! runs this ignored test as a process of its own — a consumer-group member on the Rust SDK
//! (`sluice-client`) next to a console page in Chromium, the two splitting a topic's
//! partitions — as
//!
//! ```text
//! <this test binary> --ignored --exact rust_group_member --nocapture
//! ```
//!
//! with `SLUICE_URL` (the broker), `SLUICE_TOPIC` and `SLUICE_GROUP` set. It prints one JSON
//! line per record (`{"partition", "offset", "value"}`) and one per assignment it applies
//! (`{"assignment": [partitions]}`); when its standard input closes it commits what it printed
//! and leaves the group, then exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use sluice_client::{Client, ConsumerOptions, OffsetReset};

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: this runs as a child of tests/browser/e2e.test.mjs")
    })
}

#[tokio::test]
#[ignore = "a child process of tests/browser/e2e.test.mjs, not a test on its own"]
async fn rust_group_member() {
    let (url, topic, group) = (var("SLUICE_URL"), var("SLUICE_TOPIC"), var("SLUICE_GROUP"));
    // Standard input closing is the signal to leave (a blocking read on a thread of its own).
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        flag.store(true, Ordering::Release);
    });

    let client = Client::connect(&url).await.expect("connect");
    let mut consumer = client
        .consumer(
            ConsumerOptions::new([topic.as_str()])
                .group(group)
                .auto_offset_reset(OffsetReset::Earliest),
        )
        .await
        .expect("join the group");
    let mut rebalances = consumer.rebalance_events().expect("group mode");
    while !done.load(Ordering::Acquire) {
        // Short polls, never cancelled: the loop checks for the end of stdin between them.
        let records = consumer
            .poll_batch(1000, Duration::from_millis(100))
            .await
            .expect("poll");
        let mut changed = false;
        while rebalances.try_recv().is_ok() {
            changed = true;
        }
        if changed {
            let partitions: Vec<u32> = consumer.assignment().into_iter().map(|(_, p)| p).collect();
            println!("{}", json!({ "assignment": partitions }));
        }
        for r in records {
            let value = r.value.as_deref().map(String::from_utf8_lossy);
            println!(
                "{}",
                json!({ "partition": r.partition, "offset": r.offset, "value": value })
            );
        }
    }
    consumer.commit().await.expect("commit");
    consumer.close().await.expect("leave the group");
}
