//! Records as the host hands them over: the ABI v1 layout, read in place.
//!
//! Each entry, little-endian, packed back to back (see docs/plugin-abi.md):
//! `offset` i64, `timestamp` i64, `key_len` i32 (-1 null), `value_len` i32 (-1 null),
//! `headers_count` u32, `headers_len` u32, then the key, the value and the headers (each
//! `name_len` u32, `value_len` i32, name, value).

use crate::Error;

/// Bytes of an entry's fixed part.
pub const ENTRY_HEADER_LEN: usize = 32;

/// One record, borrowed from the host's input: no copy, no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    offset: i64,
    timestamp: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    headers_count: u32,
    headers: &'a [u8],
}

impl<'a> Record<'a> {
    /// A record without headers, for tests.
    pub fn new(
        offset: i64,
        timestamp: i64,
        key: Option<&'a [u8]>,
        value: Option<&'a [u8]>,
    ) -> Self {
        Record {
            offset,
            timestamp,
            key,
            value,
            headers_count: 0,
            headers: &[],
        }
    }

    /// The record's offset in its partition. For a partitioner (which runs before the log
    /// assigns offsets) its index in the producer's request: 0, 1, 2...
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// Milliseconds since the Unix epoch.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The key, `None` if null.
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key
    }

    /// The value, `None` if null (a tombstone).
    pub fn value(&self) -> Option<&'a [u8]> {
        self.value
    }

    /// The key as UTF-8, `None` if null or not UTF-8.
    pub fn key_str(&self) -> Option<&'a str> {
        self.key.and_then(|k| std::str::from_utf8(k).ok())
    }

    /// The value as UTF-8, `None` if null or not UTF-8.
    pub fn value_str(&self) -> Option<&'a str> {
        self.value.and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Number of headers.
    pub fn headers_len(&self) -> usize {
        self.headers_count as usize
    }

    /// The headers in order, `(name, value)`, value `None` if null.
    pub fn headers(&self) -> Headers<'a> {
        Headers {
            rest: self.headers,
            remaining: self.headers_count,
        }
    }

    /// The value of the first header called `name`: `None` if absent, `Some(None)` if null.
    pub fn header(&self, name: &str) -> Option<Option<&'a [u8]>> {
        self.headers()
            .find(|(n, _)| *n == name.as_bytes())
            .map(|(_, v)| v)
    }
}

/// Iterator over a record's headers.
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    rest: &'a [u8],
    remaining: u32,
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        // The whole section was checked when the record was read.
        let (name_len, rest) = take_u32(self.rest)?;
        let (value_len, rest) = take_i32(rest)?;
        let (name, rest) = rest.split_at_checked(name_len as usize)?;
        let (value, rest) = match value_len {
            -1 => (None, rest),
            len => {
                let (v, rest) = rest.split_at_checked(usize::try_from(len).ok()?)?;
                (Some(v), rest)
            }
        };
        self.rest = rest;
        self.remaining -= 1;
        Some((name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining as usize, Some(self.remaining as usize))
    }
}

/// Reads `count` entries from `input`; every length is checked against the bytes present.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    rest: &'a [u8],
    remaining: usize,
}

impl<'a> Records<'a> {
    /// Reads `count` records from an input in the ABI layout.
    pub fn new(input: &'a [u8], count: usize) -> Self {
        Records {
            rest: input,
            remaining: count,
        }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        match parse(self.rest) {
            Some((record, rest)) => {
                self.rest = rest;
                Some(Ok(record))
            }
            None => {
                self.remaining = 0;
                Some(Err(Error::new("malformed record input from the host")))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

/// Reads the entry at the start of `input`; returns it and the rest, `None` if malformed.
#[inline]
pub(crate) fn parse(input: &[u8]) -> Option<(Record<'_>, &[u8])> {
    let (fixed, rest) = input.split_first_chunk::<ENTRY_HEADER_LEN>()?;
    let offset = i64::from_le_bytes(array(&fixed[0..8]));
    let timestamp = i64::from_le_bytes(array(&fixed[8..16]));
    let key_len = i32::from_le_bytes(array(&fixed[16..20]));
    let value_len = i32::from_le_bytes(array(&fixed[20..24]));
    let headers_count = u32::from_le_bytes(array(&fixed[24..28]));
    let headers_len = u32::from_le_bytes(array(&fixed[28..32])) as usize;
    let (key, rest) = nullable(rest, key_len)?;
    let (value, rest) = nullable(rest, value_len)?;
    let (headers, rest) = rest.split_at_checked(headers_len)?;
    if headers_count > 0 && !headers_fit(headers, headers_count) {
        return None;
    }
    let record = Record {
        offset,
        timestamp,
        key,
        value,
        headers_count,
        headers,
    };
    Some((record, rest))
}

/// Whether `headers` holds exactly `count` well-formed headers.
fn headers_fit(headers: &[u8], count: u32) -> bool {
    let mut it = Headers {
        rest: headers,
        remaining: count,
    };
    for _ in 0..count {
        if it.next().is_none() {
            return false;
        }
    }
    it.rest.is_empty()
}

#[inline]
fn nullable(input: &[u8], len: i32) -> Option<(Option<&[u8]>, &[u8])> {
    if len == -1 {
        return Some((None, input));
    }
    let (bytes, rest) = input.split_at_checked(usize::try_from(len).ok()?)?;
    Some((Some(bytes), rest))
}

fn take_u32(input: &[u8]) -> Option<(u32, &[u8])> {
    let (b, rest) = input.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*b), rest))
}

fn take_i32(input: &[u8]) -> Option<(i32, &[u8])> {
    let (b, rest) = input.split_first_chunk::<4>()?;
    Some((i32::from_le_bytes(*b), rest))
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

/// Appends one record in the ABI layout to `out`: what the host does, for plugin unit tests.
pub fn encode_record(
    out: &mut Vec<u8>,
    offset: i64,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&[u8], Option<&[u8]>)],
) {
    let len = |b: Option<&[u8]>| b.map_or(-1, |b| b.len() as i32);
    let headers_len: usize = headers
        .iter()
        .map(|(n, v)| 8 + n.len() + v.map_or(0, <[u8]>::len))
        .sum();
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(&timestamp.to_le_bytes());
    out.extend_from_slice(&len(key).to_le_bytes());
    out.extend_from_slice(&len(value).to_le_bytes());
    out.extend_from_slice(&(headers.len() as u32).to_le_bytes());
    out.extend_from_slice(&(headers_len as u32).to_le_bytes());
    out.extend_from_slice(key.unwrap_or_default());
    out.extend_from_slice(value.unwrap_or_default());
    for (name, value) in headers {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(&len(*value).to_le_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(value.unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_host_writes() {
        let mut input = Vec::new();
        encode_record(&mut input, 5, 1000, Some(b"k"), None, &[]);
        let headers: [(&[u8], Option<&[u8]>); 2] = [(b"a", Some(b"1")), (b"b", None)];
        encode_record(&mut input, 6, 1001, None, Some(b"value"), &headers);
        let records: Vec<Record<'_>> = Records::new(&input, 2).map(Result::unwrap).collect();
        assert_eq!(records[0], Record::new(5, 1000, Some(b"k"), None));
        assert_eq!(records[1].offset(), 6);
        assert_eq!(records[1].value_str(), Some("value"));
        assert_eq!(records[1].key(), None);
        let got: Vec<_> = records[1].headers().collect();
        assert_eq!(got, headers);
        assert_eq!(records[1].header("b"), Some(None));
        assert_eq!(records[1].header("a"), Some(Some(&b"1"[..])));
        assert_eq!(records[1].header("c"), None);
    }

    #[test]
    fn refuses_truncated_or_lying_input() {
        let mut input = Vec::new();
        encode_record(
            &mut input,
            1,
            2,
            Some(b"key"),
            Some(b"value"),
            &[(b"h", Some(b"v"))],
        );
        for cut in 0..input.len() {
            let mut records = Records::new(&input[..cut], 1);
            assert!(records.next().unwrap().is_err(), "cut at {cut}");
            assert!(records.next().is_none());
        }
        // More records announced than present.
        let mut records = Records::new(&input, 2);
        assert!(records.next().unwrap().is_ok());
        assert!(records.next().unwrap().is_err());
        // A header count that does not match the section.
        let mut lying = input.clone();
        lying[24..28].copy_from_slice(&2u32.to_le_bytes());
        assert!(Records::new(&lying, 1).next().unwrap().is_err());
        // A negative length other than -1.
        let mut lying = input;
        lying[16..20].copy_from_slice(&(-2i32).to_le_bytes());
        assert!(Records::new(&lying, 1).next().unwrap().is_err());
    }
}
