//! Plugin ABI version 1: export names and types, and the byte layouts the host writes into guest
//! memory. The normative text is `docs/plugin-abi.md`; this module is its implementation on the
//! host side and must change with it.
//!
//! # Record layout (input of `sluice_filter` and `sluice_partition`)
//!
//! `count` entries packed back to back with no padding; all integers little-endian.
//!
//! | offset | size | field           | notes                                                   |
//! |-------:|-----:|-----------------|---------------------------------------------------------|
//! |      0 |    8 | `offset`        | i64: the record's offset (partitioners: its index in the request) |
//! |      8 |    8 | `timestamp`     | i64: milliseconds since the Unix epoch                  |
//! |     16 |    4 | `key_len`       | i32: bytes of key, -1 for a null key                    |
//! |     20 |    4 | `value_len`     | i32: bytes of value, -1 for a null value                |
//! |     24 |    4 | `headers_count` | u32                                                     |
//! |     28 |    4 | `headers_len`   | u32: bytes of the headers section                       |
//! |     32 |    … | key             | `max(key_len, 0)` bytes                                 |
//! |      … |    … | value           | `max(value_len, 0)` bytes                               |
//! |      … |    … | headers         | `headers_count` headers, `headers_len` bytes in all     |
//!
//! Each header: `name_len` u32, `value_len` i32 (-1 null), then the name and value bytes.
//!
//! The next entry starts `32 + max(key_len, 0) + max(value_len, 0) + headers_len` bytes later.
//!
//! # Params layout (input of `sluice_init`)
//!
//! `count` u32, then `count` times: `key_len` u32, key, `value_len` u32, value. UTF-8, keys
//! unique and sorted by their bytes.

use std::collections::BTreeMap;

/// The ABI version of filters and partitioners (a module's `sluice_abi_version`).
pub const ABI_VERSION: i32 = 1;
/// ABI version 2: version 1 plus the `map` kind. Map modules must declare it; filters and
/// partitioners may declare 1 or 2. The host speaks both.
pub const ABI_VERSION_MAP: i32 = 2;

/// `sluice_kind` of a filter.
pub const KIND_FILTER: i32 = 1;
/// `sluice_kind` of a partitioner.
pub const KIND_PARTITIONER: i32 = 2;
/// `sluice_kind` of a map (ABI version 2).
pub const KIND_MAP: i32 = 3;

/// Export: the guest's linear memory.
pub const EXPORT_MEMORY: &str = "memory";
/// Export: `() -> i32`, the ABI version.
pub const EXPORT_ABI_VERSION: &str = "sluice_abi_version";
/// Export: `() -> i32`, the plugin kind.
pub const EXPORT_KIND: &str = "sluice_kind";
/// Export: `(size: i32) -> i32`, a pointer to a buffer of at least `size` bytes, 8-aligned, or
/// 0 if the guest cannot provide one.
pub const EXPORT_ALLOC: &str = "sluice_alloc";
/// Export: `(params_ptr: i32, params_len: i32) -> i32`, 0 on success.
pub const EXPORT_INIT: &str = "sluice_init";
/// Export of filters: `(input_ptr, input_len, count, out_ptr: i32) -> i32`, 0 on success.
pub const EXPORT_FILTER: &str = "sluice_filter";
/// Export of partitioners: `(input_ptr, input_len, count, partitions, out_ptr: i32) -> i32`.
pub const EXPORT_PARTITION: &str = "sluice_partition";
/// Export of maps: `(input_ptr, input_len, count, out_ptr: i32) -> i32`, 0 on success; writes
/// the (ptr, len) of its output records at `out_ptr`.
pub const EXPORT_MAP: &str = "sluice_map";
/// Bytes a map writes at `out_ptr`: the u32 pointer and u32 length of its output records.
pub const MAP_OUT_LEN: usize = 8;
/// Optional export: `() -> i32`, pointer to the UTF-8 message of the last failure.
pub const EXPORT_ERROR_PTR: &str = "sluice_error_ptr";
/// Optional export: `() -> i32`, length in bytes of that message.
pub const EXPORT_ERROR_LEN: &str = "sluice_error_len";

/// Bytes of the fixed part of a record entry.
pub const RECORD_HEADER_LEN: usize = 32;
/// Bytes of the fixed part of a header entry.
pub const HEADER_ENTRY_LEN: usize = 8;
/// Output bytes per record of a filter: 1 keep, 0 drop.
pub const FILTER_OUT_LEN: usize = 1;
/// Output bytes per record of a partitioner: a u32 partition.
pub const PARTITION_OUT_LEN: usize = 4;
/// The host reads at most this many bytes of a guest's error message.
pub const MAX_ERROR_MESSAGE_LEN: usize = 1024;

/// A plugin's kind, from its `sluice_kind` export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PluginKind {
    /// Keeps or drops each record; attached to a consumer subscription.
    Filter,
    /// Chooses each record's partition; attached to a topic.
    Partitioner,
    /// Rewrites each record's key, value and headers; attached to a consumer subscription
    /// (ABI version 2).
    Map,
}

impl PluginKind {
    /// The kind's `sluice_kind` code.
    pub fn code(self) -> i32 {
        match self {
            PluginKind::Filter => KIND_FILTER,
            PluginKind::Partitioner => KIND_PARTITIONER,
            PluginKind::Map => KIND_MAP,
        }
    }

    /// The kind for a `sluice_kind` code, if known.
    pub fn from_code(code: i32) -> Option<PluginKind> {
        match code {
            KIND_FILTER => Some(PluginKind::Filter),
            KIND_PARTITIONER => Some(PluginKind::Partitioner),
            KIND_MAP => Some(PluginKind::Map),
            _ => None,
        }
    }

    /// `"filter"`, `"partitioner"` or `"map"`.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Filter => "filter",
            PluginKind::Partitioner => "partitioner",
            PluginKind::Map => "map",
        }
    }

    /// The lowest ABI version that has this kind.
    pub fn min_abi_version(self) -> i32 {
        match self {
            PluginKind::Filter | PluginKind::Partitioner => ABI_VERSION,
            PluginKind::Map => ABI_VERSION_MAP,
        }
    }

    /// Bytes of output per record.
    pub(crate) fn out_len(self) -> usize {
        match self {
            PluginKind::Filter => FILTER_OUT_LEN,
            PluginKind::Partitioner => PARTITION_OUT_LEN,
            PluginKind::Map => 0,
        }
    }

    /// Bytes of output per call, besides those per record.
    pub(crate) fn out_fixed(self) -> usize {
        match self {
            PluginKind::Map => MAP_OUT_LEN,
            PluginKind::Filter | PluginKind::Partitioner => 0,
        }
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bytes of the headers section for these headers.
pub(crate) fn headers_len<'h>(
    headers: impl Iterator<Item = (&'h [u8], Option<&'h [u8]>)>,
) -> usize {
    headers
        .map(|(name, value)| HEADER_ENTRY_LEN + name.len() + value.map_or(0, <[u8]>::len))
        .sum()
}

/// One record's fields, as the host writes them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EntryHead {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<usize>,
    pub value: Option<usize>,
    pub headers_count: usize,
    pub headers_len: usize,
}

impl EntryHead {
    /// Total bytes of the entry.
    pub fn entry_len(&self) -> usize {
        RECORD_HEADER_LEN + self.key.unwrap_or(0) + self.value.unwrap_or(0) + self.headers_len
    }

    /// The fixed 32 bytes. Lengths were bounded by the caller (records of a batch, whose
    /// lengths are i32, or a checked [`crate::RecordInput`]).
    pub fn encode(&self) -> [u8; RECORD_HEADER_LEN] {
        let mut h = [0u8; RECORD_HEADER_LEN];
        h[0..8].copy_from_slice(&self.offset.to_le_bytes());
        h[8..16].copy_from_slice(&self.timestamp.to_le_bytes());
        h[16..20].copy_from_slice(&nullable_len(self.key).to_le_bytes());
        h[20..24].copy_from_slice(&nullable_len(self.value).to_le_bytes());
        h[24..28].copy_from_slice(&(self.headers_count as u32).to_le_bytes());
        h[28..32].copy_from_slice(&(self.headers_len as u32).to_le_bytes());
        h
    }
}

fn nullable_len(len: Option<usize>) -> i32 {
    len.map_or(-1, |l| l as i32)
}

/// Writes one entry into `dst`, which must be exactly `head.entry_len()` bytes.
pub(crate) fn write_entry<'h>(
    dst: &mut [u8],
    head: &EntryHead,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: impl Iterator<Item = (&'h [u8], Option<&'h [u8]>)>,
) {
    debug_assert_eq!(dst.len(), head.entry_len());
    let (fixed, rest) = dst.split_at_mut(RECORD_HEADER_LEN);
    fixed.copy_from_slice(&head.encode());
    let rest = put(rest, key.unwrap_or_default());
    let mut rest = put(rest, value.unwrap_or_default());
    if head.headers_count > 0 {
        for (name, value) in headers {
            rest = put(rest, &(name.len() as u32).to_le_bytes());
            rest = put(rest, &value.map_or(-1, |v| v.len() as i32).to_le_bytes());
            rest = put(rest, name);
            rest = put(rest, value.unwrap_or_default());
        }
    }
    debug_assert!(rest.is_empty());
}

fn put<'d>(dst: &'d mut [u8], bytes: &[u8]) -> &'d mut [u8] {
    let (head, tail) = dst.split_at_mut(bytes.len());
    head.copy_from_slice(bytes);
    tail
}

/// One entry of a map's output, checked: its fixed fields and where its parts lie in the
/// bytes it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntryView {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<(usize, usize)>,
    pub value: Option<(usize, usize)>,
    pub headers_count: usize,
    /// The headers section.
    pub headers: (usize, usize),
    /// Where the next entry starts.
    pub next: usize,
}

/// Reads the entry at `pos` of `bytes` (guest output), checking every length against the
/// bytes present; `Err` says what is wrong.
pub(crate) fn read_entry(bytes: &[u8], pos: usize) -> Result<EntryView, String> {
    let fixed = bytes
        .get(pos..pos.saturating_add(RECORD_HEADER_LEN))
        .ok_or_else(|| format!("an entry at byte {pos} is cut short"))?;
    let i64_at = |i: usize| i64::from_le_bytes(fixed[i..i + 8].try_into().expect("8 bytes"));
    let i32_at = |i: usize| i32::from_le_bytes(fixed[i..i + 4].try_into().expect("4 bytes"));
    let u32_at = |i: usize| u32::from_le_bytes(fixed[i..i + 4].try_into().expect("4 bytes"));
    let nullable = |len: i32, what: &str| -> Result<Option<usize>, String> {
        match len {
            -1 => Ok(None),
            n if n >= 0 => Ok(Some(n as usize)),
            n => Err(format!("{what} length {n} at byte {pos}")),
        }
    };
    let key_len = nullable(i32_at(16), "key")?;
    let value_len = nullable(i32_at(20), "value")?;
    let headers_count = u32_at(24) as usize;
    let headers_len = u32_at(28) as usize;
    let mut at = pos + RECORD_HEADER_LEN;
    let mut span = |len: Option<usize>| -> Result<Option<(usize, usize)>, String> {
        let Some(len) = len else { return Ok(None) };
        let end = at
            .checked_add(len)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| format!("the entry at byte {pos} runs past the output"))?;
        let s = (at, end);
        at = end;
        Ok(Some(s))
    };
    let key = span(key_len)?;
    let value = span(value_len)?;
    let headers = span(Some(headers_len))?.expect("present");
    // Walk the headers: each must fit, and together fill the section exactly.
    let mut h = headers.0;
    for _ in 0..headers_count {
        let fixed = bytes
            .get(h..h + HEADER_ENTRY_LEN)
            .filter(|_| h + HEADER_ENTRY_LEN <= headers.1)
            .ok_or_else(|| format!("the headers of the entry at byte {pos} are cut short"))?;
        let name_len = u32::from_le_bytes(fixed[0..4].try_into().expect("4 bytes")) as usize;
        let value_len = i32::from_le_bytes(fixed[4..8].try_into().expect("4 bytes"));
        if value_len < -1 {
            return Err(format!("a header value length {value_len} at byte {h}"));
        }
        h = (h + HEADER_ENTRY_LEN)
            .checked_add(name_len)
            .and_then(|x| x.checked_add(value_len.max(0) as usize))
            .filter(|&x| x <= headers.1)
            .ok_or_else(|| format!("a header of the entry at byte {pos} runs past its section"))?;
    }
    if h != headers.1 {
        return Err(format!(
            "the headers of the entry at byte {pos} do not fill their section"
        ));
    }
    Ok(EntryView {
        offset: i64_at(0),
        timestamp: i64_at(8),
        key,
        value,
        headers_count,
        headers,
        next: headers.1,
    })
}

/// The headers of an entry read by [`read_entry`], as (name, value).
pub(crate) fn entry_headers<'b>(
    bytes: &'b [u8],
    view: &EntryView,
) -> impl Iterator<Item = (&'b [u8], Option<&'b [u8]>)> + 'b {
    let mut h = view.headers.0;
    (0..view.headers_count).map(move |_| {
        let name_len = u32::from_le_bytes(bytes[h..h + 4].try_into().expect("checked")) as usize;
        let value_len = i32::from_le_bytes(bytes[h + 4..h + 8].try_into().expect("checked"));
        let name = &bytes[h + 8..h + 8 + name_len];
        let start = h + 8 + name_len;
        let value = (value_len >= 0).then(|| &bytes[start..start + value_len as usize]);
        h = start + value_len.max(0) as usize;
        (name, value)
    })
}

/// Encodes params for `sluice_init`.
pub fn encode_params(params: &BTreeMap<String, String>) -> Vec<u8> {
    let len = 4 + params
        .iter()
        .map(|(k, v)| 8 + k.len() + v.len())
        .sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(params.len() as u32).to_le_bytes());
    for (k, v) in params {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// Rounds up to a multiple of 8.
pub(crate) fn align8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_layout_matches_the_spec() {
        let headers: [(&[u8], Option<&[u8]>); 2] = [(b"h1", Some(b"v")), (b"h2", None)];
        let head = EntryHead {
            offset: 7,
            timestamp: -2,
            key: None,
            value: Some(3),
            headers_count: 2,
            headers_len: headers_len(headers.iter().copied()),
        };
        assert_eq!(head.headers_len, 8 + 2 + 1 + 8 + 2);
        let mut buf = vec![0xAA; head.entry_len()];
        write_entry(&mut buf, &head, None, Some(b"abc"), headers.iter().copied());
        let mut want = Vec::new();
        want.extend_from_slice(&7i64.to_le_bytes());
        want.extend_from_slice(&(-2i64).to_le_bytes());
        want.extend_from_slice(&(-1i32).to_le_bytes());
        want.extend_from_slice(&3i32.to_le_bytes());
        want.extend_from_slice(&2u32.to_le_bytes());
        want.extend_from_slice(&21u32.to_le_bytes());
        want.extend_from_slice(b"abc");
        want.extend_from_slice(&2u32.to_le_bytes());
        want.extend_from_slice(&1i32.to_le_bytes());
        want.extend_from_slice(b"h1v");
        want.extend_from_slice(&2u32.to_le_bytes());
        want.extend_from_slice(&(-1i32).to_le_bytes());
        want.extend_from_slice(b"h2");
        assert_eq!(buf, want);
    }

    /// The worked example of docs/plugin-abi.md.
    #[test]
    fn documented_example_is_exact() {
        let headers: [(&[u8], Option<&[u8]>); 1] = [(b"h", Some(b"v"))];
        let head = EntryHead {
            offset: 7,
            timestamp: 1000,
            key: None,
            value: Some(3),
            headers_count: 1,
            headers_len: headers_len(headers.iter().copied()),
        };
        let mut buf = vec![0; head.entry_len()];
        write_entry(&mut buf, &head, None, Some(b"abc"), headers.iter().copied());
        let hex: Vec<String> = buf.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex.join(" "),
            "07 00 00 00 00 00 00 00 e8 03 00 00 00 00 00 00 \
             ff ff ff ff 03 00 00 00 01 00 00 00 0a 00 00 00 \
             61 62 63 \
             01 00 00 00 01 00 00 00 68 76"
        );
    }

    #[test]
    fn entries_read_back_as_written_and_bad_ones_are_refused() {
        let headers: [(&[u8], Option<&[u8]>); 2] = [(b"h1", Some(b"v")), (b"h2", None)];
        let head = EntryHead {
            offset: 9,
            timestamp: 4,
            key: Some(1),
            value: None,
            headers_count: 2,
            headers_len: headers_len(headers.iter().copied()),
        };
        let mut buf = vec![0; head.entry_len()];
        write_entry(&mut buf, &head, Some(b"k"), None, headers.iter().copied());
        let v = read_entry(&buf, 0).unwrap();
        assert_eq!((v.offset, v.timestamp, v.next), (9, 4, buf.len()));
        assert_eq!(v.key.map(|(a, b)| &buf[a..b]), Some(&b"k"[..]));
        assert_eq!(v.value, None);
        assert_eq!(entry_headers(&buf, &v).collect::<Vec<_>>(), headers);
        // Cut anywhere: an error, never a panic.
        for cut in 0..buf.len() {
            assert!(read_entry(&buf[..cut], 0).is_err(), "cut at {cut}");
        }
        // Lying lengths.
        for (at, bytes) in [
            (16, (-2i32).to_le_bytes()),
            (20, 1000i32.to_le_bytes()),
            (24, 3u32.to_le_bytes()),
            (28, 1u32.to_le_bytes()),
        ] {
            let mut bad = buf.clone();
            bad[at..at + 4].copy_from_slice(&bytes);
            assert!(read_entry(&bad, 0).is_err(), "field at {at}");
        }
    }

    #[test]
    fn params_layout_matches_the_spec() {
        let params = BTreeMap::from([
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), String::new()),
        ]);
        let mut want = Vec::new();
        want.extend_from_slice(&2u32.to_le_bytes());
        want.extend_from_slice(&1u32.to_le_bytes());
        want.extend_from_slice(b"a");
        want.extend_from_slice(&0u32.to_le_bytes());
        want.extend_from_slice(&1u32.to_le_bytes());
        want.extend_from_slice(b"b");
        want.extend_from_slice(&1u32.to_le_bytes());
        want.extend_from_slice(b"2");
        assert_eq!(encode_params(&params), want);
    }
}
