//! A fast reader of the records of an uncompressed RecordBatch v2, for the plugin hot path.
//!
//! `sluice_record::Records` is the reference reader; this one reads the same format with the
//! same bounds (every length and count checked against the bytes present, each record's fields
//! ending exactly at its length, header keys not null), but returns `None` instead of a precise
//! error and decodes one- and two-byte varints without a loop, which is most of them. On `None` the
//! caller asks `sluice_record` for the precise error ([`precise_error`]).

use sluice_record::{Batch, HEADER_LEN, RecordError};

/// One record's fields, borrowed from the batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scanned<'a> {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers_count: u32,
    /// The headers, still in Kafka's encoding.
    pub headers: &'a [u8],
    /// Bytes of the headers in the ABI layout.
    pub headers_len: usize,
}

/// Reads the record at `pos` of `batch`; returns it and the position after it.
#[inline]
pub(crate) fn record(batch: &[u8], pos: usize) -> Option<(Scanned<'_>, usize)> {
    let (length, body) = varint(batch, pos)?;
    let end = body.checked_add(usize::try_from(length).ok()?)?;
    let bytes = batch.get(..end)?;
    // attributes
    let at = body + 1;
    if at > end {
        return None;
    }
    let (timestamp_delta, at) = varlong(bytes, at)?;
    let (offset_delta, at) = varint(bytes, at)?;
    let (key, at) = nullable(bytes, at)?;
    let (value, at) = nullable(bytes, at)?;
    let (count, at) = varint(bytes, at)?;
    let headers_count = u32::try_from(count).ok()?;
    let headers = bytes.get(at..)?;
    let headers_len = if headers_count == 0 {
        if !headers.is_empty() {
            return None;
        }
        0
    } else {
        abi_headers_len(headers, headers_count)?
    };
    Some((
        Scanned {
            offset_delta,
            timestamp_delta,
            key,
            value,
            headers_count,
            headers,
            headers_len,
        },
        end,
    ))
}

/// Checks that `headers` holds exactly `count` headers; returns their ABI length.
fn abi_headers_len(headers: &[u8], count: u32) -> Option<usize> {
    let mut it = KafkaHeaders {
        rest: headers,
        remaining: count,
    };
    let mut len = 0usize;
    for _ in 0..count {
        let (name, value) = it.next()?;
        len += crate::abi::HEADER_ENTRY_LEN + name.len() + value.map_or(0, <[u8]>::len);
    }
    it.rest.is_empty().then_some(len)
}

/// Iterates headers in Kafka's encoding; stops (returns `None`) at the first malformed one.
#[derive(Debug, Clone)]
pub(crate) struct KafkaHeaders<'a> {
    rest: &'a [u8],
    remaining: u32,
}

impl<'a> KafkaHeaders<'a> {
    pub fn new(record: &Scanned<'a>) -> Self {
        KafkaHeaders {
            rest: record.headers,
            remaining: record.headers_count,
        }
    }
}

impl<'a> Iterator for KafkaHeaders<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let (name, at) = nullable(self.rest, 0)?;
        let (value, at) = nullable(self.rest, at)?;
        self.rest = self.rest.get(at..)?;
        self.remaining -= 1;
        Some((name?, value))
    }
}

/// A varint length and that many bytes; -1 is null.
#[inline]
fn nullable(bytes: &[u8], at: usize) -> Option<(Option<&[u8]>, usize)> {
    let (len, at) = varint(bytes, at)?;
    if len == -1 {
        return Some((None, at));
    }
    let end = at.checked_add(usize::try_from(len).ok()?)?;
    Some((Some(bytes.get(at..end)?), end))
}

/// A zigzag varint at `at`; returns it and the position after it.
#[inline]
fn varint(bytes: &[u8], at: usize) -> Option<(i32, usize)> {
    let first = *bytes.get(at)?;
    if first < 0x80 {
        return Some((zigzag32(u32::from(first)), at + 1));
    }
    // Two bytes: lengths up to 8191, such as a 100-byte value's.
    if let Some(&second) = bytes.get(at + 1)
        && second < 0x80
    {
        let raw = u32::from(first & 0x7f) | (u32::from(second) << 7);
        return Some((zigzag32(raw), at + 2));
    }
    let (value, len) = sluice_record::varint::read_varint(bytes.get(at..)?).ok()?;
    Some((value, at + len))
}

/// A zigzag varlong at `at`; returns it and the position after it.
#[inline]
fn varlong(bytes: &[u8], at: usize) -> Option<(i64, usize)> {
    let first = *bytes.get(at)?;
    if first < 0x80 {
        let raw = u64::from(first);
        return Some((((raw >> 1) as i64) ^ -((raw & 1) as i64), at + 1));
    }
    let (value, len) = sluice_record::varint::read_varlong(bytes.get(at..)?).ok()?;
    Some((value, at + len))
}

fn zigzag32(raw: u32) -> i32 {
    ((raw >> 1) as i32) ^ -((raw & 1) as i32)
}

/// The precise error for a batch the fast reader refused, from `sluice_record`'s reader.
pub(crate) fn precise_error(batch: &Batch<'_>) -> RecordError {
    match batch.records() {
        Err(e) => e,
        Ok(records) => records
            .filter_map(Result::err)
            .next()
            .unwrap_or(RecordError::Malformed {
                position: HEADER_LEN,
                reason: "records do not follow the RecordBatch v2 layout",
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_record::{Batch, BatchBuilder};

    /// The fast reader agrees with sluice-record on every record of a varied batch.
    #[test]
    fn agrees_with_the_reference_reader() {
        let mut out = Vec::new();
        let mut b = BatchBuilder::new(&mut out, 100, 1_000);
        let long = vec![7u8; 300];
        b.push(1_000, None, None, &[]);
        b.push(
            999,
            Some(b"k"),
            Some(&long),
            &[(b"h", None), (b"", Some(b"v"))],
        );
        b.push(i64::MAX, Some(&long), Some(b""), &[]);
        b.push_with_delta(1_000_000, -5, Some(b""), None, &[(&long, Some(&long))]);
        let range = b.finish().unwrap();
        let batch = Batch::new(&out[range]).unwrap();
        let bytes = batch.as_bytes();
        let mut pos = HEADER_LEN;
        for reference in batch.records().unwrap() {
            let reference = reference.unwrap();
            let (fast, next) = record(bytes, pos).unwrap();
            assert_eq!(fast.offset_delta, reference.offset_delta);
            assert_eq!(fast.timestamp_delta, reference.timestamp_delta);
            assert_eq!(fast.key, reference.key);
            assert_eq!(fast.value, reference.value);
            assert_eq!(fast.headers_count as usize, reference.headers_len());
            let headers: Vec<_> = KafkaHeaders::new(&fast).collect();
            let want: Vec<_> = reference.headers().map(Result::unwrap).collect();
            assert_eq!(headers, want);
            assert_eq!(
                fast.headers_len,
                crate::abi::headers_len(want.iter().copied())
            );
            pos = next;
        }
        assert_eq!(pos, bytes.len());
    }

    /// Every truncation of a record is refused, never read past.
    #[test]
    fn refuses_truncated_records() {
        let mut out = Vec::new();
        let mut b = BatchBuilder::new(&mut out, 0, 0);
        b.push(0, Some(b"key"), Some(b"value"), &[(b"h", Some(b"v"))]);
        let range = b.finish().unwrap();
        let bytes = &out[range];
        assert!(record(bytes, HEADER_LEN).is_some());
        for cut in HEADER_LEN..bytes.len() {
            assert!(record(&bytes[..cut], HEADER_LEN).is_none(), "cut at {cut}");
        }
    }
}
