//! Behaviour of one log: appends, reads, rolls, indexes, retention, compaction, recovery.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{NewRec, batch, decode, filler, read_all};
use sluice_record::update_crc;
use sluice_storage::{CleanupPolicy, Durability, Log, LogConfig, ReadBound, StorageError};

fn small() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        durability: Durability::Never,
        retention_ms: None,
        ..LogConfig::default()
    }
}

fn append_all(log: &Log, n: usize, per_batch: usize, ts: i64) -> Vec<(u64, u64)> {
    (0..n)
        .map(|i| {
            let mut b = filler(per_batch, 50 + i % 7, ts + i as i64 * 10);
            let info = log.append(&mut b, 3).unwrap();
            log.set_high_watermark(info.log_end_offset);
            (info.first_offset, info.last_offset)
        })
        .collect()
}

#[test]
fn offsets_are_assigned_and_batches_come_back_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    let mut a = filler(3, 10, 1000);
    let mut b = filler(2, 10, 2000);
    let ia = log.append(&mut a, 7).unwrap();
    let ib = log.append(&mut b, 7).unwrap();
    assert_eq!(
        (ia.first_offset, ia.last_offset, ia.log_end_offset),
        (0, 2, 3)
    );
    assert_eq!(
        (ib.first_offset, ib.last_offset, ib.log_end_offset),
        (3, 4, 5)
    );
    // Nothing visible below the high watermark until the broker moves it.
    assert_eq!(log.high_watermark(), 0);
    let (bytes, info) = log.read(0, 1 << 20, ReadBound::HighWatermark).unwrap();
    assert!(bytes.is_empty());
    assert_eq!(info.next_offset, 0);
    log.set_high_watermark(5);
    let (bytes, info) = log.read(1, 1 << 20, ReadBound::HighWatermark).unwrap();
    assert_eq!(info.first_batch_offset, Some(0));
    assert_eq!(info.next_offset, 5);
    let mut both = a.clone();
    both.extend_from_slice(&b);
    assert_eq!(
        bytes, both,
        "stored exactly as appended, with offsets and epoch rewritten"
    );
    let recs = decode(&bytes);
    assert_eq!(
        recs.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    // kafka-protocol decodes what we stored, with our offsets and leader epoch.
    let mut buf = bytes::Bytes::from(bytes);
    let mut offsets = Vec::new();
    while !buf.is_empty() {
        let decoded = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).unwrap();
        assert!(
            decoded
                .records
                .iter()
                .all(|r| r.partition_leader_epoch == 7)
        );
        offsets.extend(decoded.records.iter().map(|r| r.offset));
    }
    assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
}

#[test]
fn reads_stop_at_max_bytes_on_batch_boundaries_but_return_at_least_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(
        dir.path(),
        LogConfig {
            durability: Durability::Never,
            ..LogConfig::default()
        },
    )
    .unwrap();
    let ranges = append_all(&log, 10, 4, 1000);
    let size_of = |offset: u64| {
        log.read(offset, 1, ReadBound::HighWatermark)
            .unwrap()
            .0
            .len()
    };
    let one = size_of(0);
    assert!(
        one > 100,
        "a budget of 1 byte still returns the first whole batch"
    );
    let three = one + size_of(ranges[1].0) + size_of(ranges[2].0);
    let (bytes, info) = log
        .read(
            0,
            three + size_of(ranges[3].0) - 1,
            ReadBound::HighWatermark,
        )
        .unwrap();
    assert_eq!(decode(&bytes).len(), 12, "three whole batches fit");
    assert_eq!(info.next_offset, ranges[3].0);
    let (_, info) = log
        .read(ranges[9].0 + 2, 1 << 20, ReadBound::LogEnd)
        .unwrap();
    assert_eq!(info.first_batch_offset, Some(ranges[9].0));
}

#[test]
fn reads_work_from_every_offset_across_many_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    let ranges = append_all(&log, 120, 3, 1000);
    assert!(
        log.segments().len() > 5,
        "small segments rolled: {}",
        log.segments().len()
    );
    assert!(log.segments().iter().any(|s| s.index_entries > 0));
    let leo = log.log_end_offset();
    for off in 0..leo {
        let (bytes, info) = log.read(off, 512, ReadBound::HighWatermark).unwrap();
        let recs = decode(&bytes);
        assert!(
            recs.iter().any(|r| r.offset == off),
            "offset {off} in its batch"
        );
        assert!(info.next_offset > off);
    }
    let all = read_all(&log, ReadBound::HighWatermark);
    assert_eq!(all.len() as u64, leo);
    assert!(all.windows(2).all(|w| w[0].offset + 1 == w[1].offset));
    assert_eq!(ranges.last().unwrap().1 + 1, leo);
    match log.read(leo + 1, 100, ReadBound::LogEnd) {
        Err(StorageError::OffsetOutOfRange {
            requested,
            log_start,
            log_end,
        }) => {
            assert_eq!((requested, log_start, log_end), (leo + 1, 0, leo));
        }
        other => panic!("expected out of range, got {other:?}"),
    }
    let (bytes, info) = log.read(leo, 100, ReadBound::LogEnd).unwrap();
    assert!(bytes.is_empty());
    assert_eq!(info.next_offset, leo);
}

#[test]
fn timestamp_lookup_finds_the_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    // Timestamps not in offset order, across segments.
    let ts = [100i64, 50, 300, 200, 400, 350, 500, 10, 600];
    for chunk in 0..40 {
        let recs: Vec<NewRec> = ts
            .iter()
            .map(|t| NewRec::kv(t + chunk * 1000, "k", "some value"))
            .collect();
        let mut b = batch(&recs);
        let info = log.append(&mut b, 0).unwrap();
        log.set_high_watermark(info.log_end_offset);
    }
    let all = read_all(&log, ReadBound::HighWatermark);
    for target in [
        0i64, 10, 51, 199, 200, 201, 5000, 12_345, 39_400, 39_601, 40_000,
    ] {
        let expected = all.iter().find(|r| r.timestamp >= target).map(|r| r.offset);
        assert_eq!(
            log.offset_for_timestamp(target, ReadBound::HighWatermark)
                .unwrap(),
            expected,
            "target {target}"
        );
    }
}

#[test]
fn invalid_appends_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    let good = filler(2, 10, 1);

    let mut bad_crc = good.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    assert!(matches!(
        log.append(&mut bad_crc, 0),
        Err(StorageError::InvalidBatch { .. })
    ));

    // A record count that lies, with a valid CRC: refused without allocating for it.
    let mut lying = good.clone();
    lying[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    update_crc(&mut lying);
    let err = log.append(&mut lying, 0).unwrap_err();
    assert!(matches!(err, StorageError::InvalidBatch { .. }), "{err}");

    let mut trailing = good.clone();
    trailing.extend_from_slice(&[1, 2, 3]);
    assert!(matches!(
        log.append(&mut trailing, 0),
        Err(StorageError::IncompleteAppend { .. })
    ));
    assert!(matches!(
        log.append(&mut [], 0),
        Err(StorageError::IncompleteAppend { .. })
    ));

    let mut big = filler(1, 5000, 1);
    let tight = LogConfig {
        max_append_bytes: 4096,
        ..small()
    };
    log.set_config(tight).unwrap();
    assert!(matches!(
        log.append(&mut big, 0),
        Err(StorageError::AppendTooLarge { .. })
    ));

    // Second batch bad: the first is not written either.
    let mut pair = good.clone();
    pair.extend_from_slice(&bad_crc);
    assert!(log.append(&mut pair, 0).is_err());

    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
    let mut ok = good.clone();
    assert_eq!(log.append(&mut ok, 0).unwrap().first_offset, 0);
}

#[test]
fn a_compacted_log_refuses_keyless_records() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(
        dir.path(),
        LogConfig {
            cleanup_policy: CleanupPolicy::COMPACT,
            ..small()
        },
    )
    .unwrap();
    let mut b = batch(&[NewRec {
        timestamp: 1,
        key: None,
        value: Some(b"v".to_vec()),
        headers: vec![],
    }]);
    assert!(matches!(
        log.append(&mut b, 0),
        Err(StorageError::KeyRequired { .. })
    ));
}

#[test]
fn retention_deletes_old_and_excess_segments_but_never_the_active_one() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    let now = 10_000_000i64;
    // Old records, then new ones.
    append_all(&log, 40, 3, now - 100_000);
    log.roll().unwrap();
    let old_segments = log.segments().len() - 1;
    append_all(&log, 40, 3, now - 10);
    let cfg = LogConfig {
        retention_ms: Some(50_000),
        ..small()
    };
    log.set_config(cfg).unwrap();
    let report = log.apply_retention(now as u64).unwrap();
    assert_eq!(report.segments_deleted, old_segments);
    assert_eq!(log.log_start_offset(), 120);
    assert_eq!(report.log_start_offset, 120);
    assert!(matches!(
        log.read(0, 100, ReadBound::LogEnd),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        read_all(&log, ReadBound::HighWatermark)
            .first()
            .unwrap()
            .offset,
        120
    );

    // By size: keep at most ~3 segments' worth.
    let cfg = LogConfig {
        retention_bytes: Some(3 * 4096),
        ..small()
    };
    log.set_config(cfg).unwrap();
    log.apply_retention(now as u64).unwrap();
    assert!(
        log.size_bytes() <= 3 * 4096 + 4096,
        "size {}",
        log.size_bytes()
    );
    let segs = log.segments();
    assert!(segs.last().unwrap().active);

    // Everything old by time, but the active segment stays.
    let cfg = LogConfig {
        retention_ms: Some(1),
        ..small()
    };
    log.set_config(cfg).unwrap();
    log.apply_retention(now as u64 + 1_000_000).unwrap();
    assert_eq!(log.segments().len(), 1);
    assert!(!log.segments()[0].size_bytes == 0 || log.log_start_offset() <= log.log_end_offset());
    // Files are gone from disk.
    let logs = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count();
    assert_eq!(logs, 1);
}

#[test]
fn retention_keeps_segments_above_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(
        dir.path(),
        LogConfig {
            retention_ms: Some(1),
            ..small()
        },
    )
    .unwrap();
    for i in 0..30 {
        let mut b = filler(3, 60, i);
        log.append(&mut b, 0).unwrap();
    }
    log.set_high_watermark(0);
    assert_eq!(log.apply_retention(1 << 50).unwrap().segments_deleted, 0);
}

#[test]
fn compaction_keeps_the_latest_record_per_key_and_expires_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        cleanup_policy: CleanupPolicy::COMPACT,
        delete_retention_ms: 1000,
        ..small()
    };
    let log = Log::open(dir.path(), cfg).unwrap();
    let mut expected = std::collections::BTreeMap::new();
    for round in 0..30i64 {
        let recs: Vec<NewRec> = (0..5)
            .map(|k| {
                let key = format!("key-{}", (round * 5 + k) % 7);
                let value = format!("value-{round}-{k}");
                NewRec::kv(round * 100 + k, &key, &value)
            })
            .collect();
        for r in &recs {
            expected.insert(r.key.clone(), r.value.clone());
        }
        let mut b = batch(&recs);
        let info = log.append(&mut b, 0).unwrap();
        log.set_high_watermark(info.log_end_offset);
    }
    // A tombstone for key-0 (old timestamp, so it expires) and one for key-1 (fresh).
    let mut t = batch(&[
        NewRec {
            timestamp: 10,
            key: Some(b"key-0".to_vec()),
            value: None,
            headers: vec![],
        },
        NewRec {
            timestamp: 1_000_000,
            key: Some(b"key-1".to_vec()),
            value: None,
            headers: vec![],
        },
    ]);
    let info = log.append(&mut t, 0).unwrap();
    log.set_high_watermark(info.log_end_offset);
    log.roll().unwrap();
    let before = read_all(&log, ReadBound::HighWatermark);
    let report = log.compact(1_000_500).unwrap();
    assert!(
        report.segments_rewritten > 0 && report.records_removed > 0,
        "{report:?}"
    );
    let after = read_all(&log, ReadBound::HighWatermark);
    // One record per key; key-0's tombstone expired, key-1's tombstone kept.
    let mut keys: Vec<_> = after.iter().map(|r| r.key.clone().unwrap()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), after.len(), "one record per key");
    assert!(!keys.contains(&b"key-0".to_vec()));
    let k1 = after
        .iter()
        .find(|r| r.key.as_deref() == Some(b"key-1"))
        .unwrap();
    assert_eq!(k1.value, None);
    for r in &after {
        if r.key.as_deref() != Some(b"key-1") {
            assert_eq!(
                Some(&r.value),
                expected.get(&r.key),
                "latest value of {:?}",
                r.key
            );
        }
        // Offsets and timestamps survive compaction.
        assert!(before.contains(r));
    }
    assert!(after.windows(2).all(|w| w[0].offset < w[1].offset));
    // Reads from a removed offset land on the next surviving record.
    let (bytes, _) = log.read(0, 1 << 20, ReadBound::HighWatermark).unwrap();
    assert!(!decode(&bytes).is_empty());
    // The compacted log reopens identically.
    drop(log);
    let log = Log::open(
        dir.path(),
        LogConfig {
            cleanup_policy: CleanupPolicy::COMPACT,
            ..small()
        },
    )
    .unwrap();
    assert_eq!(read_all(&log, ReadBound::HighWatermark), after);
    // A second pass finds nothing more to remove.
    assert_eq!(log.compact(1_000_500).unwrap().records_removed, 0);
}

#[test]
fn interrupted_compaction_swaps_are_finished_or_undone_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    append_all(&log, 30, 3, 1000);
    let segs = log.segments();
    let all = read_all(&log, ReadBound::HighWatermark);
    log.close().unwrap();
    // A `.cleaned` file is an unfinished rewrite: it is removed.
    let base = segs[0].base_offset;
    std::fs::write(
        dir.path().join(format!("{base:020}.log.cleaned")),
        b"partial",
    )
    .unwrap();
    // A `.swap` file is a decided one: it replaces the segment (here, with identical content).
    let second = &segs[1];
    std::fs::copy(
        &second.path,
        dir.path()
            .join(format!("{:020}.log.swap", second.base_offset)),
    )
    .unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    assert_eq!(read_all(&log, ReadBound::LogEnd), all);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn active_log_path(log: &Log) -> std::path::PathBuf {
    log.segments().last().unwrap().path.clone()
}

#[test]
fn a_torn_tail_is_cut_at_every_byte_boundary_of_the_last_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    append_all(&log, 5, 3, 1000);
    let before = read_all(&log, ReadBound::LogEnd);
    let leo_before_last = log.log_end_offset();
    let mut last = filler(4, 40, 9999);
    log.append(&mut last, 0).unwrap();
    let path = active_log_path(&log);
    let full_len = std::fs::metadata(&path).unwrap().len();
    drop(log); // no clean shutdown
    let pristine = std::fs::read(&path).unwrap();
    let last_start = full_len - last.len() as u64;
    for cut in last_start..full_len {
        std::fs::write(&path, &pristine[..cut as usize]).unwrap();
        let log = Log::open(dir.path(), small()).unwrap();
        let report = log.recovery_report();
        assert_eq!(log.log_end_offset(), leo_before_last, "cut at {cut}");
        assert_eq!(report.bytes_truncated, cut - last_start, "cut at {cut}");
        assert_eq!(read_all(&log, ReadBound::LogEnd), before, "cut at {cut}");
        // The log keeps working after recovery.
        let mut again = filler(1, 5, 1);
        assert_eq!(
            log.append(&mut again, 0).unwrap().first_offset,
            leo_before_last
        );
        drop(log);
        std::fs::write(&path, &pristine).unwrap();
        let _ = std::fs::remove_file(dir.path().join("recovery-checkpoint"));
    }
}

#[test]
fn a_flipped_byte_in_the_tail_batch_is_detected_and_cut() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(
        dir.path(),
        LogConfig {
            durability: Durability::Never,
            ..LogConfig::default()
        },
    )
    .unwrap();
    append_all(&log, 3, 3, 1000);
    let before = read_all(&log, ReadBound::LogEnd);
    let mut last = filler(3, 30, 5000);
    log.append(&mut last, 0).unwrap();
    let path = active_log_path(&log);
    drop(log);
    let pristine = std::fs::read(&path).unwrap();
    let start = pristine.len() - last.len();
    // Every byte of the last batch but the base offset and epoch (not covered by the CRC;
    // a wrong base offset is caught by the offset order check unless it is still plausible).
    for i in (start + 8..pristine.len()).filter(|i| !(start + 12..start + 16).contains(i)) {
        let mut bad = pristine.clone();
        bad[i] ^= 0x5a;
        std::fs::write(&path, &bad).unwrap();
        let _ = std::fs::remove_file(dir.path().join("recovery-checkpoint"));
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        assert_eq!(
            read_all(&log, ReadBound::LogEnd),
            before,
            "flip at {}",
            i - start
        );
        drop(log);
    }
}

#[test]
fn missing_or_corrupt_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    append_all(&log, 60, 3, 1000);
    let all = read_all(&log, ReadBound::LogEnd);
    let segs = log.segments();
    let entries: Vec<usize> = segs.iter().map(|s| s.index_entries).collect();
    log.close().unwrap();
    for s in &segs {
        let idx = s.path.with_extension("index");
        if s.base_offset % 2 == 0 {
            std::fs::remove_file(&idx).unwrap();
            let _ = std::fs::remove_file(s.path.with_extension("timeindex"));
        } else if std::fs::metadata(&idx).unwrap().len() >= 8 {
            // Garbage in the last entry: position beyond the log.
            let f = OpenOptions::new().write(true).open(&idx).unwrap();
            let len = f.metadata().unwrap().len();
            f.write_all_at(&[0xff; 8], len - 8).unwrap();
        }
    }
    let log = Log::open(dir.path(), small()).unwrap();
    assert_eq!(read_all(&log, ReadBound::LogEnd), all);
    let rebuilt: Vec<usize> = log.segments().iter().map(|s| s.index_entries).collect();
    assert_eq!(rebuilt, entries, "rebuilt indexes have the same entries");
    for off in (0..log.log_end_offset()).step_by(7) {
        let (bytes, _) = log.read(off, 100, ReadBound::LogEnd).unwrap();
        assert!(decode(&bytes).iter().any(|r| r.offset == off));
    }
}

#[test]
fn a_corrupt_batch_in_a_closed_segment_is_reported_and_what_precedes_it_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    let ranges = append_all(&log, 40, 3, 1000);
    let segs = log.segments();
    let victim = &segs[1];
    log.close().unwrap();
    // Flip a byte in the value of the third batch of the second segment.
    let data = std::fs::read(&victim.path).unwrap();
    let mut pos = 0usize;
    for _ in 0..2 {
        pos += 12 + i32::from_be_bytes(data[pos + 8..pos + 12].try_into().unwrap()) as usize;
    }
    let f = OpenOptions::new().write(true).open(&victim.path).unwrap();
    f.write_all_at(&[data[pos + 70] ^ 0xff], (pos + 70) as u64)
        .unwrap();
    drop(f);
    let log = Log::open(dir.path(), small()).unwrap();
    let bad_batch = ranges
        .iter()
        .find(|r| r.0 >= victim.base_offset)
        .map(|r| r.0)
        .unwrap()
        + 6;
    // Everything before it is still served.
    let (bytes, info) = log.read(0, 1 << 20, ReadBound::LogEnd).unwrap();
    assert!(!bytes.is_empty());
    let (bytes, _) = log
        .read(victim.base_offset, 1 << 20, ReadBound::LogEnd)
        .unwrap();
    assert_eq!(
        decode(&bytes).last().unwrap().offset,
        bad_batch - 1,
        "served up to the bad batch"
    );
    match log.read(bad_batch, 1 << 20, ReadBound::LogEnd) {
        Err(StorageError::Corrupt { path, position, .. }) => {
            assert_eq!(path, victim.path);
            assert_eq!(position, pos as u64);
        }
        other => panic!("expected a corruption report, got {other:?}"),
    }
    let _ = info;
    // After the segment, reads go on.
    let after = segs[2].base_offset;
    assert!(log.read(after, 100, ReadBound::LogEnd).is_ok());
}

#[test]
fn a_clean_shutdown_makes_the_next_open_scan_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    append_all(&log, 50, 3, 1000);
    let all = read_all(&log, ReadBound::LogEnd);
    log.close().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    assert_eq!(log.recovery_report().bytes_scanned, 0);
    assert_eq!(log.recovery_report().bytes_truncated, 0);
    assert_eq!(read_all(&log, ReadBound::LogEnd), all);
    // Unclean: only the tail since the last sync is scanned.
    append_all(&log, 2, 3, 1000);
    drop(log);
    let log = Log::open(dir.path(), small()).unwrap();
    let scanned = log.recovery_report().bytes_scanned;
    assert!(scanned > 0 && scanned < 2048, "scanned {scanned}");
}

#[test]
fn a_log_directory_is_opened_by_one_log_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let _log = Log::open(dir.path(), small()).unwrap();
    assert!(matches!(
        Log::open(dir.path(), small()),
        Err(StorageError::Locked { .. })
    ));
}

#[test]
fn segments_roll_when_their_first_append_is_older_than_segment_ms() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(
        dir.path(),
        LogConfig {
            segment_ms: 200,
            ..LogConfig::default()
        },
    )
    .unwrap();
    // Record timestamps do not matter (producers' clocks are not trusted for rolling).
    let mut old = filler(2, 10, 1);
    log.append(&mut old, 0).unwrap();
    let mut fresh = filler(2, 10, 1);
    log.append(&mut fresh, 0).unwrap();
    assert_eq!(log.segments().len(), 1);
    // Let the segment age past segment.ms (the behaviour under test is about wall-clock time).
    std::thread::sleep(std::time::Duration::from_millis(250));
    let mut more = filler(2, 10, 1);
    log.append(&mut more, 0).unwrap();
    let bases: Vec<u64> = log.segments().iter().map(|s| s.base_offset).collect();
    assert_eq!(bases, vec![0, 4]);
}

#[test]
fn readers_run_concurrently_with_the_writer_and_see_only_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path(), small()).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let log = log.clone();
            let done = done.clone();
            std::thread::spawn(move || {
                let mut seen = 0u64;
                let mut buf = Vec::new();
                while !done.load(Ordering::Acquire) || seen < log.log_end_offset() {
                    let info = log
                        .read_into(seen, 4096, ReadBound::LogEnd, &mut buf)
                        .unwrap();
                    for r in decode(&buf) {
                        if r.offset >= seen {
                            assert_eq!(r.offset, seen, "no gaps, no repeats");
                            seen += 1;
                        }
                    }
                    assert_eq!(info.next_offset.max(seen), seen);
                }
                seen
            })
        })
        .collect();
    for i in 0..400 {
        let mut b = filler(1 + i % 4, 30, i as i64);
        log.append(&mut b, 0).unwrap();
    }
    done.store(true, Ordering::Release);
    for r in readers {
        assert_eq!(r.join().unwrap(), log.log_end_offset());
    }
}

#[test]
fn durability_always_shares_fsyncs_between_concurrent_appenders() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(
        Log::open(
            dir.path(),
            LogConfig {
                durability: Durability::Always,
                ..small()
            },
        )
        .unwrap(),
    );
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let mut b = filler(2, 20, t * 1000 + i);
                    let info = log.append(&mut b, 0).unwrap();
                    assert!(
                        log.durable_offset() >= info.log_end_offset,
                        "acknowledged means fsynced"
                    );
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(log.log_end_offset(), 400);
    assert_eq!(log.durable_offset(), 400);
}

#[test]
fn settings_changes_apply_to_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(
        dir.path(),
        LogConfig {
            durability: Durability::Never,
            ..LogConfig::default()
        },
    )
    .unwrap();
    append_all(&log, 5, 2, 1);
    assert_eq!(log.segments().len(), 1);
    let mut c = log.config();
    c.set("segment.bytes", "1024").unwrap();
    log.set_config(c).unwrap();
    append_all(&log, 5, 20, 1);
    assert!(log.segments().len() > 1);
}

#[test]
fn a_retired_log_refuses_appends_and_writes_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    append_all(&log, 3, 2, 1);
    log.retire();
    let mut b = filler(1, 1, 1);
    assert!(matches!(
        log.append(&mut b, 0),
        Err(StorageError::Failed { .. })
    ));
    // Its directory is taken over; flushing and closing the old log must not touch it.
    std::fs::remove_file(dir.path().join("recovery-checkpoint")).unwrap();
    log.flush().unwrap();
    log.maintain(u64::MAX / 2).unwrap();
    log.close().unwrap();
    assert!(!dir.path().join("recovery-checkpoint").exists());
}

#[test]
fn an_appended_batch_cannot_claim_more_offsets_than_records() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small()).unwrap();
    let mut b = filler(2, 10, 1);
    b[23..27].copy_from_slice(&1_000_000i32.to_be_bytes());
    update_crc(&mut b);
    assert!(matches!(
        log.append(&mut b, 0),
        Err(StorageError::InvalidBatch { .. })
    ));
    assert_eq!(log.log_end_offset(), 0);
}
