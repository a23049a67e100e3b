//! Reads a topic from the beginning and prints each record, then waits for new ones.
//!
//! ```sh
//! cargo run -p sluice-client --example consumer -- [URL] [TOPIC]
//! ```
//!
//! Defaults: `http://127.0.0.1:9400`, topic `orders`. Stop it with Ctrl-C.

use futures_util::StreamExt;
use sluice_client::{Client, ConsumerOptions, Result, StartFrom};

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:9400".into());
    let topic = args.next().unwrap_or_else(|| "orders".into());

    let client = Client::connect(&url).await?;
    let mut consumer = client
        .consumer(ConsumerOptions::new([topic.as_str()]).start(StartFrom::Earliest))
        .await?;
    println!("reading {topic} from the earliest offset; Ctrl-C to stop");
    loop {
        tokio::select! {
            record = consumer.next() => {
                let Some(record) = record else { break };
                let r = record?;
                let text = |b: &Option<sluice_client::Bytes>| match b {
                    Some(b) => String::from_utf8_lossy(b).into_owned(),
                    None => "null".into(),
                };
                println!(
                    "{}/{} @{} ts={} key={} value={} headers={}",
                    r.topic,
                    r.partition,
                    r.offset,
                    r.timestamp,
                    text(&r.key),
                    text(&r.value),
                    r.headers.len()
                );
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    consumer.close().await
}
