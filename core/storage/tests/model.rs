//! Property test: random appends, rolls, retention, compaction, reopens, reads and timestamp
//! lookups against a simple in-memory model of what the log must hold.

mod common;

use common::{NewRec, Rec, batch, decode, read_all};
use proptest::prelude::*;
use sluice_storage::{CleanupPolicy, Durability, Log, LogConfig, ReadBound};

const T0: i64 = 1_700_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<NewRec>),
    Roll,
    Retention { now: i64 },
    Compact { now: i64 },
    Reopen { clean: bool },
    Read { at: f64, max_bytes: usize },
    TimeLookup { ts: i64 },
}

fn new_rec(keyed: bool) -> impl Strategy<Value = NewRec> {
    let key = if keyed {
        (0u8..6)
            .prop_map(|k| Some(format!("key-{k}").into_bytes()))
            .boxed()
    } else {
        proptest::option::weighted(0.7, (0u8..6).prop_map(|k| format!("key-{k}").into_bytes()))
            .boxed()
    };
    (
        0i64..10_000,
        key,
        proptest::option::weighted(0.85, proptest::collection::vec(any::<u8>(), 0..300)),
        proptest::collection::vec(
            (
                "[a-z]{1,6}".prop_map(String::into_bytes),
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..12)),
            ),
            0..3,
        ),
    )
        .prop_map(|(dt, key, value, headers)| NewRec {
            timestamp: T0 + dt,
            key,
            value,
            headers,
        })
}

fn op(keyed: bool) -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => proptest::collection::vec(new_rec(keyed), 1..8).prop_map(Op::Append),
        1 => Just(Op::Roll),
        1 => (0i64..20_000).prop_map(|dt| Op::Retention { now: T0 + dt }),
        1 => (0i64..20_000).prop_map(|dt| Op::Compact { now: T0 + dt }),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        3 => (0.0f64..=1.0, 1usize..4096).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        2 => (-100i64..11_000).prop_map(|dt| Op::TimeLookup { ts: T0 + dt }),
    ]
}

fn config() -> impl Strategy<Value = LogConfig> {
    (
        prop_oneof![Just(1024u64), Just(2048), Just(8192)],
        prop_oneof![Just(1u64), Just(100), Just(1000)],
        prop_oneof![
            Just(CleanupPolicy::DELETE),
            Just(CleanupPolicy::COMPACT),
            Just("compact,delete".parse::<CleanupPolicy>().unwrap())
        ],
        proptest::option::of(1000u64..15_000),
        proptest::option::of(2048u64..20_000),
        0u64..8000,
    )
        .prop_map(
            |(
                segment_bytes,
                index_interval_bytes,
                cleanup_policy,
                retention_ms,
                retention_bytes,
                delete_retention_ms,
            )| LogConfig {
                segment_bytes,
                index_interval_bytes,
                cleanup_policy,
                retention_ms,
                retention_bytes,
                delete_retention_ms,
                durability: Durability::Never,
                ..LogConfig::default()
            },
        )
}

struct Model {
    records: Vec<Rec>,
    leo: u64,
    log_start: u64,
}

fn check_whole_log(log: &Log, model: &Model) {
    assert_eq!(log.log_end_offset(), model.leo);
    assert_eq!(log.high_watermark(), model.leo);
    assert_eq!(log.log_start_offset(), model.log_start);
    let got = read_all(log, ReadBound::HighWatermark);
    assert_eq!(
        summary(&got),
        summary(&model.records),
        "offsets, timestamps, keys, value sizes"
    );
    assert!(got == model.records, "record contents differ");
}

/// A short form of records for readable failures.
fn summary(recs: &[Rec]) -> Vec<(u64, i64, Option<String>, Option<usize>)> {
    recs.iter()
        .map(|r| {
            (
                r.offset,
                r.timestamp - T0,
                r.key
                    .as_ref()
                    .map(|k| String::from_utf8_lossy(k).into_owned()),
                r.value.as_ref().map(Vec::len),
            )
        })
        .collect()
}

fn run(config: LogConfig, ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config.clone()).unwrap();
    let mut model = Model {
        records: Vec::new(),
        leo: 0,
        log_start: 0,
    };
    for op in ops {
        match op {
            Op::Append(recs) => {
                let mut b = batch(&recs);
                let info = log.append(&mut b, 1).unwrap();
                assert_eq!(info.first_offset, model.leo);
                for (i, r) in recs.into_iter().enumerate() {
                    model.records.push(Rec {
                        offset: model.leo + i as u64,
                        timestamp: r.timestamp,
                        key: r.key,
                        value: r.value,
                        headers: r.headers,
                    });
                }
                model.leo = info.log_end_offset;
                log.set_high_watermark(model.leo);
            }
            Op::Roll => log.roll().unwrap(),
            Op::Retention { now } => {
                log.apply_retention(now as u64).unwrap();
                let start = log.log_start_offset();
                assert!(start >= model.log_start && start <= model.leo);
                model.log_start = start;
                model.records.retain(|r| r.offset >= start);
                // Retention stops at the first segment it must keep.
                let segs = log.segments();
                if config.cleanup_policy.delete && segs.len() > 1 {
                    let first = &segs[0];
                    let total: u64 = segs.iter().map(|s| s.size_bytes).sum();
                    let old = first.max_timestamp >= 0
                        && config
                            .retention_ms
                            .is_some_and(|r| first.max_timestamp < now - r as i64);
                    let big = config
                        .retention_bytes
                        .is_some_and(|r| total - first.size_bytes >= r);
                    assert!(
                        !old && !big,
                        "retention left a deletable segment: {first:?}"
                    );
                }
            }
            Op::Compact { now } => {
                let segs = log.segments();
                let boundary = segs.last().unwrap().base_offset;
                log.compact(now as u64).unwrap();
                if config.cleanup_policy.compact {
                    let horizon = now - config.delete_retention_ms as i64;
                    let mut latest = std::collections::HashMap::new();
                    for r in model.records.iter().filter(|r| r.offset < boundary) {
                        if let Some(k) = &r.key {
                            latest.insert(k.clone(), r.offset);
                        }
                    }
                    model.records.retain(|r| {
                        if r.offset >= boundary {
                            return true;
                        }
                        let Some(k) = &r.key else { return true };
                        latest[k] == r.offset && !(r.value.is_none() && r.timestamp < horizon)
                    });
                }
            }
            Op::Reopen { clean } => {
                if clean {
                    log.close().unwrap();
                } else {
                    drop(log);
                }
                log = Log::open(dir.path(), config.clone()).unwrap();
                if clean {
                    assert_eq!(log.recovery_report().bytes_scanned, 0);
                }
                assert_eq!(log.recovery_report().bytes_truncated, 0);
                log.set_high_watermark(model.leo);
            }
            Op::Read { at, max_bytes } => {
                let from = model.log_start + ((model.leo - model.log_start) as f64 * at) as u64;
                let (bytes, info) = log.read(from, max_bytes, ReadBound::HighWatermark).unwrap();
                let got: Vec<Rec> = decode(&bytes)
                    .into_iter()
                    .filter(|r| r.offset >= from)
                    .collect();
                let pending = model.records.iter().any(|r| r.offset >= from);
                // The batches returned cover [from, next_offset): exactly the model's records
                // there (compaction may leave a returned batch with no record at or after `from`).
                let expected: Vec<Rec> = model
                    .records
                    .iter()
                    .filter(|r| r.offset >= from && r.offset < info.next_offset)
                    .cloned()
                    .collect();
                assert_eq!(summary(&got), summary(&expected), "read from {from}");
                assert!(got == expected);
                if pending {
                    assert!(
                        info.next_offset > from,
                        "a read before the end makes progress"
                    );
                } else {
                    assert!(got.is_empty());
                }
            }
            Op::TimeLookup { ts } => {
                let expected = model
                    .records
                    .iter()
                    .find(|r| r.timestamp >= ts)
                    .map(|r| r.offset);
                assert_eq!(
                    log.offset_for_timestamp(ts, ReadBound::HighWatermark)
                        .unwrap(),
                    expected,
                    "lookup {ts}"
                );
            }
        }
        check_whole_log(&log, &model);
    }
}

proptest! {
    // PROPTEST_CASES=2000 for a longer search; 48 keeps the suite quick.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn log_matches_the_model(
        (config, ops) in config().prop_flat_map(|c| {
            let keyed = c.cleanup_policy.compact;
            (Just(c), proptest::collection::vec(op(keyed), 1..60))
        })
    ) {
        run(config, ops);
    }
}
