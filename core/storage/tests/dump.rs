//! The `sluice-log-dump` inspector on a real log directory.

mod common;

use std::process::Command;

use common::{NewRec, batch};
use sluice_storage::{Log, LogConfig};

fn dump(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice-log-dump"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn dumps_segments_batches_records_and_reports_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(
        dir.path(),
        LogConfig {
            segment_bytes: 1024,
            index_interval_bytes: 100,
            ..LogConfig::default()
        },
    )
    .unwrap();
    for i in 0..20 {
        let mut b = batch(&[NewRec::kv(
            1000 + i,
            &format!("key-{i}"),
            &format!("value-{i}"),
        )]);
        log.append(&mut b, 4).unwrap();
    }
    let segments = log.segments();
    assert!(segments.len() > 1);
    log.close().unwrap();
    let path = dir.path().to_str().unwrap();

    let (code, out, _) = dump(&[path, "--records", "--indexes"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("segment ").count(), segments.len());
    assert!(out.contains("offsets=19..=19"), "{out}");
    assert!(out.contains("key=\"key-7\" value=\"value-7\""), "{out}");
    assert!(out.contains("leader_epoch=4"), "{out}");
    assert!(out.contains("index offset="), "{out}");

    let (code, out, _) = dump(&[path, "--json"]);
    assert_eq!(code, 0);
    for line in out.lines() {
        serde_json::from_str::<serde_json::Value>(line).expect("one JSON object per line");
    }

    // A flipped byte: reported with its file and position, exit status 1.
    let victim = &segments[0].path;
    let mut bytes = std::fs::read(victim).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 0xff;
    std::fs::write(victim, &bytes).unwrap();
    let (code, out, _) = dump(&[path]);
    assert_eq!(code, 1);
    assert!(out.contains("CORRUPT at position"), "{out}");

    let (code, _, err) = dump(&["/nonexistent-dir"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot list"), "{err}");
    let (code, _, err) = dump(&[]);
    assert_eq!(code, 2);
    assert!(err.contains("missing <DIR>"), "{err}");
}
