//! What replication needs of a log: appends that keep the leader's offsets and epochs,
//! truncation of a divergent tail, and the leader epoch cache that says where to truncate.

mod common;

use common::filler;
use sluice_storage::{Durability, Log, LogConfig, ReadBound, StorageError};

fn small() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        durability: Durability::Never,
        retention_ms: None,
        ..LogConfig::default()
    }
}

/// Everything in `log` from offset 0, as stored.
fn all_bytes(log: &Log) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = log.log_start_offset();
    while at < log.log_end_offset() {
        let (bytes, info) = log.read(at, 1 << 20, ReadBound::LogEnd).unwrap();
        out.extend_from_slice(&bytes);
        at = info.next_offset;
    }
    out
}

#[test]
fn a_follower_copy_is_byte_identical_and_knows_the_epochs() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = Log::open(d1.path(), small()).unwrap();
    for (i, epoch) in [0, 0, 3, 3, 3, 7].into_iter().enumerate() {
        leader
            .append(&mut filler(5, 100, 1000 + i as i64), epoch)
            .unwrap();
    }
    let follower = Log::open(d2.path(), small()).unwrap();
    // Fetch as a follower does: from its log end, up to the leader's log end, in pieces.
    while follower.log_end_offset() < leader.log_end_offset() {
        let (mut bytes, _) = leader
            .read(follower.log_end_offset(), 700, ReadBound::LogEnd)
            .unwrap();
        follower.append_replicated(&mut bytes).unwrap();
    }
    assert_eq!(all_bytes(&follower), all_bytes(&leader));
    assert_eq!(follower.epoch_entries(), vec![(0, 0), (3, 10), (7, 25)]);
    assert_eq!(leader.epoch_entries(), follower.epoch_entries());
    assert_eq!(leader.epoch_end_offset(3), Some((3, 25)));
    assert_eq!(leader.epoch_end_offset(5), Some((3, 25)));
    assert_eq!(leader.epoch_end_offset(7), Some((7, 30)));

    // Overlapping or stale batches are refused and change nothing.
    let (mut again, _) = leader.read(20, 1 << 20, ReadBound::LogEnd).unwrap();
    let e = follower.append_replicated(&mut again).unwrap_err();
    assert!(matches!(e, StorageError::IncompleteAppend { .. }), "{e}");
    assert_eq!(follower.log_end_offset(), 30);
}

#[test]
fn truncation_cuts_whole_batches_across_segments_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    for i in 0..40 {
        let epoch = if i < 20 { 1 } else { 2 };
        log.append(&mut filler(4, 60, i), epoch).unwrap();
    }
    assert!(log.segments().len() > 3, "{:?}", log.segments().len());
    log.set_high_watermark(160);
    let before = all_bytes(&log);
    // Offset 70 is inside the batch 68..71: it goes too.
    assert_eq!(log.truncate_to(70).unwrap(), 68);
    assert_eq!(log.log_end_offset(), 68);
    assert_eq!(log.high_watermark(), 68);
    assert_eq!(log.epoch_entries(), vec![(1, 0)]);
    let after = all_bytes(&log);
    assert_eq!(
        after[..],
        before[..after.len()],
        "the kept prefix is untouched"
    );
    // Appends carry on from the new end, with a new epoch.
    let info = log.append(&mut filler(2, 60, 99), 4).unwrap();
    assert_eq!(info.first_offset, 68);
    assert_eq!(log.epoch_entries(), vec![(1, 0), (4, 68)]);
    let end = log.log_end_offset();
    let kept = all_bytes(&log);
    drop(log);
    let log = Log::open(dir.path(), small()).unwrap();
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(all_bytes(&log), kept);
    assert_eq!(log.epoch_entries(), vec![(1, 0), (4, 68)]);
    // Truncating past the end does nothing; to 0 empties the log.
    assert_eq!(log.truncate_to(1_000).unwrap(), end);
    assert_eq!(log.truncate_to(0).unwrap(), 0);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert_eq!(log.segments().len(), 1);
    assert!(log.epoch_entries().is_empty());
}

#[test]
fn a_follower_behind_retention_restarts_at_the_leaders_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    log.append(&mut filler(3, 60, 1), 1).unwrap();
    log.restart_at(500).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 500));
    assert!(log.epoch_entries().is_empty());
    let info = log.append(&mut filler(2, 60, 2), 4).unwrap();
    assert_eq!(info.first_offset, 500);
    drop(log);
    let log = Log::open(dir.path(), small()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 502));
    assert_eq!(log.epoch_entries(), vec![(4, 500)]);
}
