//! Benchmarks of one partition's log: append, sequential read, timestamp lookup and open
//! (clean and after a crash), plus baselines (memcpy, CRC-32C, batch validation, raw `pwrite`)
//! that say how far each figure is from what the machine allows.
//!
//! `cargo bench -p sluice-storage`; the figures, targets and how each benchmark is built are in
//! docs/PERFORMANCE.md. Logs live under `CARGO_TARGET_TMPDIR` (the real disk, not a tmpfs) and
//! each benchmark deletes its log when done; no benchmark keeps more than about 1.1 GiB on disk.

use std::fs::{self, File};
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use sluice_record::{Batch, BatchBuilder};
use sluice_storage::{Durability, Log, LogConfig, ReadBound};
use tempfile::TempDir;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const RECORDS_PER_BATCH: u64 = 100;
const VALUE_BYTES: usize = 1024;
/// Timestamp of record 0; record `n` is stamped `BASE_TS_MS + n` (one record per millisecond).
const BASE_TS_MS: i64 = 1_700_000_000_000;
/// Distinct pre-built batches the append benchmark cycles through (about 1.6 MiB, more than
/// one core's L2), so the source of each copy is not always the hottest cache line.
const PRISTINE_BATCHES: usize = 16;
/// A log that is appended to is replaced before it reaches this size: it stays inside one
/// 1 GiB segment (a roll fsyncs the old segment even with `durability=never`, which would
/// measure the disk) and disk use stays bounded.
const APPEND_LOG_BUDGET_BYTES: u64 = GIB - 24 * MIB;
/// Size of the log read from and reopened: just under one 1 GiB segment.
const BIG_LOG_BYTES: u64 = GIB - 2 * MIB;
/// Tail written after the last fsync in the `durability=interval` crash case: the default
/// `interval_bytes`, i.e. the most an interval policy leaves unsynced.
const INTERVAL_TAIL_BYTES: u64 = 64 * MIB;

fn bench_dir(name: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(name)
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("create a benchmark directory under CARGO_TARGET_TMPDIR")
}

fn config(durability: Durability) -> LogConfig {
    LogConfig {
        durability,
        ..LogConfig::default()
    }
}

/// A fixed pseudo-random value, so record bytes look like payload rather than zeros.
fn value_bytes() -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    (0..VALUE_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Encodes batch number `n` at the end of `out`: 100 records with a 12-byte key, a 1 KiB value
/// and timestamps `BASE_TS_MS + record number`.
fn encode_batch(out: &mut Vec<u8>, n: u64, value: &[u8]) {
    let first = n * RECORDS_PER_BATCH;
    let mut b = BatchBuilder::new(out, 0, BASE_TS_MS + first as i64);
    let mut key = *b"key-00000000";
    for r in first..first + RECORDS_PER_BATCH {
        let mut k = r;
        for digit in key[4..].iter_mut().rev() {
            *digit = b'0' + (k % 10) as u8;
            k /= 10;
        }
        b.push(BASE_TS_MS + r as i64, Some(&key), Some(value), &[]);
    }
    b.finish().expect("a batch of 100 records");
}

fn encoded_batch(n: u64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_batch(&mut out, n, value);
    out
}

/// Appends batches numbered from `next` until the log holds `target_bytes`; returns the next
/// batch number.
fn fill(log: &Log, mut next: u64, target_bytes: u64, value: &[u8]) -> u64 {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        encode_batch(&mut buf, next, value);
        if log.size_bytes() + buf.len() as u64 > target_bytes {
            return next;
        }
        log.append(&mut buf, 0).expect("fill append");
        next += 1;
    }
}

/// Append of 100 x 1 KiB batches with `durability=never`: what a producer's bytes cost to
/// validate, number and write into the page cache.
fn append(c: &mut Criterion) {
    let value = value_bytes();
    let pristine: Vec<Vec<u8>> = (0..PRISTINE_BATCHES as u64)
        .map(|n| encoded_batch(n, &value))
        .collect();
    let batch_len = pristine[0].len();
    assert!(pristine.iter().all(|b| b.len() == batch_len));
    eprintln!("append: batches of {batch_len} bytes");

    let mut group = c.benchmark_group("append");
    group
        .throughput(Throughput::Bytes(batch_len as u64))
        .sample_size(30)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(12));

    // The copy from a pristine batch is timed with the append: `append` rewrites the header in
    // place. Its cost alone is `baseline/memcpy_batch`.
    let mut current: Option<(Log, TempDir)> = None;
    let mut written = 0u64;
    let mut buf = Vec::with_capacity(batch_len);
    group.bench_function("batch100x1KiB_never", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut i = 0u64;
            while i < iters {
                if current.is_none() || written + batch_len as u64 > APPEND_LOG_BUDGET_BYTES {
                    // Replace the log, untimed: drop it first, then its directory.
                    current = None;
                    let dir = bench_dir("append-");
                    let log = Log::open(dir.path(), config(Durability::Never)).expect("open");
                    current = Some((log, dir));
                    written = 0;
                }
                let (log, _) = current.as_ref().expect("set above");
                let room = (APPEND_LOG_BUDGET_BYTES - written) / batch_len as u64;
                let run = room.min(iters - i);
                let start = Instant::now();
                for k in 0..run {
                    buf.clear();
                    buf.extend_from_slice(&pristine[((i + k) as usize) % PRISTINE_BATCHES]);
                    black_box(log.append(&mut buf, 0).expect("append"));
                }
                timed += start.elapsed();
                written += run * batch_len as u64;
                i += run;
            }
            timed
        })
    });
    group.finish();
    drop(current);
}

/// Reads a ~1 GiB log start to end, 1 MiB per `read_into`, with and without CRC checks.
fn sequential_read(c: &mut Criterion) {
    let value = value_bytes();
    let dir = bench_dir("read-");
    let log = Log::open(dir.path(), config(Durability::Never)).expect("open");
    fill(&log, 0, BIG_LOG_BYTES, &value);
    let end = log.log_end_offset();
    log.set_high_watermark(end);
    let total = log.size_bytes();
    eprintln!("read fixture: {total} bytes, {end} records");

    let mut group = c.benchmark_group("read");
    group
        .throughput(Throughput::Bytes(total))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));

    let mut buf = Vec::with_capacity(2 * MIB as usize);
    for verify in [true, false] {
        log.set_config(LogConfig {
            verify_crc_on_read: verify,
            ..log.config()
        })
        .expect("config");
        let name = if verify {
            "1GiB_by_1MiB_crc"
        } else {
            "1GiB_by_1MiB_no_crc"
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut from = 0;
                let mut bytes = 0u64;
                while from < end {
                    let info = log
                        .read_into(from, MIB as usize, ReadBound::HighWatermark, &mut buf)
                        .expect("read");
                    black_box(&buf);
                    from = info.next_offset;
                    bytes += info.bytes as u64;
                }
                assert_eq!(bytes, total);
            })
        });
    }
    group.finish();
    drop(log);
}

/// `offset_for_timestamp` with random targets over ~256 MiB in 4 MiB segments (65 segments,
/// ~256,000 records), then a clean open of that many-segment log.
fn timestamp_lookup(c: &mut Criterion) {
    let value = value_bytes();
    let dir = bench_dir("timestamp-");
    let cfg = LogConfig {
        segment_bytes: 4 * MIB,
        ..config(Durability::Never)
    };
    let log = Log::open(dir.path(), cfg.clone()).expect("open");
    fill(&log, 0, 256 * MIB, &value);
    let records = log.log_end_offset();
    log.set_high_watermark(records);
    let segments = log.segments().len();
    assert!(segments >= 60, "{segments} segments");
    eprintln!(
        "timestamp fixture: {} bytes, {records} records, {segments} segments",
        log.size_bytes()
    );

    // Record n has timestamp BASE_TS_MS + n, so the answer to target t is t - BASE_TS_MS.
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let targets: Vec<i64> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            BASE_TS_MS + (x % records) as i64
        })
        .collect();
    for &t in targets.iter().take(64) {
        let found = log.offset_for_timestamp(t, ReadBound::HighWatermark);
        assert_eq!(found.expect("lookup"), Some((t - BASE_TS_MS) as u64));
    }

    let mut group = c.benchmark_group("timestamp");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    let mut i = 0usize;
    group.bench_function("random_256MiB_4MiB_segments", |b| {
        b.iter(|| {
            let t = targets[i % targets.len()];
            i += 1;
            log.offset_for_timestamp(t, ReadBound::HighWatermark)
                .expect("lookup")
        })
    });
    group.finish();

    log.close().expect("close");
    let mut group = c.benchmark_group("open");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("clean_256MiB_4MiB_segments", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let log = Log::open(dir.path(), cfg.clone()).expect("open");
                timed += start.elapsed();
                assert_eq!(log.recovery_report().bytes_scanned, 0);
                drop(log);
            }
            timed
        })
    });
    group.finish();
}

/// Copies a saved recovery checkpoint into the log directory.
fn restore_checkpoint(dir: &Path, saved: &Path) {
    fs::copy(saved, dir.join("recovery-checkpoint")).expect("restore checkpoint");
}

fn save_checkpoint(dir: &Path, keep: &Path, name: &str) -> PathBuf {
    let to = keep.join(name);
    fs::copy(dir.join("recovery-checkpoint"), &to).expect("save checkpoint");
    to
}

/// Opens a ~1 GiB single-segment log: after a clean close, after a crash with nothing synced
/// (`never`: the whole segment is scanned) and after a crash 64 MiB past the last fsync
/// (`interval`). The data files are shared; before each open the recovery checkpoint of the
/// state wanted is restored (an open that recovers rewrites it).
fn open(c: &mut Criterion) {
    let value = value_bytes();
    let dir = bench_dir("open-");
    let keep = bench_dir("open-checkpoints-");
    let path = dir.path();

    let log = Log::open(path, config(Durability::Never)).expect("open");
    // The first open vouches for an empty segment: a crash now scans everything.
    let nothing_synced = save_checkpoint(path, keep.path(), "never");
    let next = fill(&log, 0, BIG_LOG_BYTES - INTERVAL_TAIL_BYTES, &value);
    log.flush().expect("flush");
    let interval = save_checkpoint(path, keep.path(), "interval");
    fill(&log, next, BIG_LOG_BYTES, &value);
    let total = log.size_bytes();
    drop(log); // crash: no close
    let log = Log::open(path, LogConfig::default()).expect("recovering open");
    let tail = log.recovery_report().bytes_scanned;
    assert!(tail > 0 && tail <= INTERVAL_TAIL_BYTES, "scanned {tail}");
    log.close().expect("close");
    let clean = save_checkpoint(path, keep.path(), "clean");
    eprintln!("open fixture: {total} bytes in one segment, {tail} bytes after the last fsync");

    let mut group = c.benchmark_group("open");
    let cases = [
        ("clean_1GiB", &clean, Durability::Never, 0),
        (
            "crash_1GiB_interval_64MiB_tail",
            &interval,
            Durability::DEFAULT_INTERVAL,
            tail,
        ),
        (
            "crash_1GiB_never",
            &nothing_synced,
            Durability::Never,
            total,
        ),
    ];
    for (name, checkpoint, durability, scanned) in cases {
        let scanning = scanned > 0;
        group
            .sampling_mode(if scanned > 256 * MIB {
                SamplingMode::Flat
            } else {
                SamplingMode::Auto
            })
            .sample_size(if scanned > 256 * MIB { 10 } else { 30 })
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(if scanning { 6 } else { 3 }));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    restore_checkpoint(path, checkpoint);
                    let start = Instant::now();
                    let log = Log::open(path, config(durability)).expect("open");
                    timed += start.elapsed();
                    let report = log.recovery_report();
                    assert_eq!(report.bytes_scanned, scanned, "{name}");
                    assert_eq!(report.bytes_truncated, 0, "{name}");
                    drop(log);
                }
                timed
            })
        });
    }
    group.finish();
}

/// What the machine allows: the pieces an append or read is made of, measured alone.
fn baselines(c: &mut Criterion) {
    let value = value_bytes();
    let pristine: Vec<Vec<u8>> = (0..PRISTINE_BATCHES as u64)
        .map(|n| encoded_batch(n, &value))
        .collect();
    let batch_len = pristine[0].len();

    let mut group = c.benchmark_group("baseline");
    group
        .throughput(Throughput::Bytes(batch_len as u64))
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    let mut buf = Vec::with_capacity(batch_len);
    let mut i = 0usize;
    group.bench_function("memcpy_batch", |b| {
        b.iter(|| {
            buf.clear();
            buf.extend_from_slice(&pristine[i % PRISTINE_BATCHES]);
            i += 1;
            black_box(&buf);
        })
    });
    group.bench_function("crc32c_batch", |b| {
        b.iter(|| crc32c::crc32c(black_box(&pristine[0][21..])))
    });
    group.bench_function("validate_batch", |b| {
        b.iter(|| {
            Batch::new(black_box(&pristine[0]))
                .and_then(|b| b.validate())
                .expect("valid")
        })
    });

    // Plain `pwrite` of the same bytes at the end of a file, replaced like the append log.
    let mut current: Option<(File, TempDir)> = None;
    let mut written = 0u64;
    group.bench_function("pwrite_batch", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            let mut i = 0u64;
            while i < iters {
                if current.is_none() || written + batch_len as u64 > APPEND_LOG_BUDGET_BYTES {
                    current = None;
                    let dir = bench_dir("pwrite-");
                    let file = File::create(dir.path().join("data")).expect("create");
                    current = Some((file, dir));
                    written = 0;
                }
                let (file, _) = current.as_ref().expect("set above");
                let room = (APPEND_LOG_BUDGET_BYTES - written) / batch_len as u64;
                let run = room.min(iters - i);
                let start = Instant::now();
                for k in 0..run {
                    let src = &pristine[((i + k) as usize) % PRISTINE_BATCHES];
                    file.write_all_at(src, written + k * batch_len as u64)
                        .expect("pwrite");
                }
                timed += start.elapsed();
                written += run * batch_len as u64;
                i += run;
            }
            timed
        })
    });
    drop(current);
    group.finish();

    let big = vec![7u8; 64 * MIB as usize];
    let mut dst = vec![0u8; 64 * MIB as usize];
    let mut group = c.benchmark_group("baseline");
    group
        .throughput(Throughput::Bytes(big.len() as u64))
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("memcpy_64MiB", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&big));
            black_box(&dst);
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    baselines,
    append,
    sequential_read,
    timestamp_lookup,
    open
);
criterion_main!(benches);
