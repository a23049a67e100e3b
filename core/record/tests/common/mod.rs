//! Helpers shared by the integration tests: hand-made batches with valid CRCs.

#![allow(dead_code)]

use sluice_record::varint::{write_varint, write_varlong};
use sluice_record::{BatchBuilder, HEADER_LEN, LOG_OVERHEAD, update_crc};

/// A batch header (magic 2, uncompressed, producer -1) around `records`, with the given record
/// count and lastOffsetDelta, a correct batchLength and a valid CRC.
pub fn raw_batch(records: &[u8], record_count: i32, last_offset_delta: i32) -> Vec<u8> {
    let mut b = vec![0u8; HEADER_LEN];
    b.extend_from_slice(records);
    let batch_length = (b.len() - LOG_OVERHEAD) as i32;
    b[0..8].copy_from_slice(&0i64.to_be_bytes());
    b[8..12].copy_from_slice(&batch_length.to_be_bytes());
    b[12..16].copy_from_slice(&(-1i32).to_be_bytes());
    b[16] = 2;
    b[21..23].copy_from_slice(&0i16.to_be_bytes());
    b[23..27].copy_from_slice(&last_offset_delta.to_be_bytes());
    b[27..35].copy_from_slice(&1_000i64.to_be_bytes());
    b[35..43].copy_from_slice(&1_000i64.to_be_bytes());
    b[43..51].copy_from_slice(&(-1i64).to_be_bytes());
    b[51..53].copy_from_slice(&(-1i16).to_be_bytes());
    b[53..57].copy_from_slice(&(-1i32).to_be_bytes());
    b[57..61].copy_from_slice(&record_count.to_be_bytes());
    update_crc(&mut b);
    b
}

/// Field values of one hand-encoded record; lengths are written as given, so they can lie.
#[derive(Clone, Copy)]
pub struct RawRecord<'a> {
    pub offset_delta: i32,
    pub key_len: i32,
    pub key: &'a [u8],
    pub value_len: i32,
    pub value: &'a [u8],
    pub headers_count: i32,
    /// Already-encoded header bytes.
    pub headers: &'a [u8],
}

impl Default for RawRecord<'_> {
    fn default() -> Self {
        RawRecord {
            offset_delta: 0,
            key_len: -1,
            key: b"",
            value_len: 1,
            value: b"v",
            headers_count: 0,
            headers: b"",
        }
    }
}

/// Encodes `r` with a correct record length prefix.
pub fn raw_record(r: RawRecord<'_>) -> Vec<u8> {
    let mut body = vec![0u8]; // attributes
    write_varlong(&mut body, 0);
    write_varint(&mut body, r.offset_delta);
    write_varint(&mut body, r.key_len);
    body.extend_from_slice(r.key);
    write_varint(&mut body, r.value_len);
    body.extend_from_slice(r.value);
    write_varint(&mut body, r.headers_count);
    body.extend_from_slice(r.headers);
    let mut out = Vec::new();
    write_varint(&mut out, body.len() as i32);
    out.extend_from_slice(&body);
    out
}

/// A valid batch of `n` small records with headers, built by our encoder.
pub fn sample_batch(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut b = BatchBuilder::new(&mut out, 0, 1_000);
    for i in 0..n {
        let key = format!("key-{i}");
        let value = format!("value-{i}");
        b.push(
            1_000 + i as i64,
            Some(key.as_bytes()),
            if i % 3 == 2 {
                None
            } else {
                Some(value.as_bytes())
            },
            &[(b"h", Some(b"x")), (b"n", None)],
        );
    }
    let range = b.finish().expect("n > 0");
    assert_eq!(range, 0..out.len());
    out
}
