//! Helpers shared by the storage tests: building batches and decoding what a log returns.
#![allow(dead_code)]

use sluice_record::{BatchBuilder, Batches};

/// One record as a test sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub offset: u64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// What to put in a batch (offsets are assigned by the log).
#[derive(Debug, Clone)]
pub struct NewRec {
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl NewRec {
    pub fn kv(timestamp: i64, key: &str, value: &str) -> NewRec {
        NewRec {
            timestamp,
            key: Some(key.as_bytes().to_vec()),
            value: Some(value.as_bytes().to_vec()),
            headers: vec![],
        }
    }
}

/// Encodes records as one batch (base offset 0; the log assigns the real one).
pub fn batch(records: &[NewRec]) -> Vec<u8> {
    let mut out = Vec::new();
    let base_ts = records.first().map_or(0, |r| r.timestamp);
    let mut b = BatchBuilder::new(&mut out, 0, base_ts);
    for r in records {
        let headers: Vec<(&[u8], Option<&[u8]>)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
            .collect();
        b.push(r.timestamp, r.key.as_deref(), r.value.as_deref(), &headers);
    }
    b.finish().expect("non-empty batch");
    out
}

/// A batch of `n` records with values of `value_len` bytes.
pub fn filler(n: usize, value_len: usize, timestamp: i64) -> Vec<u8> {
    let recs: Vec<NewRec> = (0..n)
        .map(|i| NewRec {
            timestamp: timestamp + i as i64,
            key: Some(format!("k{i}").into_bytes()),
            value: Some(vec![b'x'; value_len]),
            headers: vec![],
        })
        .collect();
    batch(&recs)
}

/// Decodes every record of concatenated batches, checking each batch.
pub fn decode(bytes: &[u8]) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut batches = Batches::new(bytes);
    for b in batches.by_ref() {
        let b = b.expect("whole batch");
        b.validate().expect("valid batch");
        let h = *b.header();
        for r in b.records().expect("uncompressed") {
            let r = r.expect("record");
            out.push(Rec {
                offset: r.offset(h.base_offset) as u64,
                timestamp: r.timestamp(h.base_timestamp),
                key: r.key.map(<[u8]>::to_vec),
                value: r.value.map(<[u8]>::to_vec),
                headers: r
                    .headers()
                    .map(|h| h.expect("header"))
                    .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                    .collect(),
            });
        }
    }
    assert!(batches.remainder().is_empty(), "reads return whole batches");
    out
}

/// Reads the whole log from its start through `bound`, following `next_offset`.
pub fn read_all(log: &sluice_storage::Log, bound: sluice_storage::ReadBound) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut at = log.log_start_offset();
    let mut buf = Vec::new();
    loop {
        let info = log.read_into(at, 64 * 1024, bound, &mut buf).expect("read");
        if info.bytes == 0 {
            break;
        }
        assert!(info.next_offset > at, "reads make progress");
        out.extend(decode(&buf).into_iter().filter(|r| r.offset >= at));
        at = info.next_offset;
    }
    out
}
