//! Measures produce and consume throughput through one client: writes `TOTAL` bytes of
//! `SIZE`-byte records (keyless, so batches stick to a partition each) with acks=1 into a new
//! topic, then reads them all back from the earliest offset.
//!
//! ```sh
//! ./dev serve &    # a release broker on 127.0.0.1:9400
//! cargo run --release -p sluice-client --example throughput -- [URL] [TOTAL_MIB] [SIZE] [PARTITIONS]
//! ```
//!
//! Defaults: `http://127.0.0.1:9400`, 1024 MiB, 1024-byte records, 1 partition. The topic
//! (`throughput-<time>`) is deleted at the end.

use std::time::Instant;

use futures_util::StreamExt;
use sluice_client::{
    Acks, Bytes, Client, ConsumerOptions, NewTopic, ProducerOptions, ProducerRecord, Result,
    StartFrom,
};

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:9400".into());
    let total_mib: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(1024);
    let size: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1024);
    let partitions: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(1);
    let count = (total_mib << 20) / size as u64;
    let bytes = count * size as u64;

    let client = Client::connect(&url).await?;
    let topic = format!(
        "throughput-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    client
        .admin()
        .create_topic(NewTopic::new(&topic).partitions(partitions))
        .await?;

    // One value shared by every record: the producer copies it into the batch, nothing else.
    let value = Bytes::from(vec![b'x'; size]);
    let producer = client.producer(ProducerOptions::new().acks(Acks::Leader));
    let start = Instant::now();
    for _ in 0..count {
        producer
            .send(ProducerRecord::new(topic.as_str(), value.clone()))
            .await?
            .detach();
    }
    producer.flush().await?;
    let produce = start.elapsed().as_secs_f64();
    producer.close().await?;
    report("produce", count, bytes, produce);

    let mut consumer = client
        .consumer(ConsumerOptions::new([topic.as_str()]).start(StartFrom::Earliest))
        .await?;
    let start = Instant::now();
    let mut seen = 0u64;
    let mut seen_bytes = 0u64;
    while seen < count {
        let Some(record) = consumer.next().await else {
            break;
        };
        let record = record?;
        seen += 1;
        seen_bytes += record.value.map_or(0, |v| v.len() as u64);
    }
    let consume = start.elapsed().as_secs_f64();
    report("consume", seen, seen_bytes, consume);
    consumer.close().await?;
    client.admin().delete_topic(&topic).await?;
    Ok(())
}

fn report(what: &str, records: u64, bytes: u64, seconds: f64) {
    println!(
        "{what}: {records} records, {:.0} MiB in {seconds:.2} s = {:.1} MB/s, {:.0} records/s",
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / 1e6 / seconds,
        records as f64 / seconds
    );
}
