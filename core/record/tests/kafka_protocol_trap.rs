//! The known trap in kafka-protocol 0.18 (see "Untrusted bytes" in ARCHITECTURE.md): its
//! `RecordBatchDecoder` reserves room for the batch's own `record_count` before reading any
//! record. This test shows our validator rejects such a batch, and, in a child process so that
//! an abort cannot take the test suite down, what kafka-protocol does with it.

mod common;

use std::process::Command;

use bytes::Bytes;
use common::{RawRecord, raw_batch, raw_record};
use kafka_protocol::records::RecordBatchDecoder;
use sluice_record::{Batch, RecordError};

const CHILD_ENV: &str = "SLUICE_RECORD_KAFKA_TRAP_CHILD";

fn lying_batch() -> Vec<u8> {
    raw_batch(&raw_record(RawRecord::default()), i32::MAX, i32::MAX - 1)
}

/// Run only as a child of the test below.
#[test]
#[ignore = "run as a child process by kafka_protocol_decoder_vs_lying_count"]
fn child_decode_lying_batch() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let mut buf = Bytes::from(lying_batch());
    match RecordBatchDecoder::decode(&mut buf) {
        Ok(set) => println!("CHILD: decoded {} records", set.records.len()),
        Err(e) => println!("CHILD: error: {e}"),
    }
}

#[test]
fn kafka_protocol_decoder_vs_lying_count() {
    let bytes = lying_batch();
    assert!(bytes.len() < 80);
    assert_eq!(
        Batch::new(&bytes).expect("batch").validate(),
        Err(RecordError::CountMismatch {
            declared: i32::MAX,
            found: 1
        })
    );

    let exe = std::env::current_exe().expect("test binary path");
    let output = Command::new(exe)
        .args([
            "--exact",
            "child_decode_lying_batch",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .expect("spawn child test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    #[cfg(unix)]
    let signal = std::os::unix::process::ExitStatusExt::signal(&output.status);
    #[cfg(not(unix))]
    let signal: Option<i32> = None;
    eprintln!(
        "kafka-protocol 0.18 on a {}-byte batch claiming i32::MAX records: status {:?}, signal {:?}\n{}{}",
        bytes.len(),
        output.status.code(),
        signal,
        stdout
            .lines()
            .filter(|l| l.starts_with("CHILD"))
            .collect::<Vec<_>>()
            .join("\n"),
        stderr
            .lines()
            .filter(|l| l.contains("alloc"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    // Whatever it does (abort on allocation failure, or an error where memory overcommit lets
    // the reservation through), it must never accept the batch.
    assert!(!stdout.contains("CHILD: decoded"), "{stdout}");
}
