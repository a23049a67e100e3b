//! How bytes travel: [`Payload`] for record keys, values and header values, and [`base64_bytes`]
//! for opaque byte fields (record batches).
//!
//! In human-readable encodings (JSON) a payload is a string when its bytes are UTF-8 and
//! `{"base64": "..."}` otherwise; on input, any other JSON value (number, object, array, bool)
//! is accepted too and stored as its JSON text, so `"value": {"price": 3}` just works. In the
//! binary encoding (MessagePack) it is a byte string.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::de::{self, Deserializer, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// Bytes of a key, value or header value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Payload(pub Vec<u8>);

impl Payload {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<&str> for Payload {
    fn from(s: &str) -> Self {
        Payload(s.as_bytes().to_vec())
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Self {
        Payload(v)
    }
}

impl From<&[u8]> for Payload {
    fn from(v: &[u8]) -> Self {
        Payload(v.to_vec())
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !s.is_human_readable() {
            return s.serialize_bytes(&self.0);
        }
        match std::str::from_utf8(&self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("base64", &STANDARD.encode(&self.0))?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // `deserialize_any` rather than `is_human_readable`: inside tagged or flattened
        // structures serde buffers content and reports every format as human-readable.
        d.deserialize_any(PayloadVisitor).map(Payload)
    }
}

struct PayloadVisitor;

impl<'de> Visitor<'de> for PayloadVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string, {\"base64\": ...}, bytes, or any JSON value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        Ok(v.as_bytes().to_vec())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Vec<u8>, E> {
        Ok(v.into_bytes())
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Vec<u8>, E> {
        Ok(v.to_string().into_bytes())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Vec<u8>, E> {
        Ok(v.to_string().into_bytes())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Vec<u8>, E> {
        Ok(v.to_string().into_bytes())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Vec<u8>, E> {
        Ok(serde_json::Value::from(v).to_string().into_bytes())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Vec<u8>, A::Error> {
        let value = serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(value.to_string().into_bytes())
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Vec<u8>, A::Error> {
        let value = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        if let serde_json::Value::Object(m) = &value
            && m.len() == 1
            && let Some(b64) = m.get("base64")
        {
            let text = b64
                .as_str()
                .ok_or_else(|| de::Error::custom("`base64` must be a string"))?;
            return STANDARD
                .decode(text)
                .map_err(|e| de::Error::custom(format!("invalid base64: {e}")));
        }
        Ok(value.to_string().into_bytes())
    }
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("bytes, or base64 text")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        STANDARD
            .decode(v)
            .map_err(|e| E::custom(format!("invalid base64: {e}")))
    }
}

/// Serde helper for opaque byte fields: base64 text in JSON, a byte string in MessagePack.
/// Use as `#[serde(with = "sluice_protocol::base64_bytes")]` on a `Vec<u8>`.
pub mod base64_bytes {
    use super::*;

    /// Serializes `bytes`.
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&STANDARD.encode(bytes))
        } else {
            s.serialize_bytes(bytes)
        }
    }

    /// Deserializes bytes (base64 text or a byte string, whichever the data holds).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_any(BytesVisitor)
    }
}

/// [`base64_bytes`] for `Option<Vec<u8>>`.
pub mod base64_bytes_opt {
    use super::*;

    /// Serializes `bytes`.
    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => base64_bytes::serialize(b, s),
            None => s.serialize_none(),
        }
    }

    /// Deserializes bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "base64_bytes")] Vec<u8>);
        Option::<Wrap>::deserialize(d).map(|o| o.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_forms() {
        let p: Payload = serde_json::from_str(r#""hello""#).unwrap();
        assert_eq!(p.0, b"hello");
        let p: Payload = serde_json::from_str(r#"{"base64":"AAEC"}"#).unwrap();
        assert_eq!(p.0, vec![0, 1, 2]);
        let p: Payload = serde_json::from_str(r#"{"price":3}"#).unwrap();
        assert_eq!(p.0, br#"{"price":3}"#);
        let p: Payload = serde_json::from_str("42").unwrap();
        assert_eq!(p.0, b"42");
        assert!(serde_json::from_str::<Payload>(r#"{"base64":"!!"}"#).is_err());
        let p: Payload = serde_json::from_str(r#"[1,"a"]"#).unwrap();
        assert_eq!(p.0, br#"[1,"a"]"#);
        assert!(serde_json::from_str::<Payload>("null").is_err());
        assert_eq!(
            serde_json::to_string(&Payload(b"hi".to_vec())).unwrap(),
            r#""hi""#
        );
        assert_eq!(
            serde_json::to_string(&Payload(vec![0xff, 0])).unwrap(),
            r#"{"base64":"/wA="}"#
        );
    }

    #[test]
    fn binary_form_is_bytes() {
        let p = Payload(vec![0xff, 0, 7]);
        let enc = rmp_serde::to_vec(&p).unwrap();
        assert_eq!(enc, vec![0xc4, 3, 0xff, 0, 7]);
        assert_eq!(rmp_serde::from_slice::<Payload>(&enc).unwrap(), p);
    }
}
