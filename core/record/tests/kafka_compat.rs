//! Compatibility both ways with kafka-protocol 0.18's record codec.

mod common;

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record as KRecord, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType,
};
use proptest::prelude::*;
use sluice_record::{Batch, BatchBuilder, Batches, retain_records};

/// One record as a test generates it.
#[derive(Debug, Clone)]
struct Rec {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    /// Unique keys: kafka-protocol keeps headers in a map.
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn opt_bytes() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Vec::new())),
        4 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Some),
        1 => prop::collection::vec(any::<u8>(), 100..300).prop_map(Some),
    ]
}

fn rec() -> impl Strategy<Value = Rec> {
    (
        1_600_000_000_000i64..1_600_010_000_000,
        opt_bytes(),
        opt_bytes(),
        prop::collection::btree_map("[a-zA-Z0-9_é-]{0,8}", opt_bytes(), 0..4),
    )
        .prop_map(|(timestamp, key, value, headers)| Rec {
            timestamp,
            key,
            value,
            headers: headers.into_iter().collect(),
        })
}

fn header_refs(r: &Rec) -> Vec<(&[u8], Option<&[u8]>)> {
    r.headers
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_deref()))
        .collect()
}

/// kafka-protocol's encoder starts a new batch whenever `offset - sequence` changes, so the
/// sequence must follow the offset even without a producer id: the batch's base sequence is
/// `producer.2` either way.
fn to_krecord(
    r: &Rec,
    base_offset: i64,
    offset: i64,
    producer: (i64, i16, i32),
    leader_epoch: i32,
) -> KRecord {
    KRecord {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: leader_epoch,
        producer_id: producer.0,
        producer_epoch: producer.1,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: producer.2.wrapping_add((offset - base_offset) as i32),
        timestamp: r.timestamp,
        key: r.key.clone().map(Bytes::from),
        value: r.value.clone().map(Bytes::from),
        headers: r
            .headers
            .iter()
            .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone().map(Bytes::from)))
            .collect(),
    }
}

/// Asserts that a kafka-protocol record carries the content of `expected` at `offset`.
fn assert_same(k: &KRecord, expected: &Rec, offset: i64) {
    assert_eq!(k.offset, offset);
    assert_eq!(k.timestamp, expected.timestamp);
    assert_eq!(k.key.as_deref(), expected.key.as_deref());
    assert_eq!(k.value.as_deref(), expected.value.as_deref());
    let headers: Vec<(&str, Option<&[u8]>)> = k
        .headers
        .iter()
        .map(|(key, v)| (key.as_str(), v.as_deref()))
        .collect();
    let expected_headers: Vec<(&str, Option<&[u8]>)> = expected
        .headers
        .iter()
        .map(|(key, v)| (key.as_str(), v.as_deref()))
        .collect();
    assert_eq!(headers, expected_headers);
}

/// Asserts that our view of `batch` yields `expected` at `offsets`.
fn assert_ours(batch: &Batch<'_>, expected: &[Rec], offsets: &[i64]) {
    batch.validate().expect("valid batch");
    let h = batch.header();
    assert_eq!(h.record_count as usize, expected.len());
    let mut n = 0;
    for (i, item) in batch.records().expect("uncompressed").enumerate() {
        let r = item.expect("record");
        let e = &expected[i];
        assert_eq!(r.offset(h.base_offset), offsets[i]);
        assert_eq!(r.timestamp(h.base_timestamp), e.timestamp);
        assert_eq!(r.key, e.key.as_deref());
        assert_eq!(r.value, e.value.as_deref());
        let headers: Vec<(&[u8], Option<&[u8]>)> =
            r.headers().map(|x| x.expect("header")).collect();
        assert_eq!(headers, header_refs(e));
        n += 1;
    }
    assert_eq!(n, expected.len());
    let max_ts = expected
        .iter()
        .map(|r| r.timestamp)
        .max()
        .expect("non-empty");
    assert_eq!(h.max_timestamp, max_ts);
    assert_eq!(h.last_offset(), *offsets.last().expect("non-empty"));
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 128,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// BatchBuilder output decodes with kafka-protocol to the same content.
    #[test]
    fn ours_decode_with_kafka_protocol(
        records in prop::collection::vec(rec(), 0..50),
        base_offset in 0i64..1_000_000_000_000,
        gaps in prop::collection::vec(1i32..4, 50),
        use_gaps in any::<bool>(),
        producer in prop_oneof![Just((-1i64, -1i16, -1i32)), (0i64..1_000_000, 0i16..100, 0i32..1_000_000)],
        leader_epoch in -1i32..1000,
    ) {
        let mut out = vec![0xAA; 3]; // the builder appends after existing bytes
        let base_ts = records.first().map_or(0, |r| r.timestamp);
        let mut b = BatchBuilder::new(&mut out, base_offset, base_ts)
            .producer(producer.0, producer.1, producer.2)
            .partition_leader_epoch(leader_epoch);
        let mut deltas = Vec::new();
        let mut delta = 0i32;
        for (i, r) in records.iter().enumerate() {
            if use_gaps {
                if i > 0 {
                    delta += gaps[i];
                }
                b.push_with_delta(delta, r.timestamp, r.key.as_deref(), r.value.as_deref(), &header_refs(r));
            } else {
                delta = i as i32;
                b.push(r.timestamp, r.key.as_deref(), r.value.as_deref(), &header_refs(r));
            }
            deltas.push(delta);
        }
        prop_assert_eq!(b.len(), records.len());
        let encoded_len = b.encoded_len();
        let range = b.finish();
        if records.is_empty() {
            prop_assert!(range.is_none());
            prop_assert_eq!(out, vec![0xAA; 3]);
            return Ok(());
        }
        let range = range.expect("non-empty");
        prop_assert_eq!(range.clone(), 3..out.len());
        prop_assert_eq!(range.len(), encoded_len);
        let offsets: Vec<i64> = deltas.iter().map(|&d| base_offset + i64::from(d)).collect();

        let batch = Batch::new(&out[range.clone()]).expect("batch");
        assert_ours(&batch, &records, &offsets);
        prop_assert_eq!(batch.header().producer_id, producer.0);
        prop_assert_eq!(batch.header().producer_epoch, producer.1);
        prop_assert_eq!(batch.header().base_sequence, producer.2);
        prop_assert_eq!(batch.header().partition_leader_epoch, leader_epoch);

        let mut buf = Bytes::copy_from_slice(&out[range]);
        let set = RecordBatchDecoder::decode(&mut buf).expect("kafka-protocol decodes it");
        prop_assert_eq!(buf.len(), 0);
        prop_assert_eq!(set.version, 2);
        prop_assert_eq!(set.compression, Compression::None);
        prop_assert_eq!(set.records.len(), records.len());
        for (i, k) in set.records.iter().enumerate() {
            assert_same(k, &records[i], offsets[i]);
            prop_assert_eq!(k.producer_id, producer.0);
            prop_assert_eq!(k.producer_epoch, producer.1);
            prop_assert_eq!(k.partition_leader_epoch, leader_epoch);
        }
    }

    /// kafka-protocol's encoder output validates and iterates with ours to the same content.
    #[test]
    fn kafka_protocol_batches_read_with_ours(
        records in prop::collection::vec(rec(), 0..50),
        base_offset in 0i64..1_000_000_000_000,
        gaps in prop::collection::vec(1i64..4, 50),
        use_gaps in any::<bool>(),
        producer in prop_oneof![Just((-1i64, -1i16, -1i32)), (0i64..1_000_000, 0i16..100, 0i32..1_000_000)],
    ) {
        let mut offsets = Vec::new();
        let mut offset = base_offset;
        for (i, gap) in gaps.iter().enumerate().take(records.len()) {
            if i > 0 {
                offset += if use_gaps { *gap } else { 1 };
            }
            offsets.push(offset);
        }
        let krecords: Vec<KRecord> = records
            .iter()
            .zip(&offsets)
            .map(|(r, &o)| to_krecord(r, base_offset, o, producer, 7))
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions { version: 2, compression: Compression::None };
        RecordBatchEncoder::encode(&mut buf, &krecords, &options).expect("kafka-protocol encodes");

        let mut batches = Batches::new(&buf);
        if records.is_empty() {
            prop_assert!(batches.next().is_none());
            return Ok(());
        }
        let batch = batches.next().expect("one batch").expect("well-formed");
        prop_assert!(batches.next().is_none());
        prop_assert!(batches.remainder().is_empty());
        prop_assert_eq!(batches.position(), buf.len());
        assert_ours(&batch, &records, &offsets);
        let h = batch.header();
        prop_assert_eq!(h.base_offset, base_offset);
        prop_assert_eq!(h.partition_leader_epoch, 7);
        prop_assert_eq!(h.producer_id, producer.0);
        prop_assert_eq!(h.producer_epoch, producer.1);
        prop_assert_eq!(h.base_sequence, producer.2);
    }

    /// retain_records output validates, decodes with kafka-protocol and keeps offsets and
    /// timestamps of the kept records.
    #[test]
    fn retain_records_keeps_offsets(
        records in prop::collection::vec(rec(), 1..50),
        keep_mask in prop::collection::vec(any::<bool>(), 50),
        base_offset in 0i64..1_000_000,
    ) {
        let mut out = Vec::new();
        let mut b = BatchBuilder::new(&mut out, base_offset, records[0].timestamp);
        for r in &records {
            b.push(r.timestamp, r.key.as_deref(), r.value.as_deref(), &header_refs(r));
        }
        let range = b.finish().expect("non-empty");
        let batch = Batch::new(&out[range]).expect("batch");

        let mut compacted = vec![1, 2, 3];
        let kept = retain_records(&batch, &mut compacted, |i, _| keep_mask[i]).expect("retain");
        let expected: Vec<(i64, &Rec)> = records
            .iter()
            .enumerate()
            .filter(|(i, _)| keep_mask[*i])
            .map(|(i, r)| (base_offset + i as i64, r))
            .collect();
        if expected.is_empty() {
            prop_assert!(!kept);
            prop_assert_eq!(compacted, vec![1, 2, 3]);
            return Ok(());
        }
        prop_assert!(kept);
        prop_assert_eq!(&compacted[..3], &[1, 2, 3]);
        let new = Batch::new(&compacted[3..]).expect("batch");
        prop_assert_eq!(new.as_bytes().len(), compacted.len() - 3);
        new.validate().expect("compacted batch validates");
        let (h, old) = (new.header(), batch.header());
        prop_assert_eq!(h.record_count as usize, expected.len());
        prop_assert_eq!(h.base_offset, old.base_offset);
        prop_assert_eq!(h.last_offset_delta, old.last_offset_delta);
        prop_assert_eq!(h.base_timestamp, old.base_timestamp);
        prop_assert_eq!(h.max_timestamp, old.max_timestamp);

        let mut buf = Bytes::copy_from_slice(new.as_bytes());
        let set = RecordBatchDecoder::decode(&mut buf).expect("kafka-protocol decodes it");
        prop_assert_eq!(set.records.len(), expected.len());
        for (k, (offset, r)) in set.records.iter().zip(&expected) {
            assert_same(k, r, *offset);
        }
    }
}

/// Several batches back to back, as in a segment or a fetch response, from both encoders.
#[test]
fn mixed_concatenation_walks() {
    let mut all = common::sample_batch(3);
    let rec = Rec {
        timestamp: 5,
        key: Some(b"k".to_vec()),
        value: None,
        headers: vec![],
    };
    let krecords = vec![to_krecord(&rec, 3, 3, (-1, -1, -1), 0)];
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &krecords, &options).expect("encode");
    all.extend_from_slice(&buf);
    all.extend_from_slice(&common::sample_batch(2));

    let batches: Vec<Batch<'_>> = Batches::new(&all).map(|b| b.expect("batch")).collect();
    assert_eq!(batches.len(), 3);
    for b in &batches {
        b.validate().expect("valid");
    }
    let mut copy = Bytes::copy_from_slice(&all);
    let sets = RecordBatchDecoder::decode_all(&mut copy).expect("kafka-protocol decodes all");
    assert_eq!(sets.len(), 3);
}
