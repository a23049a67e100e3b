//! A failed write (here: the file size limit, as a full disk would) returns an error, leaves
//! the log serving what it had, and leaves no partial batch behind after a restart.
//!
//! The limit (`RLIMIT_FSIZE`) applies to a whole process, so the writing happens in a child
//! process: this test binary re-executed with `SLUICE_DISK_FULL_CHILD` set.

mod common;

use std::process::Command;

use common::{filler, read_all};
use sluice_storage::{Durability, Log, LogConfig, ReadBound, StorageError};

const LIMIT: u64 = 64 * 1024;
const CHILD_ENV: &str = "SLUICE_DISK_FULL_CHILD";

fn config() -> LogConfig {
    LogConfig {
        durability: Durability::Always,
        // Preallocated index files must fit under the limit too.
        segment_index_bytes: 4096,
        ..LogConfig::default()
    }
}

/// In the child: fill the log up to the limit and check the failed append. Prints the number of
/// records acknowledged.
fn child(dir: &str) {
    // SAFETY: plain libc calls on this process's own limits and signal disposition.
    unsafe {
        // Writing past the limit raises SIGXFSZ, which would kill us; we want the EFBIG error.
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let lim = libc::rlimit {
            rlim_cur: LIMIT,
            rlim_max: LIMIT,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
    }
    let log = Log::open(dir, config()).unwrap();
    let mut acked = 0u64;
    let err = loop {
        let mut b = filler(10, 500, 1);
        match log.append(&mut b, 0) {
            Ok(info) => acked = info.log_end_offset,
            Err(e) => break e,
        }
        assert!(acked < 10_000, "the size limit never hit");
    };
    assert!(
        matches!(err, StorageError::Io { .. }),
        "a write error, not {err:?}"
    );
    assert!(err.to_string().contains("append to segment"), "{err}");
    // Nothing of the failed append is visible; what was acknowledged is.
    assert_eq!(log.log_end_offset(), acked);
    log.set_high_watermark(acked);
    assert_eq!(read_all(&log, ReadBound::HighWatermark).len() as u64, acked);
    // A smaller append still fits below the limit, or fails cleanly too.
    let mut small = filler(1, 1, 1);
    match log.append(&mut small, 0) {
        Ok(info) => acked = info.log_end_offset,
        Err(e) => assert!(matches!(e, StorageError::Io { .. })),
    }
    println!("\nACKED {acked}");
}

#[test]
fn a_failed_write_leaves_no_partial_batch() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_failed_write_leaves_no_partial_batch",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let acked: u64 = stdout
        .lines()
        .find_map(|l| l.split("ACKED ").nth(1))
        .expect("child reports what it acknowledged")
        .trim()
        .parse()
        .unwrap();
    assert!(acked > 0);
    // After a restart: exactly the acknowledged records, every batch whole, and room again.
    let log = Log::open(dir.path(), config()).unwrap();
    assert_eq!(
        log.recovery_report().bytes_truncated,
        0,
        "the partial write was already undone"
    );
    assert_eq!(log.log_end_offset(), acked);
    let recs = read_all(&log, ReadBound::LogEnd);
    assert_eq!(recs.len() as u64, acked);
    let mut more = filler(10, 500, 1);
    assert_eq!(log.append(&mut more, 0).unwrap().first_offset, acked);
}
