//! `sluice bench` against a real broker: a short run of each timed scenario, checking the
//! report's fields make sense (never its speeds).

mod common;

use std::process::Command;

use serde_json::Value;

fn bench(broker: &common::TestBroker, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("bench")
        .args(args)
        .args(["--json", "--url", &broker.url("")])
        .env_remove("SLUICE_URL")
        .output()
        .expect("run sluice bench");
    assert!(
        out.status.success(),
        "sluice bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON object ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn positive(report: &Value, field: &str) -> f64 {
    let v = report[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} missing: {report}"));
    assert!(v > 0.0, "{field} is {v}: {report}");
    v
}

#[test]
fn produce_reports_throughput() {
    let broker = common::TestBroker::start(&[]);
    let r = bench(
        &broker,
        &["produce", "--count", "2000", "--record-bytes", "100"],
    );
    assert_eq!(r["scenario"], "produce");
    assert_eq!(r["records"], 2000, "{r}");
    assert_eq!(r["produced"], 2000, "{r}");
    assert_eq!(r["bytes"], 200_000, "{r}");
    assert!(r["latency_ms"].is_null(), "{r}");
    positive(&r, "records_per_sec");
    positive(&r, "mb_per_sec");
    positive(&r, "seconds");

    // The temporary topic is gone afterwards.
    let topics: Value = serde_json::from_str(
        &String::from_utf8(
            Command::new(env!("CARGO_BIN_EXE_sluice"))
                .args(["topic", "list", "--json", "--url", &broker.url("")])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap(),
    )
    .unwrap();
    let name = r["topic"].as_str().unwrap();
    assert!(name.starts_with("bench-"), "{name}");
    assert!(
        !topics["topics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == name),
        "{topics}"
    );
}

#[test]
fn e2e_reports_latency_percentiles() {
    let broker = common::TestBroker::start(&[]);
    let r = bench(
        &broker,
        &[
            "e2e",
            "--count",
            "2000",
            "--record-bytes",
            "100",
            "--partitions",
            "2",
            "--consumers",
            "2",
        ],
    );
    assert_eq!(r["scenario"], "e2e");
    assert_eq!(r["produced"], 2000, "{r}");
    assert_eq!(r["consumed"], 2000, "{r}");
    assert_eq!(r["records"], 2000, "{r}");
    positive(&r, "records_per_sec");
    positive(&r, "mb_per_sec");
    let l = &r["latency_ms"];
    assert_eq!(l["samples"], 2000, "{r}");
    let q: Vec<f64> = ["p50", "p90", "p99", "p999", "max"]
        .iter()
        .map(|k| l[k].as_f64().unwrap_or_else(|| panic!("{k} missing: {r}")))
        .collect();
    assert!(q[0] >= 0.0, "{r}");
    assert!(
        q.windows(2).all(|w| w[0] <= w[1]),
        "percentiles out of order: {r}"
    );
    assert!(q[4] > 0.0, "{r}");
}

#[test]
fn consume_and_group_read_everything() {
    let broker = common::TestBroker::start(&[]);
    let r = bench(
        &broker,
        &[
            "consume",
            "--count",
            "2000",
            "--partitions",
            "3",
            "--consumers",
            "2",
        ],
    );
    assert_eq!(r["consumed"], 2000, "{r}");
    assert_eq!(r["records"], 2000, "{r}");
    positive(&r, "records_per_sec");
    let r = bench(
        &broker,
        &[
            "group",
            "--count",
            "2000",
            "--partitions",
            "2",
            "--consumers",
            "2",
        ],
    );
    assert_eq!(r["consumed"], 2000, "{r}");
    assert_eq!(r["latency_ms"]["samples"], 2000, "{r}");
}
