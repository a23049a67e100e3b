//! HTTP produce and fetch throughput against the real `sluice` binary.
//!
//! `cargo bench -p sluice-server --bench http` — starts a broker (release build) on a free
//! port with its data in target/, then measures:
//! - produce: POST /v1/topics/bench/records with 1000 JSON records of 1 KiB each per request;
//! - fetch (JSON): GET .../partitions/0/records with max_bytes=1 MiB, records decoded to JSON;
//! - fetch (batches): the same with `Accept: application/vnd.sluice.batches` (raw batches).
//!
//! Throughput is reported in bytes of record values (1 KiB each) so the three compare.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const RECORDS_PER_REQUEST: usize = 1000;
const VALUE_BYTES: usize = 1024;

struct Broker {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Broker {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log",
            "warn",
            "--data-dir",
        ])
        .arg(dir.path())
        .args([
            "--log-default",
            "durability=never",
            "--max-request-bytes",
            "67108864",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = loop {
        let line = lines.next().expect("broker exited").unwrap();
        if let Some(rest) = line.strip_prefix("sluice listening on ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Broker {
        child,
        base,
        _dir: dir,
    }
}

fn body() -> Vec<u8> {
    let value = "v".repeat(VALUE_BYTES);
    let records: Vec<serde_json::Value> = (0..RECORDS_PER_REQUEST)
        .map(|i| serde_json::json!({"key": format!("key-{i}"), "value": value, "partition": 0}))
        .collect();
    serde_json::to_vec(&serde_json::json!({ "records": records })).unwrap()
}

fn bench(c: &mut Criterion) {
    let broker = start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rt = &runtime;
    let http = reqwest::Client::new();
    rt.block_on(async {
        http.post(format!("{}/v1/topics", broker.base))
            .json(&serde_json::json!({"name": "bench", "partitions": 1}))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    });
    let body = body();
    let produce_url = format!("{}/v1/topics/bench/records?acks=1", broker.base);

    let mut g = c.benchmark_group("http");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Bytes(
        (RECORDS_PER_REQUEST * VALUE_BYTES) as u64,
    ));
    g.bench_function("produce 1000 x 1 KiB JSON records per request", |b| {
        b.iter(|| {
            rt.block_on(async {
                let r = http
                    .post(&produce_url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
                r.bytes().await.unwrap()
            })
        })
    });

    // Fetch what was produced, 1 MiB per request, wrapping around at the end.
    let fetch = |raw: bool| {
        let http = http.clone();
        let base = broker.base.clone();
        move |iters: u64| -> Duration {
            rt.block_on(async {
                let mut offset = 0u64;
                let start = Instant::now();
                for _ in 0..iters {
                    let mut req = http.get(format!("{base}/v1/topics/bench/partitions/0/records?offset={offset}&max_bytes=1048576"));
                    if raw {
                        req = req.header("accept", "application/vnd.sluice.batches");
                    }
                    let r = req.send().await.unwrap();
                    let next: u64 = if raw {
                        let n = r.headers()["sluice-next-offset"].to_str().unwrap().parse().unwrap();
                        let _ = r.bytes().await.unwrap();
                        n
                    } else {
                        let v: serde_json::Value = r.json().await.unwrap();
                        v["next_offset"].as_u64().unwrap()
                    };
                    let hw = 10 * RECORDS_PER_REQUEST as u64;
                    offset = if next >= hw { 0 } else { next };
                }
                start.elapsed()
            })
        }
    };
    // Make sure there are at least 10 requests' worth of records to read.
    for _ in 0..10 {
        rt.block_on(async {
            http.post(&produce_url)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap()
        });
    }
    // A 1 MiB fetch holds about 1000 records of 1 KiB.
    g.throughput(Throughput::Bytes(1 << 20));
    let mut json = fetch(false);
    g.bench_function("fetch 1 MiB as JSON records", |b| b.iter_custom(&mut json));
    let mut raw = fetch(true);
    g.bench_function("fetch 1 MiB as raw batches", |b| b.iter_custom(&mut raw));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
