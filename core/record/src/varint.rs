//! Zigzag variable-length integers as used inside Kafka records (protobuf encoding).
//!
//! A value is zigzag-mapped (`0, -1, 1, -2, ...` become `0, 1, 2, 3, ...`) and written seven
//! bits at a time, least significant group first, with the high bit of each byte set when more
//! bytes follow. A varint takes at most 5 bytes, a varlong at most 10.
//!
//! Readers reject truncated input, encodings longer than the maximum and encodings whose last
//! byte carries bits beyond the type's width. Non-minimal encodings (`0x80 0x00` for 0) are
//! accepted, as Kafka's Java reader accepts them. Error positions are offsets into the slice
//! given to the reader.

use crate::RecordError;

/// Longest encoding of an `i32`.
pub const MAX_VARINT_LEN: usize = 5;
/// Longest encoding of an `i64`.
pub const MAX_VARLONG_LEN: usize = 10;

/// Reads a zigzag varint from the start of `buf`; returns the value and the bytes it took.
pub fn read_varint(buf: &[u8]) -> Result<(i32, usize), RecordError> {
    let mut raw: u32 = 0;
    for (i, &byte) in buf.iter().take(MAX_VARINT_LEN).enumerate() {
        let bits = u32::from(byte & 0x7f);
        if i == MAX_VARINT_LEN - 1 {
            if byte & 0x80 != 0 {
                return Err(malformed(i, "varint longer than 5 bytes"));
            }
            if bits > 0x0f {
                return Err(malformed(i, "varint overflows 32 bits"));
            }
        }
        raw |= bits << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((zigzag_decode32(raw), i + 1));
        }
    }
    Err(malformed(buf.len(), "truncated varint"))
}

/// Reads a zigzag varlong from the start of `buf`; returns the value and the bytes it took.
pub fn read_varlong(buf: &[u8]) -> Result<(i64, usize), RecordError> {
    let mut raw: u64 = 0;
    for (i, &byte) in buf.iter().take(MAX_VARLONG_LEN).enumerate() {
        let bits = u64::from(byte & 0x7f);
        if i == MAX_VARLONG_LEN - 1 {
            if byte & 0x80 != 0 {
                return Err(malformed(i, "varlong longer than 10 bytes"));
            }
            if bits > 0x01 {
                return Err(malformed(i, "varlong overflows 64 bits"));
            }
        }
        raw |= bits << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((zigzag_decode64(raw), i + 1));
        }
    }
    Err(malformed(buf.len(), "truncated varlong"))
}

/// Appends `v` as a zigzag varint.
pub fn write_varint(out: &mut Vec<u8>, v: i32) {
    let mut raw = zigzag_encode32(v);
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// Appends `v` as a zigzag varlong.
pub fn write_varlong(out: &mut Vec<u8>, v: i64) {
    let mut raw = zigzag_encode64(v);
    while raw >= 0x80 {
        out.push((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.push(raw as u8);
}

/// Bytes [`write_varint`] takes for `v` (1 to 5).
pub fn varint_len(v: i32) -> usize {
    let raw = zigzag_encode32(v);
    let bits = 32 - raw.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// Bytes [`write_varlong`] takes for `v` (1 to 10).
pub fn varlong_len(v: i64) -> usize {
    let raw = zigzag_encode64(v);
    let bits = 64 - raw.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

fn zigzag_encode32(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

fn zigzag_encode64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn zigzag_decode32(raw: u32) -> i32 {
    ((raw >> 1) as i32) ^ -((raw & 1) as i32)
}

fn zigzag_decode64(raw: u64) -> i64 {
    ((raw >> 1) as i64) ^ -((raw & 1) as i64)
}

fn malformed(position: usize, reason: &'static str) -> RecordError {
    RecordError::Malformed { position, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings() {
        let cases: &[(i32, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (300, &[0xd8, 0x04]),
            (i32::MAX, &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
            (i32::MIN, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ];
        for &(v, bytes) in cases {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            assert_eq!(out, bytes, "encoding {v}");
            assert_eq!(varint_len(v), bytes.len());
            assert_eq!(read_varint(bytes), Ok((v, bytes.len())));
        }
    }

    #[test]
    fn extremes_round_trip() {
        for v in [0, 1, -1, i32::MAX, i32::MIN, 63, -65, 8191, -8193] {
            let mut out = Vec::new();
            write_varint(&mut out, v);
            assert_eq!(read_varint(&out), Ok((v, out.len())));
        }
        for v in [0, 1, -1, i64::MAX, i64::MIN, 1 << 62, -(1 << 62)] {
            let mut out = Vec::new();
            write_varlong(&mut out, v);
            assert_eq!(varlong_len(v), out.len());
            assert_eq!(read_varlong(&out), Ok((v, out.len())));
        }
    }

    #[test]
    fn rejects_overlong_and_truncated() {
        assert!(read_varint(&[]).is_err());
        assert!(read_varint(&[0x80]).is_err());
        assert!(read_varint(&[0x80, 0x80, 0x80, 0x80]).is_err());
        assert_eq!(
            read_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
            Err(RecordError::Malformed {
                position: 4,
                reason: "varint longer than 5 bytes"
            })
        );
        assert!(read_varint(&[0xff, 0xff, 0xff, 0xff, 0x1f]).is_err());
        assert!(read_varlong(&[0x80; 10]).is_err());
        assert!(read_varlong(&[0x80; 11]).is_err());
        let mut eleven = [0x80u8; 11];
        eleven[10] = 0;
        assert!(read_varlong(&eleven).is_err());
        let mut ten = [0xffu8; 10];
        ten[9] = 0x02;
        assert!(read_varlong(&ten).is_err());
        // Non-minimal but within the length limit: accepted like Kafka's Java reader.
        assert_eq!(read_varint(&[0x80, 0x00]), Ok((0, 2)));
    }
}
