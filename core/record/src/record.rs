//! Records inside an uncompressed batch, read in place.
//!
//! # Format: Kafka record v2 (inside a magic 2 batch)
//!
//! Varints are zigzag-encoded ([`crate::varint`]); `varint` is at most 5 bytes, `varlong` 10.
//!
//! | field            | type            | notes                                              |
//! |------------------|-----------------|----------------------------------------------------|
//! | `length`         | varint          | bytes of the record after this field               |
//! | `attributes`     | i8              | unused, 0                                          |
//! | `timestampDelta` | varlong         | timestamp - batch `baseTimestamp`                  |
//! | `offsetDelta`    | varint          | offset - batch `baseOffset`                        |
//! | `keyLength`      | varint          | -1 for a null key                                  |
//! | `key`            | bytes           |                                                    |
//! | `valueLength`    | varint          | -1 for a null value                                |
//! | `value`          | bytes           |                                                    |
//! | `headersCount`   | varint          | >= 0                                               |
//! | headers          | repeated        | `keyLength` varint (>= 0), key (UTF-8 by convention), `valueLength` varint (-1 null), value |
//!
//! Every length and count is checked against the bytes present before it is used, and a
//! record's fields must end exactly where its `length` says.

use crate::RecordError;
use crate::batch::HEADER_LEN;
use crate::varint::{read_varint, read_varlong};

/// One record, borrowed from its batch.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Offset - the batch's base offset.
    pub offset_delta: i32,
    /// Timestamp - the batch's base timestamp.
    pub timestamp_delta: i64,
    /// Record attributes (unused by Kafka, normally 0).
    pub attributes: i8,
    /// The key, `None` if null.
    pub key: Option<&'a [u8]>,
    /// The value, `None` if null (a tombstone in a compacted topic).
    pub value: Option<&'a [u8]>,
    /// Raw bytes of this whole record including its length varint (so compaction can copy it
    /// verbatim).
    pub raw: &'a [u8],
    headers_count: u32,
    headers_bytes: &'a [u8],
}

impl<'a> Record<'a> {
    /// The record's headers, in order: `(key, value)` pairs, `value` `None` if null.
    ///
    /// Headers were checked when the record was parsed, so items are always `Ok` for records
    /// from [`Records`]; error positions would be relative to the start of the headers.
    pub fn headers(&self) -> Headers<'a> {
        Headers {
            cursor: Cursor::new(self.headers_bytes, 0, self.headers_bytes.len()),
            remaining: self.headers_count,
        }
    }

    /// Number of headers.
    pub fn headers_len(&self) -> usize {
        self.headers_count as usize
    }

    /// Absolute offset, given the batch's base offset.
    pub fn offset(&self, base_offset: i64) -> i64 {
        base_offset.wrapping_add(i64::from(self.offset_delta))
    }

    /// Absolute timestamp, given the batch's base timestamp.
    pub fn timestamp(&self, base_timestamp: i64) -> i64 {
        base_timestamp.wrapping_add(self.timestamp_delta)
    }
}

/// Iterator over the records of an uncompressed batch; see [`crate::Batch::records`].
#[derive(Debug, Clone)]
pub struct Records<'a> {
    batch: &'a [u8],
    position: usize,
    declared: i32,
    found: usize,
    done: bool,
}

impl<'a> Records<'a> {
    pub(crate) fn new(batch: &'a [u8], declared: i32) -> Self {
        Records {
            batch,
            position: HEADER_LEN.min(batch.len()),
            declared,
            found: 0,
            done: false,
        }
    }

    /// Byte offset, from the start of the batch, of the next record.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Counts the records from the current position to the end, for an error report.
    fn count_rest(&self) -> Result<usize, RecordError> {
        let mut position = self.position;
        let mut count = 0;
        while position < self.batch.len() {
            let (_, next) = parse_record(self.batch, position)?;
            position = next;
            count += 1;
        }
        Ok(count)
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let declared = i64::from(self.declared);
        if self.position >= self.batch.len() {
            self.done = true;
            if self.found as i64 == declared {
                return None;
            }
            return Some(Err(RecordError::CountMismatch {
                declared: self.declared,
                found: self.found,
            }));
        }
        if self.found as i64 >= declared {
            self.done = true;
            return Some(match self.count_rest() {
                Ok(rest) => Err(RecordError::CountMismatch {
                    declared: self.declared,
                    found: self.found + rest,
                }),
                Err(e) => Err(e),
            });
        }
        match parse_record(self.batch, self.position) {
            Ok((record, next)) => {
                self.position = next;
                self.found += 1;
                Some(Ok(record))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (0, Some(0))
        } else {
            // Every record takes at least 7 bytes, whatever the header claims; +1 for an error.
            let left = self.batch.len().saturating_sub(self.position);
            (0, Some(left / MIN_RECORD_LEN + 1))
        }
    }
}

impl std::iter::FusedIterator for Records<'_> {}

/// Smallest encoded record: length, attributes, timestampDelta, offsetDelta, keyLength,
/// valueLength and headersCount, one byte each.
pub(crate) const MIN_RECORD_LEN: usize = 7;
/// Smallest encoded header: keyLength 0 and valueLength -1, one byte each.
const MIN_HEADER_LEN: usize = 2;

/// Iterator over a record's headers; see [`Record::headers`].
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    cursor: Cursor<'a>,
    remaining: u32,
}

impl<'a> Iterator for Headers<'a> {
    type Item = Result<(&'a [u8], Option<&'a [u8]>), RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let item = read_header(&mut self.cursor);
        self.remaining = if item.is_ok() { self.remaining - 1 } else { 0 };
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining as usize))
    }
}

impl std::iter::FusedIterator for Headers<'_> {}

/// Parses the record starting at byte `start` of `batch`; returns it and the position after it.
pub(crate) fn parse_record(batch: &[u8], start: usize) -> Result<(Record<'_>, usize), RecordError> {
    let mut outer = Cursor::new(batch, start, batch.len());
    let length = outer.varint()?;
    let Ok(length) = usize::try_from(length) else {
        return Err(malformed(start, "negative record length"));
    };
    let body_start = outer.position;
    let end = match body_start.checked_add(length) {
        Some(end) if end <= batch.len() => end,
        _ => {
            return Err(malformed(
                start,
                "record length runs past the end of the batch",
            ));
        }
    };
    let mut c = Cursor::new(batch, body_start, end);
    let attributes = c.i8()?;
    let timestamp_delta = c.varlong()?;
    let offset_delta = c.varint()?;
    let key = c.nullable_bytes("record key length below -1")?;
    let value = c.nullable_bytes("record value length below -1")?;
    let count_at = c.position;
    let headers_count = c.varint()?;
    let Ok(headers_count) = u32::try_from(headers_count) else {
        return Err(malformed(count_at, "negative record header count"));
    };
    if headers_count as usize > c.remaining() / MIN_HEADER_LEN {
        return Err(malformed(
            count_at,
            "record header count exceeds the record's bytes",
        ));
    }
    let headers_start = c.position;
    for _ in 0..headers_count {
        read_header(&mut c)?;
    }
    if c.position != end {
        return Err(malformed(
            c.position,
            "record has bytes left after its headers",
        ));
    }
    let record = Record {
        offset_delta,
        timestamp_delta,
        attributes,
        key,
        value,
        raw: batch.get(start..end).unwrap_or_default(),
        headers_count,
        headers_bytes: batch.get(headers_start..end).unwrap_or_default(),
    };
    Ok((record, end))
}

fn read_header<'a>(c: &mut Cursor<'a>) -> Result<(&'a [u8], Option<&'a [u8]>), RecordError> {
    let key_at = c.position;
    let key = match c.nullable_bytes("record header key length below -1")? {
        Some(key) => key,
        None => return Err(malformed(key_at, "record header key is null")),
    };
    let value = c.nullable_bytes("record header value length below -1")?;
    Ok((key, value))
}

fn malformed(position: usize, reason: &'static str) -> RecordError {
    RecordError::Malformed { position, reason }
}

/// Reads forward through `buf[position..end]`; error positions are indexes into `buf`.
#[derive(Debug, Clone)]
struct Cursor<'a> {
    buf: &'a [u8],
    position: usize,
    end: usize,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8], position: usize, end: usize) -> Self {
        let end = end.min(buf.len());
        Cursor {
            buf,
            position: position.min(end),
            end,
        }
    }

    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.position..self.end).unwrap_or_default()
    }

    fn remaining(&self) -> usize {
        self.end - self.position
    }

    fn i8(&mut self) -> Result<i8, RecordError> {
        match self.rest().first() {
            Some(&b) => {
                self.position += 1;
                Ok(b as i8)
            }
            None => Err(malformed(
                self.position,
                "record ends inside its attributes",
            )),
        }
    }

    fn varint(&mut self) -> Result<i32, RecordError> {
        let (v, n) = read_varint(self.rest()).map_err(|e| e.at(self.position))?;
        self.position += n;
        Ok(v)
    }

    fn varlong(&mut self) -> Result<i64, RecordError> {
        let (v, n) = read_varlong(self.rest()).map_err(|e| e.at(self.position))?;
        self.position += n;
        Ok(v)
    }

    /// Reads a varint length then that many bytes; -1 is null, below -1 is `negative_reason`.
    fn nullable_bytes(
        &mut self,
        negative_reason: &'static str,
    ) -> Result<Option<&'a [u8]>, RecordError> {
        let at = self.position;
        let len = self.varint()?;
        if len == -1 {
            return Ok(None);
        }
        let Ok(len) = usize::try_from(len) else {
            return Err(malformed(at, negative_reason));
        };
        match self.rest().get(..len) {
            Some(bytes) => {
                self.position += len;
                Ok(Some(bytes))
            }
            None => Err(malformed(at, "length runs past the end of the record")),
        }
    }
}
