//! Writing batches: an encoder that appends to a caller's buffer, and the compaction rewrite.

use std::ops::Range;

use crate::RecordError;
use crate::batch::{
    ATTRIBUTES_AT, BASE_OFFSET_AT, BASE_SEQUENCE_AT, BASE_TIMESTAMP_AT, BATCH_LENGTH_AT, Batch,
    HEADER_LEN, LAST_OFFSET_DELTA_AT, LEADER_EPOCH_AT, LOG_OVERHEAD, MAGIC, MAGIC_AT,
    MAX_TIMESTAMP_AT, PRODUCER_EPOCH_AT, PRODUCER_ID_AT, RECORD_COUNT_AT, update_crc,
};
use crate::record::Record;
use crate::varint::{varint_len, varlong_len, write_varint, write_varlong};

/// Kafka's "none" for producer id, epoch, sequence and leader epoch.
const NONE: i32 = -1;

/// Encodes one uncompressed batch at the end of a caller's `Vec<u8>`, with no allocation per
/// record (only `out` grows).
///
/// Dropping the builder without [`finish`](BatchBuilder::finish) removes the partial batch from
/// `out`.
///
/// # Panics
/// The push methods panic on caller bugs, never on data: a key, value or record longer than
/// `i32::MAX` bytes, more than `i32::MAX` headers, or offset deltas that do not increase.
#[must_use = "a batch is only complete once `finish` is called"]
#[derive(Debug)]
pub struct BatchBuilder<'o> {
    out: &'o mut Vec<u8>,
    start: usize,
    base_offset: i64,
    base_timestamp: i64,
    max_timestamp: i64,
    partition_leader_epoch: i32,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    count: usize,
    last_delta: Option<i32>,
    finished: bool,
}

impl<'o> BatchBuilder<'o> {
    /// Starts a batch at the end of `out`; `base_offset` is usually 0 (the broker assigns
    /// offsets) and `base_timestamp` the timestamp of the first record.
    ///
    /// Producer fields default to -1 (not idempotent), the leader epoch to -1, attributes to 0
    /// (uncompressed, CreateTime, not transactional).
    pub fn new(out: &'o mut Vec<u8>, base_offset: i64, base_timestamp: i64) -> Self {
        let start = out.len();
        out.resize(start + HEADER_LEN, 0);
        BatchBuilder {
            out,
            start,
            base_offset,
            base_timestamp,
            max_timestamp: base_timestamp,
            partition_leader_epoch: NONE,
            producer_id: i64::from(NONE),
            producer_epoch: NONE as i16,
            base_sequence: NONE,
            count: 0,
            last_delta: None,
            finished: false,
        }
    }

    /// Sets the idempotent producer fields (default -1, -1, -1).
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Sets the partition leader epoch (default -1; the broker usually stamps it on append).
    pub fn partition_leader_epoch(mut self, epoch: i32) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Appends a record with the next offset delta (0, 1, 2, ...).
    pub fn push(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
    ) {
        let delta = match self.last_delta {
            None => 0,
            Some(last) => last.checked_add(1).expect("offset delta overflows i32"),
        };
        self.push_with_delta(delta, timestamp, key, value, headers);
    }

    /// Appends a record with an explicit offset delta, which must be at least 0 and greater
    /// than the previous one; for rebuilding batches with gaps.
    pub fn push_with_delta(
        &mut self,
        offset_delta: i32,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&[u8], Option<&[u8]>)],
    ) {
        assert!(offset_delta >= 0, "offset delta {offset_delta} is negative");
        if let Some(last) = self.last_delta {
            assert!(
                offset_delta > last,
                "offset delta {offset_delta} does not follow {last}"
            );
        }
        let timestamp_delta = timestamp.wrapping_sub(self.base_timestamp);
        let key_len = nullable_len(key);
        let value_len = nullable_len(value);
        let headers_count = len_i32(headers.len(), "header count");

        let mut body = 1 // attributes
            + varlong_len(timestamp_delta)
            + varint_len(offset_delta)
            + varint_len(key_len)
            + key.map_or(0, <[u8]>::len)
            + varint_len(value_len)
            + value.map_or(0, <[u8]>::len)
            + varint_len(headers_count);
        for (k, v) in headers {
            body += varint_len(len_i32(k.len(), "header key"))
                + k.len()
                + varint_len(nullable_len(*v))
                + v.map_or(0, <[u8]>::len);
        }
        let body = len_i32(body, "record");

        let out = &mut *self.out;
        out.reserve(varint_len(body) + body as usize);
        write_varint(out, body);
        out.push(0); // attributes
        write_varlong(out, timestamp_delta);
        write_varint(out, offset_delta);
        write_nullable(out, key_len, key);
        write_nullable(out, value_len, value);
        write_varint(out, headers_count);
        for (k, v) in headers {
            write_varint(out, k.len() as i32);
            out.extend_from_slice(k);
            write_nullable(out, nullable_len(*v), *v);
        }

        self.count += 1;
        self.last_delta = Some(offset_delta);
        if self.count == 1 || timestamp > self.max_timestamp {
            self.max_timestamp = timestamp;
        }
    }

    /// Records pushed so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no record was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of the batch so far, header included.
    pub fn encoded_len(&self) -> usize {
        self.out.len() - self.start
    }

    /// Writes the header (length, lastOffsetDelta, max timestamp, count, CRC) and returns the
    /// range of `out` holding the batch, or `None` (with `out` as it was) if no record was
    /// pushed.
    ///
    /// # Panics
    /// If the batch is longer than `i32::MAX` bytes.
    #[must_use = "the range locates the batch in `out`"]
    pub fn finish(mut self) -> Option<Range<usize>> {
        self.finished = true;
        let Some(last_delta) = self.last_delta else {
            self.out.truncate(self.start);
            return None;
        };
        let start = self.start;
        let end = self.out.len();
        let batch_length = len_i32(end - start - LOG_OVERHEAD, "batch");
        let record_count = len_i32(self.count, "record count");
        let attributes: i16 = 0;
        let batch = &mut self.out[start..end];
        put(batch, BASE_OFFSET_AT, &self.base_offset.to_be_bytes());
        put(batch, BATCH_LENGTH_AT, &batch_length.to_be_bytes());
        put(
            batch,
            LEADER_EPOCH_AT,
            &self.partition_leader_epoch.to_be_bytes(),
        );
        put(batch, MAGIC_AT, &MAGIC.to_be_bytes());
        put(batch, ATTRIBUTES_AT, &attributes.to_be_bytes());
        put(batch, LAST_OFFSET_DELTA_AT, &last_delta.to_be_bytes());
        put(batch, BASE_TIMESTAMP_AT, &self.base_timestamp.to_be_bytes());
        put(batch, MAX_TIMESTAMP_AT, &self.max_timestamp.to_be_bytes());
        put(batch, PRODUCER_ID_AT, &self.producer_id.to_be_bytes());
        put(batch, PRODUCER_EPOCH_AT, &self.producer_epoch.to_be_bytes());
        put(batch, BASE_SEQUENCE_AT, &self.base_sequence.to_be_bytes());
        put(batch, RECORD_COUNT_AT, &record_count.to_be_bytes());
        update_crc(batch);
        Some(start..end)
    }
}

impl Drop for BatchBuilder<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.out.truncate(self.start);
        }
    }
}

fn put(batch: &mut [u8], at: usize, bytes: &[u8]) {
    batch[at..at + bytes.len()].copy_from_slice(bytes);
}

fn len_i32(len: usize, what: &str) -> i32 {
    match i32::try_from(len) {
        Ok(len) => len,
        Err(_) => panic!("{what} length {len} exceeds i32::MAX"),
    }
}

fn nullable_len(bytes: Option<&[u8]>) -> i32 {
    bytes.map_or(-1, |b| len_i32(b.len(), "key or value"))
}

fn write_nullable(out: &mut Vec<u8>, len: i32, bytes: Option<&[u8]>) {
    write_varint(out, len);
    if let Some(bytes) = bytes {
        out.extend_from_slice(bytes);
    }
}

/// Rewrites `batch` keeping only the records for which `keep(index, &record)` is true.
///
/// Their raw bytes are copied verbatim into `out` under a copy of the original header (same base
/// offset, base timestamp, max timestamp, lastOffsetDelta, producer fields and attributes), with
/// recordCount, batchLength and CRC updated. Offsets keep their gaps. Returns `Ok(false)` and
/// writes nothing if no record is kept; on `Err` nothing is written either. Used by log
/// compaction.
///
/// Errors with [`RecordError::Compressed`] for compressed batches and with the record walk's
/// error if the batch is malformed; it does not check the CRC of the input.
pub fn retain_records(
    batch: &Batch<'_>,
    out: &mut Vec<u8>,
    mut keep: impl FnMut(usize, &Record<'_>) -> bool,
) -> Result<bool, RecordError> {
    let records = batch.records()?;
    let bytes = batch.as_bytes();
    let start = out.len();
    out.extend_from_slice(bytes.get(..HEADER_LEN).unwrap_or_default());
    let mut kept: usize = 0;
    for (index, item) in records.enumerate() {
        let record = match item {
            Ok(record) => record,
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        };
        if keep(index, &record) {
            out.extend_from_slice(record.raw);
            kept += 1;
        }
    }
    if kept == 0 {
        out.truncate(start);
        return Ok(false);
    }
    let end = out.len();
    // Both fit: the output is no longer than the input batch.
    let batch_length = (end - start - LOG_OVERHEAD) as i32;
    let record_count = kept as i32;
    let rewritten = &mut out[start..end];
    put(rewritten, BATCH_LENGTH_AT, &batch_length.to_be_bytes());
    put(rewritten, RECORD_COUNT_AT, &record_count.to_be_bytes());
    update_crc(rewritten);
    Ok(true)
}
