//! Untrusted bytes: lying counts and lengths, truncation, overlong varints, random corruption.
//! A counting allocator checks that validation and iteration allocate nothing at all.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::{RawRecord, raw_batch, raw_record, sample_batch};
use proptest::prelude::*;
use sluice_record::varint::write_varint;
use sluice_record::{Batch, BatchHeader, Batches, HEADER_LEN, RecordError, update_crc};

/// Counts allocations made by the current thread (tests run on several threads).
struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Runs `f` and returns its result and how many allocations it made on this thread.
fn allocations<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATIONS.with(Cell::get);
    let out = f();
    (out, ALLOCATIONS.with(Cell::get) - before)
}

/// Validates and fully iterates `bytes` (if it forms a batch); returns validate's result.
fn check_all(bytes: &[u8]) -> Result<(), RecordError> {
    for item in Batches::new(bytes) {
        let Ok(batch) = item else { break };
        let _ = batch.validate();
        if let Ok(records) = batch.records() {
            for record in records.flatten() {
                for _ in record.headers() {}
            }
        }
    }
    let batch = Batch::new(bytes)?;
    batch.validate()
}

fn set_i32(b: &mut [u8], at: usize, v: i32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn malformed_reason(e: RecordError) -> &'static str {
    match e {
        RecordError::Malformed { reason, .. } => reason,
        other => panic!("expected Malformed, got {other:?}"),
    }
}

#[test]
fn record_count_i32_max_with_valid_crc_is_rejected_without_allocating() {
    let record = raw_record(RawRecord::default());
    // As a peer would send it: count lies, lastOffsetDelta consistent with it, CRC valid.
    let bytes = raw_batch(&record, i32::MAX, i32::MAX - 1);
    assert!(bytes.len() < 80, "a small batch: {} bytes", bytes.len());
    let batch = Batch::new(&bytes).expect("header and length are fine");
    batch.verify_crc().expect("the CRC is valid");

    let (result, allocs) = allocations(|| batch.validate());
    assert_eq!(
        result,
        Err(RecordError::CountMismatch {
            declared: i32::MAX,
            found: 1
        })
    );
    assert_eq!(allocs, 0);

    let (items, allocs) = allocations(|| {
        let mut ok = 0;
        let mut last_err = None;
        for item in batch.records().expect("uncompressed") {
            match item {
                Ok(_) => ok += 1,
                Err(e) => last_err = Some(e),
            }
        }
        (ok, last_err)
    });
    assert_eq!(allocs, 0);
    assert_eq!(
        items,
        (
            1,
            Some(RecordError::CountMismatch {
                declared: i32::MAX,
                found: 1
            })
        )
    );

    // With lastOffsetDelta left at 0 the header check fires first.
    let bytes = raw_batch(&record, i32::MAX, 0);
    assert!(matches!(
        Batch::new(&bytes).expect("batch").validate(),
        Err(RecordError::BadOffsetDelta { .. })
    ));
}

#[test]
fn record_count_below_one_is_rejected() {
    let record = raw_record(RawRecord::default());
    for count in [0, -1, i32::MIN] {
        let bytes = raw_batch(&record, count, 0);
        let batch = Batch::new(&bytes).expect("batch");
        assert_eq!(batch.validate(), Err(RecordError::BadRecordCount(count)));
        // Iteration is still bounded by bytes and reports the mismatch.
        let items: Vec<_> = batch.records().expect("uncompressed").collect();
        assert_eq!(items.len(), 1);
        assert!(matches!(items[0], Err(RecordError::CountMismatch { .. })));
    }
    let empty = raw_batch(&[], 0, 0);
    assert_eq!(
        Batch::new(&empty).expect("batch").validate(),
        Err(RecordError::BadRecordCount(0))
    );
}

#[test]
fn more_records_than_declared_is_rejected() {
    let mut records = raw_record(RawRecord::default());
    records.extend(raw_record(RawRecord {
        offset_delta: 1,
        ..RawRecord::default()
    }));
    let bytes = raw_batch(&records, 1, 1);
    assert_eq!(
        Batch::new(&bytes).expect("batch").validate(),
        Err(RecordError::CountMismatch {
            declared: 1,
            found: 2
        })
    );
}

#[test]
fn header_count_i32_max_is_rejected_without_allocating() {
    let record = raw_record(RawRecord {
        headers_count: i32::MAX,
        headers: &[0x02, b'h', 0x01], // one real header: key "h", null value
        ..RawRecord::default()
    });
    let bytes = raw_batch(&record, 1, 0);
    let batch = Batch::new(&bytes).expect("batch");
    let (result, allocs) = allocations(|| batch.validate());
    assert_eq!(allocs, 0);
    assert_eq!(
        malformed_reason(result.expect_err("lying header count")),
        "record header count exceeds the record's bytes"
    );
    let first = batch
        .records()
        .expect("uncompressed")
        .next()
        .expect("one item");
    assert!(first.is_err());
}

#[test]
fn negative_lengths_other_than_minus_one_are_rejected() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            raw_record(RawRecord {
                key_len: -2,
                ..RawRecord::default()
            }),
            "record key length below -1",
        ),
        (
            raw_record(RawRecord {
                value_len: i32::MIN,
                value: b"",
                ..RawRecord::default()
            }),
            "record value length below -1",
        ),
        (
            raw_record(RawRecord {
                headers_count: -1,
                ..RawRecord::default()
            }),
            "negative record header count",
        ),
        (
            raw_record(RawRecord {
                headers_count: 1,
                headers: &[0x01, 0x01], // key length -1: a null header key
                ..RawRecord::default()
            }),
            "record header key is null",
        ),
        (
            raw_record(RawRecord {
                headers_count: 1,
                headers: &[0x03, 0x01], // key length -2
                ..RawRecord::default()
            }),
            "record header key length below -1",
        ),
        (
            raw_record(RawRecord {
                headers_count: 1,
                headers: &[0x00, 0x05], // empty key, value length -3
                ..RawRecord::default()
            }),
            "record header value length below -1",
        ),
        (vec![0x05, 0, 0, 0, 1, 1, 0], "negative record length"), // length -3
    ];
    for (record, reason) in cases {
        let bytes = raw_batch(&record, 1, 0);
        let got = Batch::new(&bytes).expect("batch").validate();
        assert_eq!(malformed_reason(got.expect_err(reason)), reason);
    }
}

#[test]
fn lengths_past_the_record_are_rejected() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            raw_record(RawRecord {
                key_len: 1000,
                key: b"abc",
                ..RawRecord::default()
            }),
            "length runs past the end of the record",
        ),
        (
            raw_record(RawRecord {
                value_len: i32::MAX,
                ..RawRecord::default()
            }),
            "length runs past the end of the record",
        ),
        (
            raw_record(RawRecord {
                headers_count: 1,
                headers: &[0x10, b'a', 0x01], // key length 8, one byte present
                ..RawRecord::default()
            }),
            "length runs past the end of the record",
        ),
        (
            // Record length larger than the batch.
            {
                let mut r = raw_record(RawRecord::default());
                r[0] = 0x7e; // length 63
                r
            },
            "record length runs past the end of the batch",
        ),
        (
            // Record length shorter than its fields.
            {
                let mut r = raw_record(RawRecord::default());
                r[0] -= 2; // one byte shorter
                r.pop();
                r
            },
            "record ends inside its attributes",
        ),
        (
            // Record length longer than its fields.
            {
                let mut r = raw_record(RawRecord::default());
                r[0] += 2;
                r.push(0);
                r
            },
            "record has bytes left after its headers",
        ),
    ];
    for (record, reason) in cases {
        let bytes = raw_batch(&record, 1, 0);
        let got = Batch::new(&bytes).expect("batch").validate();
        let e = got.expect_err(reason);
        // A field cut short by the record length may fail inside a varint instead.
        let r = malformed_reason(e);
        assert!(
            r == reason
                || (reason == "record ends inside its attributes" && r.starts_with("truncated")),
            "expected {reason:?}, got {r:?}"
        );
    }
}

#[test]
fn overlong_varints_are_rejected() {
    // Record length as a 6-byte varint.
    let mut record = vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
    record.extend_from_slice(&[0; 8]);
    let bytes = raw_batch(&record, 1, 0);
    let e = Batch::new(&bytes)
        .expect("batch")
        .validate()
        .expect_err("overlong");
    assert_eq!(
        e,
        RecordError::Malformed {
            position: HEADER_LEN + 4,
            reason: "varint longer than 5 bytes"
        }
    );

    // Timestamp delta as an 11-byte varlong.
    let mut body = vec![0u8];
    body.extend_from_slice(&[0x80; 10]);
    body.push(0);
    body.extend_from_slice(&[0, 1, 2, b'v', 0]);
    let mut record = Vec::new();
    write_varint(&mut record, body.len() as i32);
    record.extend_from_slice(&body);
    let bytes = raw_batch(&record, 1, 0);
    let e = Batch::new(&bytes)
        .expect("batch")
        .validate()
        .expect_err("overlong");
    assert_eq!(malformed_reason(e), "varlong longer than 10 bytes");

    // Record length varint whose continuation runs off the end of the batch.
    let bytes = raw_batch(&[0x80, 0x80], 1, 0);
    let e = Batch::new(&bytes)
        .expect("batch")
        .validate()
        .expect_err("truncated");
    assert_eq!(malformed_reason(e), "truncated varint");
}

#[test]
fn offset_deltas_must_increase_within_last_offset_delta() {
    let two = |a: i32, b: i32| {
        let mut r = raw_record(RawRecord {
            offset_delta: a,
            ..RawRecord::default()
        });
        r.extend(raw_record(RawRecord {
            offset_delta: b,
            ..RawRecord::default()
        }));
        r
    };
    let ok = raw_batch(&two(0, 5), 2, 5);
    Batch::new(&ok)
        .expect("batch")
        .validate()
        .expect("gaps are fine");
    for (records, last) in [
        (two(1, 1), 1),
        (two(2, 1), 2),
        (two(0, 6), 5),
        (two(-1, 0), 1),
    ] {
        let bytes = raw_batch(&records, 2, last);
        let e = Batch::new(&bytes)
            .expect("batch")
            .validate()
            .expect_err("bad deltas");
        assert!(malformed_reason(e).starts_with("record offset delta"));
    }
    let bytes = raw_batch(&two(0, 1), 2, -1);
    assert!(matches!(
        Batch::new(&bytes).expect("batch").validate(),
        Err(RecordError::BadOffsetDelta { .. })
    ));
}

#[test]
fn header_checks() {
    let good = sample_batch(2);
    let mut bad_magic = good.clone();
    bad_magic[16] = 1;
    assert_eq!(
        BatchHeader::parse(&bad_magic),
        Err(RecordError::BadMagic(1))
    );
    assert_eq!(
        Batch::new(&bad_magic).map(|_| ()),
        Err(RecordError::BadMagic(1))
    );
    let mut bad_len = good.clone();
    set_i32(&mut bad_len, 8, 48);
    assert_eq!(
        BatchHeader::parse(&bad_len),
        Err(RecordError::BadLength(48))
    );
    set_i32(&mut bad_len, 8, -1);
    assert_eq!(
        BatchHeader::parse(&bad_len),
        Err(RecordError::BadLength(-1))
    );

    let mut bad_crc = good.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 1;
    assert!(matches!(
        Batch::new(&bad_crc).expect("batch").validate(),
        Err(RecordError::CrcMismatch { .. })
    ));

    // Compressed batches: validated up to the codec, records refused.
    let mut gzip = good.clone();
    gzip[22] |= 1;
    update_crc(&mut gzip);
    let batch = Batch::new(&gzip).expect("batch");
    batch.validate().expect("header and CRC are fine");
    assert_eq!(batch.records().map(|_| ()), Err(RecordError::Compressed(1)));
    let mut unknown = good;
    unknown[22] |= 7;
    update_crc(&mut unknown);
    assert_eq!(
        Batch::new(&unknown).expect("batch").validate(),
        Err(RecordError::UnknownCompression(7))
    );
}

#[test]
fn truncated_at_every_byte_boundary() {
    let good = sample_batch(4);
    Batch::new(&good).expect("batch").validate().expect("valid");
    for cut in 0..good.len() {
        let short = &good[..cut];
        assert!(
            matches!(Batch::new(short), Err(RecordError::Truncated { .. })),
            "cut at {cut}"
        );
        let mut batches = Batches::new(short);
        assert!(batches.next().is_none(), "cut at {cut}: partial batch");
        assert_eq!(batches.remainder(), short);
        assert_eq!(batches.position(), 0);

        // The same cut with the header patched to match: length and CRC consistent, records cut.
        if cut >= HEADER_LEN {
            let mut patched = short.to_vec();
            set_i32(&mut patched, 8, (cut - 12) as i32);
            update_crc(&mut patched);
            let (result, allocs) = allocations(|| Batch::new(&patched).expect("batch").validate());
            assert!(result.is_err(), "cut at {cut} must not validate");
            assert_eq!(allocs, 0);
        }
    }
}

#[test]
fn batches_walk_stops_at_partial_and_bad_batches() {
    let one = sample_batch(2);
    let mut log = one.clone();
    log.extend_from_slice(&one);
    log.extend_from_slice(&one[..30]);
    let mut batches = Batches::new(&log);
    assert!(batches.next().expect("first").is_ok());
    assert!(batches.next().expect("second").is_ok());
    assert!(batches.next().is_none());
    assert!(batches.next().is_none());
    assert_eq!(batches.position(), 2 * one.len());
    assert_eq!(batches.remainder(), &one[..30]);

    let mut bad = one.clone();
    let mut second = one.clone();
    second[16] = 0;
    bad.extend_from_slice(&second);
    bad.extend_from_slice(&one);
    let mut batches = Batches::new(&bad);
    assert!(batches.next().expect("first").is_ok());
    assert_eq!(
        batches.next().expect("error").map(|_| ()),
        Err(RecordError::BadMagic(0))
    );
    assert!(batches.next().is_none());
    assert_eq!(batches.position(), one.len());

    // A bad magic is reported even when the header is incomplete.
    let mut short = one.clone();
    short.extend_from_slice(&second[..20]);
    let mut batches = Batches::new(&short);
    assert!(batches.next().expect("first").is_ok());
    assert_eq!(
        batches.next().expect("error").map(|_| ()),
        Err(RecordError::BadMagic(0))
    );

    // Batch::new ignores trailing bytes.
    let batch = Batch::new(&log).expect("batch");
    assert_eq!(batch.as_bytes().len(), one.len());
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes never panic any reader.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = check_all(&bytes);
    }

    /// Arbitrary bytes behind a plausible header (magic 2, right length, valid CRC) exercise the
    /// record walk; it never panics and never allocates.
    #[test]
    fn arbitrary_records_never_panic(
        records in prop::collection::vec(any::<u8>(), 0..200),
        count in prop_oneof![0i32..5, any::<i32>()],
        last in prop_oneof![0i32..5, any::<i32>()],
    ) {
        let bytes = raw_batch(&records, count, last);
        let (_, allocs) = allocations(|| check_all(&bytes));
        prop_assert_eq!(allocs, 0);
    }

    /// Valid batches with random bytes flipped (CRC optionally fixed up) never panic; whatever
    /// validates also iterates cleanly to recordCount records.
    #[test]
    fn mutated_batches_never_panic(
        n in 1usize..6,
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        fix_crc in any::<bool>(),
    ) {
        let mut bytes = sample_batch(n);
        for (at, mask) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= mask;
        }
        if fix_crc && bytes.len() >= HEADER_LEN {
            update_crc(&mut bytes);
        }
        let (result, allocs) = allocations(|| check_all(&bytes));
        prop_assert_eq!(allocs, 0);
        let compressed = bytes.get(22).is_some_and(|a| a & 7 != 0);
        if result.is_ok() && !compressed {
            let batch = Batch::new(&bytes).expect("validated");
            let records = batch.records().expect("uncompressed").collect::<Result<Vec<_>, _>>();
            let records = records.expect("validated batches iterate cleanly");
            prop_assert_eq!(records.len(), batch.header().record_count as usize);
        }
    }
}

/// The hot paths allocate nothing per record: the builder only grows `out`, and validation and
/// iteration of a valid batch allocate nothing at all.
#[test]
fn hot_paths_do_not_allocate() {
    let mut out = Vec::with_capacity(64 * 1024);
    let headers: [(&[u8], Option<&[u8]>); 2] = [(b"trace", Some(b"abc")), (b"n", None)];
    let (range, allocs) = allocations(|| {
        let mut b = sluice_record::BatchBuilder::new(&mut out, 0, 1_000);
        for i in 0..500i64 {
            b.push(1_000 + i, Some(b"key"), Some(&[7u8; 64]), &headers);
        }
        b.finish()
    });
    assert_eq!(allocs, 0, "builder allocated with room in `out`");
    let range = range.expect("records");
    let batch = Batch::new(&out[range]).expect("batch");
    let (count, allocs) = allocations(|| {
        batch.validate().expect("valid");
        let mut count = 0;
        for record in batch.records().expect("uncompressed") {
            let record = record.expect("record");
            count += record.headers().count();
        }
        count
    });
    assert_eq!(allocs, 0);
    assert_eq!(count, 1_000);
}
