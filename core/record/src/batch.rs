//! The batch header, a zero-copy view of one batch, and a walker over concatenated batches.
//!
//! # Format: Kafka RecordBatch v2 (magic 2)
//!
//! This is Kafka's on-disk and on-wire format since Kafka 0.11, and Sluice's segment format.
//! All integers are big-endian two's complement.
//!
//! | offset | size | field                  | notes                                                   |
//! |-------:|-----:|------------------------|---------------------------------------------------------|
//! |      0 |    8 | `baseOffset`           | offset of the first record; assigned by the broker      |
//! |      8 |    4 | `batchLength`          | bytes after this field: total length - 12               |
//! |     12 |    4 | `partitionLeaderEpoch` | leader epoch that appended the batch                    |
//! |     16 |    1 | `magic`                | always 2                                                |
//! |     17 |    4 | `crc`                  | CRC-32C (Castagnoli) of bytes 21 to the end of the batch |
//! |     21 |    2 | `attributes`           | bits 0-2 codec, 3 LogAppendTime, 4 transactional, 5 control, 6 delete horizon |
//! |     23 |    4 | `lastOffsetDelta`      | last offset - base offset (kept when compaction drops records) |
//! |     27 |    8 | `baseTimestamp`        | timestamps of records are deltas from it                |
//! |     35 |    8 | `maxTimestamp`         | largest record timestamp                                |
//! |     43 |    8 | `producerId`           | -1 if not idempotent                                    |
//! |     51 |    2 | `producerEpoch`        | -1 if not idempotent                                    |
//! |     53 |    4 | `baseSequence`         | -1 if not idempotent                                    |
//! |     57 |    4 | `recordCount`          | records that follow                                     |
//! |     61 |    … | records                | possibly compressed as one block by the codec           |
//!
//! The CRC does not cover `baseOffset`, `batchLength`, `partitionLeaderEpoch` or `magic`, so the
//! broker rewrites the base offset and leader epoch in place without recomputing it
//! ([`set_base_offset`], [`set_partition_leader_epoch`]).
//!
//! Each record (uncompressed) is laid out in [`crate::record`].

use std::fmt;

use crate::RecordError;
use crate::record::Records;

/// The magic byte of RecordBatch v2, the only format this crate reads and writes.
pub const MAGIC: i8 = 2;
/// Bytes before the first record.
pub const HEADER_LEN: usize = 61;
/// Bytes of `baseOffset` and `batchLength`, which `batchLength` does not count.
pub const LOG_OVERHEAD: usize = 12;
/// The shortest possible batch: a header with no record bytes.
pub const MIN_BATCH_LEN: usize = HEADER_LEN;

pub(crate) const BASE_OFFSET_AT: usize = 0;
pub(crate) const BATCH_LENGTH_AT: usize = 8;
pub(crate) const LEADER_EPOCH_AT: usize = 12;
pub(crate) const MAGIC_AT: usize = 16;
pub(crate) const CRC_AT: usize = 17;
/// First byte covered by the CRC.
pub(crate) const ATTRIBUTES_AT: usize = 21;
pub(crate) const LAST_OFFSET_DELTA_AT: usize = 23;
pub(crate) const BASE_TIMESTAMP_AT: usize = 27;
pub(crate) const MAX_TIMESTAMP_AT: usize = 35;
pub(crate) const PRODUCER_ID_AT: usize = 43;
pub(crate) const PRODUCER_EPOCH_AT: usize = 51;
pub(crate) const BASE_SEQUENCE_AT: usize = 53;
pub(crate) const RECORD_COUNT_AT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
const TRANSACTIONAL_BIT: i16 = 1 << 4;
const CONTROL_BIT: i16 = 1 << 5;
/// Highest codec number Kafka defines (zstd).
const MAX_CODEC: u8 = 4;

/// The fixed 61-byte header of a batch, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes after the `batchLength` field (total length - 12).
    pub batch_length: i32,
    /// Leader epoch of the partition leader that appended the batch.
    pub partition_leader_epoch: i32,
    /// Format version; always [`MAGIC`] once parsed.
    pub magic: i8,
    /// Stored CRC-32C of bytes 21 to the end.
    pub crc: u32,
    /// Codec, timestamp type, transactional and control flags.
    pub attributes: i16,
    /// Last offset - base offset.
    pub last_offset_delta: i32,
    /// Timestamp that record timestamp deltas are relative to.
    pub base_timestamp: i64,
    /// Largest record timestamp.
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Idempotent producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records declared by the header (not trusted until validated).
    pub record_count: i32,
}

impl BatchHeader {
    /// Parses the first [`HEADER_LEN`] bytes; checks only that they are present, magic == 2 and
    /// batch_length >= HEADER_LEN - 12. No CRC.
    pub fn parse(bytes: &[u8]) -> Result<BatchHeader, RecordError> {
        check_prefix(bytes)?;
        let h: &[u8; HEADER_LEN] = bytes.first_chunk().ok_or(RecordError::Truncated {
            needed: HEADER_LEN,
            available: bytes.len(),
        })?;
        Ok(BatchHeader {
            base_offset: i64::from_be_bytes(field(h, BASE_OFFSET_AT)),
            batch_length: i32::from_be_bytes(field(h, BATCH_LENGTH_AT)),
            partition_leader_epoch: i32::from_be_bytes(field(h, LEADER_EPOCH_AT)),
            magic: i8::from_be_bytes(field(h, MAGIC_AT)),
            crc: u32::from_be_bytes(field(h, CRC_AT)),
            attributes: i16::from_be_bytes(field(h, ATTRIBUTES_AT)),
            last_offset_delta: i32::from_be_bytes(field(h, LAST_OFFSET_DELTA_AT)),
            base_timestamp: i64::from_be_bytes(field(h, BASE_TIMESTAMP_AT)),
            max_timestamp: i64::from_be_bytes(field(h, MAX_TIMESTAMP_AT)),
            producer_id: i64::from_be_bytes(field(h, PRODUCER_ID_AT)),
            producer_epoch: i16::from_be_bytes(field(h, PRODUCER_EPOCH_AT)),
            base_sequence: i32::from_be_bytes(field(h, BASE_SEQUENCE_AT)),
            record_count: i32::from_be_bytes(field(h, RECORD_COUNT_AT)),
        })
    }

    /// Total bytes of the batch: `batch_length + 12`.
    pub fn total_len(&self) -> usize {
        usize::try_from(self.batch_length).unwrap_or(0) + LOG_OVERHEAD
    }

    /// Offset of the last record the batch covers: `base_offset + last_offset_delta`.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .wrapping_add(i64::from(self.last_offset_delta))
    }

    /// The offset right after this batch: `last_offset + 1`.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }

    /// Compression codec: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> u8 {
        (self.attributes & COMPRESSION_MASK) as u8
    }

    /// Whether record timestamps are the broker's append time rather than the producer's.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }

    /// Whether the batch holds control records (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }
}

/// Copies `N` bytes at `at` out of a header; every caller passes a constant in range.
fn field<const N: usize>(h: &[u8; HEADER_LEN], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&h[at..at + N]);
    out
}

/// Checks what the bytes present allow: magic (if 17 bytes are there), then batchLength (if 12
/// are), then that a whole header is there.
fn check_prefix(bytes: &[u8]) -> Result<(), RecordError> {
    check_partial_prefix(bytes)?;
    if bytes.len() < HEADER_LEN {
        return Err(RecordError::Truncated {
            needed: HEADER_LEN,
            available: bytes.len(),
        });
    }
    Ok(())
}

/// Like [`check_prefix`] but accepts a short prefix whose present fields are sound.
fn check_partial_prefix(bytes: &[u8]) -> Result<(), RecordError> {
    if let Some(&magic) = bytes.get(MAGIC_AT) {
        let magic = magic as i8;
        if magic != MAGIC {
            return Err(RecordError::BadMagic(magic));
        }
    }
    if let Some(len) = bytes.get(BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4) {
        let mut raw = [0u8; 4];
        raw.copy_from_slice(len);
        let batch_length = i32::from_be_bytes(raw);
        if batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(RecordError::BadLength(batch_length));
        }
    }
    Ok(())
}

/// A view of exactly one whole batch (slice length == total_len). Construction checks the
/// header and the length only; call [`Batch::validate`] before trusting anything else.
#[derive(Clone, Copy)]
pub struct Batch<'a> {
    bytes: &'a [u8],
    header: BatchHeader,
}

impl fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("len", &self.bytes.len())
            .field("header", &self.header)
            .finish()
    }
}

impl<'a> Batch<'a> {
    /// Views the batch at the start of `bytes`, which must hold at least one whole batch. The
    /// view covers exactly `total_len` bytes; trailing bytes are not included.
    pub fn new(bytes: &'a [u8]) -> Result<Batch<'a>, RecordError> {
        let header = BatchHeader::parse(bytes)?;
        let total = header.total_len();
        let bytes = bytes.get(..total).ok_or(RecordError::Truncated {
            needed: total,
            available: bytes.len(),
        })?;
        Ok(Batch { bytes, header })
    }

    /// The decoded header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The batch's bytes, exactly `header().total_len()` of them.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Checks the stored CRC-32C against bytes 21 to the end.
    pub fn verify_crc(&self) -> Result<(), RecordError> {
        let computed = crc32c::crc32c(self.bytes.get(ATTRIBUTES_AT..).unwrap_or_default());
        if computed == self.header.crc {
            Ok(())
        } else {
            Err(RecordError::CrcMismatch {
                stored: self.header.crc,
                computed,
            })
        }
    }

    /// Full validation of untrusted bytes; allocates nothing.
    ///
    /// Checks, in order: the CRC; `recordCount >= 1`; `lastOffsetDelta >= 0` and
    /// `>= recordCount - 1` (equality is not required: compaction leaves gaps); a known codec.
    /// For uncompressed batches it then walks every record, checking that each length and
    /// count fits in the bytes present, that each record's fields end exactly at its length,
    /// that offset deltas strictly increase and stay within `0..=lastOffsetDelta`, that the walk
    /// ends exactly at the batch end, and that it found `recordCount` records.
    ///
    /// Compressed batches are checked up to the codec only: their records are not walked.
    ///
    /// Header keys are not checked to be UTF-8.
    pub fn validate(&self) -> Result<(), RecordError> {
        self.verify_crc()?;
        let h = &self.header;
        if h.record_count < 1 {
            return Err(RecordError::BadRecordCount(h.record_count));
        }
        if h.last_offset_delta < 0 || h.last_offset_delta < h.record_count - 1 {
            return Err(RecordError::BadOffsetDelta {
                last_offset_delta: h.last_offset_delta,
                record_count: h.record_count,
            });
        }
        match h.compression() {
            0 => {}
            c if c <= MAX_CODEC => return Ok(()),
            c => return Err(RecordError::UnknownCompression(c)),
        }
        let mut previous_delta: Option<i32> = None;
        let mut records = self.records()?;
        loop {
            let position = records.position();
            let Some(item) = records.next() else { break };
            let record = item?;
            let delta = record.offset_delta;
            let in_order = previous_delta.is_none_or(|prev| delta > prev);
            if !in_order || delta < 0 || delta > h.last_offset_delta {
                return Err(RecordError::Malformed {
                    position,
                    reason: "record offset delta out of order or outside 0..=lastOffsetDelta",
                });
            }
            previous_delta = Some(delta);
        }
        Ok(())
    }

    /// Iterates the records (uncompressed batches only; [`RecordError::Compressed`] otherwise).
    ///
    /// Each item is a `Result`; after the first `Err` the iterator ends. Iteration never
    /// allocates and is bounded by the bytes present, whatever `recordCount` says: if the bytes
    /// hold fewer or more records than declared, the last item is
    /// [`RecordError::CountMismatch`]. It does not check the CRC: use [`Batch::validate`] first
    /// on untrusted bytes.
    pub fn records(&self) -> Result<Records<'a>, RecordError> {
        match self.header.compression() {
            0 => Ok(Records::new(self.bytes, self.header.record_count)),
            c => Err(RecordError::Compressed(c)),
        }
    }
}

/// Walks concatenated batches: a log segment, a fetch response, a produce body.
///
/// Yields `Ok(Batch)` per whole batch (checked as by [`Batch::new`]: header and length only). A
/// trailing partial batch ends iteration and is reported by [`Batches::remainder`]; a
/// structurally bad header (wrong magic, impossible length) yields one `Err` and then ends, with
/// [`Batches::position`] at the bad batch.
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    bytes: &'a [u8],
    position: usize,
    done: bool,
}

impl<'a> Batches<'a> {
    /// Starts walking at the first byte of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Batches {
            bytes,
            position: 0,
            done: false,
        }
    }

    /// Offset in the input of the next batch (after an `Err`: of the bad batch).
    pub fn position(&self) -> usize {
        self.position
    }

    /// Bytes not consumed: empty after a clean end, else a partial or bad batch and all after it.
    pub fn remainder(&self) -> &'a [u8] {
        self.bytes.get(self.position..).unwrap_or_default()
    }
}

impl<'a> Iterator for Batches<'a> {
    type Item = Result<Batch<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let rest = self.remainder();
        if rest.is_empty() {
            self.done = true;
            return None;
        }
        if let Err(e) = check_partial_prefix(rest) {
            self.done = true;
            return Some(Err(e));
        }
        match Batch::new(rest) {
            Ok(batch) => {
                self.position += batch.as_bytes().len();
                Some(Ok(batch))
            }
            Err(RecordError::Truncated { .. }) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Overwrites `baseOffset` in place. The CRC does not cover it, so it stays valid.
///
/// # Panics
/// If `batch` is shorter than [`HEADER_LEN`]; pass a batch already checked by [`Batch::new`].
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    assert!(
        batch.len() >= HEADER_LEN,
        "set_base_offset: not a whole batch header"
    );
    batch[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Overwrites `partitionLeaderEpoch` in place. The CRC does not cover it, so it stays valid.
///
/// # Panics
/// If `batch` is shorter than [`HEADER_LEN`]; pass a batch already checked by [`Batch::new`].
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    assert!(
        batch.len() >= HEADER_LEN,
        "set_partition_leader_epoch: not a whole batch header"
    );
    batch[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Recomputes and stores the CRC over bytes 21 to the end of `batch` (needed after changing
/// anything at byte 21 or later). `batch` must be exactly one batch.
///
/// # Panics
/// If `batch` is shorter than [`HEADER_LEN`].
pub fn update_crc(batch: &mut [u8]) {
    assert!(
        batch.len() >= HEADER_LEN,
        "update_crc: not a whole batch header"
    );
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_AT..]);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}
