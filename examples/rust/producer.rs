//! Produces records to a topic, creating it if needed.
//!
//! ```sh
//! cargo run -p sluice-client --example producer -- [URL] [TOPIC] [COUNT]
//! ```
//!
//! Defaults: `http://127.0.0.1:9400`, topic `orders`, 10 records. Each record gets a key
//! (`user-0` ... `user-4`), so records of one user land in one partition, in order.

use sluice_client::{
    Acks, Client, ErrorCode, NewTopic, ProducerOptions, ProducerRecord, Result, SendHandle,
};

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:9400".into());
    let topic = args.next().unwrap_or_else(|| "orders".into());
    let count: u32 = args.next().and_then(|n| n.parse().ok()).unwrap_or(10);

    let client = Client::connect(&url).await?;
    match client
        .admin()
        .create_topic(NewTopic::new(&topic).partitions(3))
        .await
    {
        Ok(t) => println!(
            "created topic {} with {} partitions",
            t.name,
            t.partitions.len()
        ),
        Err(e) if e.code() == Some(ErrorCode::TopicExists) => {}
        Err(e) => return Err(e),
    }

    let producer = client.producer(ProducerOptions::new().acks(Acks::All).linger_ms(5));
    // `send` only waits for room in the buffer; the handles resolve once the broker has
    // written the records. Keep them to learn each record's offset.
    let mut handles: Vec<SendHandle> = Vec::new();
    for i in 0..count {
        let record = ProducerRecord::new(&topic, format!("order #{i}"))
            .with_key(format!("user-{}", i % 5))
            .with_header("source", "examples/rust/producer.rs");
        handles.push(producer.send(record).await?);
    }
    for handle in handles {
        let m = handle.await?;
        println!(
            "{}/{} offset {} (timestamp {})",
            m.topic,
            m.partition,
            m.offset.map_or("?".into(), |o| o.to_string()),
            m.timestamp
        );
    }
    producer.close().await?;
    Ok(())
}
