//! [`Mapped`]: what a map plugin answers for a record.

use crate::Record;

/// A record as a map plugin rewrites it: key, value and headers (its offset and timestamp
/// stay the record's). Start from [`Mapped::from_record`] to change only some fields, or
/// from [`Mapped::new`] to build it from nothing.
///
/// ```
/// use sluice_plugin::{Mapped, Record};
///
/// let record = Record::new(7, 1000, Some(b"k"), Some(b"hello"));
/// let out = Mapped::from_record(&record)
///     .value(Some(b"HELLO".to_vec()))
///     .header("mapped-by", Some(b"upper".to_vec()));
/// assert_eq!(out.key_bytes(), Some(&b"k"[..]));
/// assert_eq!(out.value_bytes(), Some(&b"HELLO"[..]));
/// assert_eq!(out.headers_list().len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mapped {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Mapped {
    /// A record with a null key, a null value and no headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of `record`'s key, value and headers.
    pub fn from_record(record: &Record<'_>) -> Self {
        Mapped {
            key: record.key().map(<[u8]>::to_vec),
            value: record.value().map(<[u8]>::to_vec),
            headers: record
                .headers()
                .map(|(name, value)| (name.to_vec(), value.map(<[u8]>::to_vec)))
                .collect(),
        }
    }

    /// Replaces the key (`None`: null).
    pub fn key(mut self, key: Option<Vec<u8>>) -> Self {
        self.key = key;
        self
    }

    /// Replaces the value (`None`: null, a tombstone).
    pub fn value(mut self, value: Option<Vec<u8>>) -> Self {
        self.value = value;
        self
    }

    /// Appends a header (names may repeat).
    pub fn header(mut self, name: impl Into<Vec<u8>>, value: Option<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value));
        self
    }

    /// Removes every header named `name`.
    pub fn without_header(mut self, name: &[u8]) -> Self {
        self.headers.retain(|(n, _)| n != name);
        self
    }

    /// The key.
    pub fn key_bytes(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }

    /// The value.
    pub fn value_bytes(&self) -> Option<&[u8]> {
        self.value.as_deref()
    }

    /// The headers, in order.
    pub fn headers_list(&self) -> &[(Vec<u8>, Option<Vec<u8>>)] {
        &self.headers
    }
}
