//! In-place header rewrites, the builder's edge cases and retain_records' edge cases.

mod common;

use common::sample_batch;
use sluice_record::{
    Batch, BatchBuilder, HEADER_LEN, RecordError, retain_records, set_base_offset,
    set_partition_leader_epoch, update_crc,
};

#[test]
fn header_rewrites_keep_the_crc_valid() {
    let mut bytes = sample_batch(3);
    let crc_before = Batch::new(&bytes).expect("batch").header().crc;
    set_base_offset(&mut bytes, 1 << 40);
    set_partition_leader_epoch(&mut bytes, 17);
    let batch = Batch::new(&bytes).expect("batch");
    batch.validate().expect("CRC still valid");
    let h = batch.header();
    assert_eq!(h.base_offset, 1 << 40);
    assert_eq!(h.partition_leader_epoch, 17);
    assert_eq!(h.crc, crc_before);
    assert_eq!(h.last_offset(), (1 << 40) + 2);
    assert_eq!(h.next_offset(), (1 << 40) + 3);
    let offsets: Vec<i64> = batch
        .records()
        .expect("uncompressed")
        .map(|r| r.expect("record").offset(h.base_offset))
        .collect();
    assert_eq!(offsets, vec![1 << 40, (1 << 40) + 1, (1 << 40) + 2]);
}

#[test]
fn update_crc_after_changing_covered_bytes() {
    let mut bytes = sample_batch(2);
    bytes[35..43].copy_from_slice(&9_999i64.to_be_bytes()); // maxTimestamp
    assert!(matches!(
        Batch::new(&bytes).expect("batch").validate(),
        Err(RecordError::CrcMismatch { .. })
    ));
    update_crc(&mut bytes);
    let batch = Batch::new(&bytes).expect("batch");
    batch.validate().expect("valid again");
    assert_eq!(batch.header().max_timestamp, 9_999);
}

#[test]
#[should_panic(expected = "not a whole batch header")]
fn rewrites_panic_on_a_short_slice() {
    set_base_offset(&mut [0u8; HEADER_LEN - 1], 1);
}

#[test]
fn builder_defaults_and_header_fields() {
    let mut out = Vec::new();
    let mut b = BatchBuilder::new(&mut out, 0, 500);
    assert!(b.is_empty());
    assert_eq!(b.encoded_len(), HEADER_LEN);
    b.push(400, None, None, &[]); // earlier than the base timestamp: negative delta
    b.push(900, Some(b""), Some(b""), &[(b"", Some(b""))]);
    b.push_with_delta(10, 700, Some(b"k"), None, &[]);
    assert_eq!(b.len(), 3);
    let range = b.finish().expect("three records");
    let batch = Batch::new(&out[range]).expect("batch");
    batch.validate().expect("valid");
    let h = *batch.header();
    assert_eq!(h.magic, 2);
    assert_eq!(h.attributes, 0);
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (-1, -1, -1)
    );
    assert_eq!(h.partition_leader_epoch, -1);
    assert_eq!(h.base_timestamp, 500);
    assert_eq!(h.max_timestamp, 900);
    assert_eq!(h.last_offset_delta, 10);
    assert_eq!(h.record_count, 3);
    assert!(!h.is_control() && !h.is_transactional() && h.compression() == 0);
    let records: Vec<_> = batch
        .records()
        .expect("uncompressed")
        .map(|r| r.expect("record"))
        .collect();
    assert_eq!(records[0].timestamp(h.base_timestamp), 400);
    assert_eq!((records[0].key, records[0].value), (None, None));
    assert_eq!(records[1].key, Some(&b""[..]));
    assert_eq!(records[1].headers_len(), 1);
    assert_eq!(records[2].offset_delta, 10);
    // raw covers the whole record, so the three raws tile the records region.
    let total: usize = records.iter().map(|r| r.raw.len()).sum();
    assert_eq!(HEADER_LEN + total, batch.as_bytes().len());
}

#[test]
fn empty_or_dropped_builder_leaves_out_unchanged() {
    let mut out = vec![7u8; 5];
    assert_eq!(BatchBuilder::new(&mut out, 0, 0).finish(), None);
    assert_eq!(out, vec![7u8; 5]);
    {
        let mut b = BatchBuilder::new(&mut out, 0, 0);
        b.push(1, Some(b"k"), Some(b"v"), &[]);
        drop(b);
    }
    assert_eq!(out, vec![7u8; 5]);
}

#[test]
#[should_panic(expected = "does not follow")]
fn builder_rejects_non_increasing_deltas() {
    let mut out = Vec::new();
    let mut b = BatchBuilder::new(&mut out, 0, 0);
    b.push_with_delta(3, 0, None, None, &[]);
    b.push_with_delta(3, 0, None, None, &[]);
}

#[test]
fn retain_all_reproduces_the_batch_and_keep_sees_every_record() {
    let bytes = sample_batch(5);
    let batch = Batch::new(&bytes).expect("batch");
    let mut seen = Vec::new();
    let mut out = Vec::new();
    let kept = retain_records(&batch, &mut out, |i, r| {
        seen.push((i, r.offset_delta));
        true
    })
    .expect("retain");
    assert!(kept);
    assert_eq!(out, bytes);
    assert_eq!(seen, (0..5).map(|i| (i, i as i32)).collect::<Vec<_>>());
}

#[test]
fn retain_keeps_gaps_and_last_offset_delta() {
    let bytes = sample_batch(5);
    let batch = Batch::new(&bytes).expect("batch");
    let mut out = Vec::new();
    assert!(retain_records(&batch, &mut out, |i, _| i == 1 || i == 3).expect("retain"));
    let new = Batch::new(&out).expect("batch");
    new.validate().expect("valid");
    assert_eq!(new.header().record_count, 2);
    assert_eq!(new.header().last_offset_delta, 4);
    assert_eq!(new.header().next_offset(), batch.header().next_offset());
    let deltas: Vec<i32> = new
        .records()
        .expect("uncompressed")
        .map(|r| r.expect("record").offset_delta)
        .collect();
    assert_eq!(deltas, vec![1, 3]);

    let mut none = vec![9];
    assert!(!retain_records(&batch, &mut none, |_, _| false).expect("retain"));
    assert_eq!(none, vec![9]);
}

#[test]
fn retain_refuses_compressed_and_malformed_batches_writing_nothing() {
    let mut gzip = sample_batch(2);
    gzip[22] |= 1;
    update_crc(&mut gzip);
    let mut out = vec![1];
    assert_eq!(
        retain_records(&Batch::new(&gzip).expect("batch"), &mut out, |_, _| true),
        Err(RecordError::Compressed(1))
    );
    assert_eq!(out, vec![1]);

    let mut lying = sample_batch(2);
    lying[57..61].copy_from_slice(&3i32.to_be_bytes());
    let result = retain_records(&Batch::new(&lying).expect("batch"), &mut out, |_, _| true);
    assert_eq!(
        result,
        Err(RecordError::CountMismatch {
            declared: 3,
            found: 2
        })
    );
    assert_eq!(out, vec![1]);
}

#[test]
fn error_messages_say_what_to_do() {
    let msg = RecordError::Compressed(4).to_string();
    assert!(
        msg.contains("zstd") && msg.contains("not supported"),
        "{msg}"
    );
    let msg = RecordError::BadMagic(1).to_string();
    assert!(msg.contains("only magic 2"), "{msg}");
    let msg = RecordError::CountMismatch {
        declared: i32::MAX,
        found: 1,
    }
    .to_string();
    assert!(
        msg.contains("2147483647") && msg.contains("hold 1"),
        "{msg}"
    );
}
