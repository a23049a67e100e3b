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

/// The example JSON filter, built from the separate `plugins/` workspace into
/// `<target dir>/plugins` (as the plugin host's tests build it); `SLUICE_PLUGINS_DIR` names a
/// directory of built `.wasm` files instead.
fn json_filter_wasm() -> std::path::PathBuf {
    let dir = match std::env::var_os("SLUICE_PLUGINS_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => {
            let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .expect("the tmp dir is inside the target dir")
                .join("plugins");
            let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
                .args([
                    "build",
                    "--release",
                    "--locked",
                    "--target",
                    "wasm32-unknown-unknown",
                ])
                .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins"))
                .env("CARGO_TARGET_DIR", &target)
                .env_remove("RUSTFLAGS")
                .env_remove("CARGO_ENCODED_RUSTFLAGS")
                .output()
                .expect("run cargo to build the example plugins");
            assert!(
                out.status.success(),
                "building the example plugins failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            target.join("wasm32-unknown-unknown/release")
        }
    };
    dir.join("json_filter.wasm")
}

fn sluice(broker: &common::TestBroker, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .args(["--url", &broker.url("")])
        .env_remove("SLUICE_URL")
        .output()
        .expect("run sluice")
}

#[test]
fn a_filter_plugin_runs_in_consume_and_e2e_runs() {
    let broker = common::TestBroker::start(&[]);
    let wasm = json_filter_wasm();
    let up = sluice(
        &broker,
        &["plugin", "upload", "region", wasm.to_str().unwrap()],
    );
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    // Keep only region "eu": one record in four of --json-values.
    let filter = [
        "--json-values",
        "--filter",
        "region",
        "--filter-param",
        "field=region",
        "--filter-param",
        "op===",
        "--filter-param",
        "value=eu",
    ];
    let mut args = vec![
        "consume",
        "--count",
        "2000",
        "--record-bytes",
        "100",
        "--partitions",
        "2",
        "--consumers",
        "2",
    ];
    args.extend(filter);
    let r = bench(&broker, &args);
    assert_eq!(r["filter"], "region", "{r}");
    assert_eq!(r["produced"], 2000, "{r}");
    assert_eq!(r["scanned"], 2000, "{r}");
    assert_eq!(r["consumed"], 500, "{r}");
    assert_eq!(r["records"], 500, "{r}");
    assert_eq!(r["bytes"], 50_000, "{r}");
    positive(&r, "scanned_per_sec");
    positive(&r, "records_per_sec");

    let mut args = vec![
        "e2e",
        "--count",
        "2000",
        "--record-bytes",
        "100",
        "--keys",
        "10",
    ];
    args.extend(filter);
    let r = bench(&broker, &args);
    assert_eq!(
        (r["scanned"].as_u64(), r["consumed"].as_u64()),
        (Some(2000), Some(500)),
        "{r}"
    );
    assert_eq!(r["latency_ms"]["samples"], 500, "{r}");

    // Without a filter the same values all arrive, and the report has no filter fields.
    let r = bench(
        &broker,
        &["consume", "--count", "400", "--json-values", "--keys", "3"],
    );
    assert_eq!(r["consumed"], 400, "{r}");
    assert!(
        r.get("scanned").is_none() && r.get("filter").is_none(),
        "{r}"
    );

    // Misuse is refused with a message.
    for (args, what) in [
        (
            &["produce", "--count", "10", "--filter", "region"][..],
            "--filter applies to",
        ),
        (
            &["consume", "--count", "10", "--filter", "nope"][..],
            "unknown_plugin",
        ),
        (
            &["consume", "--count", "10", "--filter-param", "a=b"][..],
            "--filter",
        ),
        (
            &[
                "consume",
                "--count",
                "10",
                "--filter",
                "region",
                "--filter-param",
                "ab",
            ][..],
            "KEY=VALUE",
        ),
    ] {
        let mut all = vec!["bench"];
        all.extend(args);
        let out = sluice(&broker, &all);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(what), "{args:?}: {err}");
    }
}
