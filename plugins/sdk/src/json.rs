//! Reading one top-level field of a JSON object, fast and without allocating (feature `json`).
//!
//! [`field`] scans the object's members in order, skipping the values of other members without
//! decoding them (no number parsing, no string copies), and stops at the first member with the
//! wanted name. It is a scanner, not a validator: it refuses input that is not an object or is
//! malformed up to that member, but does not look at what follows it. Nesting is tracked with
//! a counter, not recursion, so deep documents cannot overflow the stack.
//!
//! ```
//! use sluice_plugin::json::{field, Value};
//!
//! let order = br#"{"id": 7, "region": "eu", "amount": 120.5, "items": [1, 2]}"#;
//! assert_eq!(field(order, "region").unwrap(), Some(Value::String("eu".into())));
//! assert_eq!(field(order, "amount").unwrap().and_then(|v| v.as_f64()), Some(120.5));
//! assert_eq!(field(order, "missing").unwrap(), None);
//! assert!(field(b"not json", "region").is_err());
//! ```

use std::borrow::Cow;

use crate::Error;

/// A field's value. Objects and arrays are not decoded: they are [`Value::Other`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as f64.
    Number(f64),
    /// A string, borrowed from the input unless it had escapes.
    String(Cow<'a, str>),
    /// An object or an array.
    Other,
}

impl Value<'_> {
    /// The number, if it is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// The value of the top-level member `name` of the JSON object `json`: `Ok(None)` if the object
/// has no such member, an error if `json` is not a JSON object (as far as it was read).
pub fn field<'a>(json: &'a [u8], name: &str) -> Result<Option<Value<'a>>, Error> {
    let mut s = Scanner { json, at: 0 };
    s.expect(b'{')?;
    if s.peek_after_ws() == Some(b'}') {
        return Ok(None);
    }
    loop {
        s.skip_ws();
        let key = s.string()?;
        s.expect(b':')?;
        s.skip_ws();
        if key == name {
            return s.value().map(Some);
        }
        s.skip_value()?;
        s.skip_ws();
        match s.next() {
            Some(b',') => {}
            Some(b'}') => return Ok(None),
            _ => return Err(s.error("expected `,` or `}`")),
        }
    }
}

struct Scanner<'a> {
    json: &'a [u8],
    at: usize,
}

impl<'a> Scanner<'a> {
    fn error(&self, what: &str) -> Error {
        Error::new(format!("not a JSON object: {what} at byte {}", self.at))
    }

    fn next(&mut self) -> Option<u8> {
        let b = *self.json.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.json.get(self.at) {
            self.at += 1;
        }
    }

    fn peek_after_ws(&mut self) -> Option<u8> {
        self.skip_ws();
        self.json.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> Result<(), Error> {
        self.skip_ws();
        if self.next() == Some(byte) {
            Ok(())
        } else {
            Err(self.error(&format!("expected `{}`", byte as char)))
        }
    }

    /// The raw bytes of a string (after its opening quote), up to its closing quote, and
    /// whether it has escapes.
    fn raw_string(&mut self) -> Result<(&'a [u8], bool), Error> {
        if self.next() != Some(b'"') {
            return Err(self.error("expected a string"));
        }
        let start = self.at;
        let mut escaped = false;
        loop {
            let rest = self.json.get(self.at..).unwrap_or_default();
            match rest.iter().position(|&b| b == b'"' || b == b'\\') {
                Some(i) if rest[i] == b'"' => {
                    self.at += i + 1;
                    return Ok((&self.json[start..self.at - 1], escaped));
                }
                // A backslash: skip it and the byte it escapes.
                Some(i) if i + 1 < rest.len() => {
                    escaped = true;
                    self.at += i + 2;
                }
                _ => return Err(self.error("unterminated string")),
            }
        }
    }

    fn string(&mut self) -> Result<Cow<'a, str>, Error> {
        let (raw, escaped) = self.raw_string()?;
        let text = std::str::from_utf8(raw).map_err(|_| self.error("string is not UTF-8"))?;
        if escaped {
            unescape(text)
                .map(Cow::Owned)
                .ok_or_else(|| self.error("bad escape in string"))
        } else {
            Ok(Cow::Borrowed(text))
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Error> {
        if self.json.get(self.at..self.at + word.len()) == Some(word) {
            self.at += word.len();
            Ok(())
        } else {
            Err(self.error("unexpected token"))
        }
    }

    /// The bytes of a number token.
    fn number_token(&mut self) -> &'a [u8] {
        let start = self.at;
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.json.get(self.at) {
            self.at += 1;
        }
        &self.json[start..self.at]
    }

    fn number(&mut self) -> Result<f64, Error> {
        let token = self.number_token();
        std::str::from_utf8(token)
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .ok_or_else(|| self.error("bad number"))
    }

    fn value(&mut self) -> Result<Value<'a>, Error> {
        match self.json.get(self.at) {
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.literal(b"true").map(|()| Value::Bool(true)),
            Some(b'f') => self.literal(b"false").map(|()| Value::Bool(false)),
            Some(b'n') => self.literal(b"null").map(|()| Value::Null),
            Some(b'{' | b'[') => self.skip_value().map(|()| Value::Other),
            Some(b'-' | b'0'..=b'9') => self.number().map(Value::Number),
            _ => Err(self.error("expected a value")),
        }
    }

    /// Skips one value without decoding it; objects and arrays by bracket depth.
    fn skip_value(&mut self) -> Result<(), Error> {
        match self.json.get(self.at) {
            Some(b'"') => self.raw_string().map(|_| ()),
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                loop {
                    match self.json.get(self.at) {
                        Some(b'"') => {
                            self.raw_string()?;
                            continue;
                        }
                        Some(b'{' | b'[') => depth += 1,
                        Some(b'}' | b']') => {
                            depth -= 1;
                            if depth == 0 {
                                self.at += 1;
                                return Ok(());
                            }
                        }
                        Some(_) => {}
                        None => return Err(self.error("unterminated object or array")),
                    }
                    self.at += 1;
                }
            }
            Some(b't' | b'f' | b'n') => {
                while let Some(b'a'..=b'z') = self.json.get(self.at) {
                    self.at += 1;
                }
                Ok(())
            }
            Some(b'-' | b'0'..=b'9') => {
                self.number_token();
                Ok(())
            }
            _ => Err(self.error("expected a value")),
        }
    }
}

/// Decodes the escapes of a JSON string's contents; `None` if one is invalid.
fn unescape(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let decoded = match chars.next()? {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let high = hex4(&mut chars)?;
                if (0xD800..0xDC00).contains(&high) {
                    if chars.next()? != '\\' || chars.next()? != 'u' {
                        return None;
                    }
                    let low = hex4(&mut chars)?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return None;
                    }
                    char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))?
                } else {
                    char::from_u32(high)?
                }
            }
            _ => return None,
        };
        out.push(decoded);
    }
    Some(out)
}

fn hex4(chars: &mut std::str::Chars<'_>) -> Option<u32> {
    let mut v = 0;
    for _ in 0..4 {
        v = v * 16 + chars.next()?.to_digit(16)?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_fields_of_every_type() {
        let doc = br#" { "a" : null, "b": true, "c": -3, "d": "x\"y\u00e9\ud83d\ude00", "e": {"b": [1, "}"]},
            "f": [], "b2": 1e3, "g": false } "#;
        assert_eq!(field(doc, "a").unwrap(), Some(Value::Null));
        assert_eq!(field(doc, "b").unwrap(), Some(Value::Bool(true)));
        assert_eq!(field(doc, "c").unwrap(), Some(Value::Number(-3.0)));
        assert_eq!(
            field(doc, "d").unwrap(),
            Some(Value::String("x\"yé😀".into()))
        );
        assert_eq!(field(doc, "e").unwrap(), Some(Value::Other));
        assert_eq!(field(doc, "f").unwrap(), Some(Value::Other));
        assert_eq!(field(doc, "b2").unwrap(), Some(Value::Number(1000.0)));
        assert_eq!(field(doc, "g").unwrap(), Some(Value::Bool(false)));
        assert_eq!(field(doc, "z").unwrap(), None);
        assert_eq!(field(b"{}", "z").unwrap(), None);
        // Escaped keys compare by their decoded text.
        assert_eq!(
            field(br#"{"re\u0067ion": "eu"}"#, "region").unwrap(),
            Some(Value::String("eu".into()))
        );
        // The first of duplicate members wins.
        assert_eq!(
            field(br#"{"a": 1, "a": 2}"#, "a").unwrap(),
            Some(Value::Number(1.0))
        );
    }

    #[test]
    fn refuses_what_is_not_an_object() {
        for bad in [
            &b"[1]"[..],
            b"1",
            b"\"s\"",
            b"{",
            b"{\"a\" 1}",
            b"{\"a\":1 \"b\":2}",
            b"{\"a\":[1,2}",
            b"{\"a\":\"unterminated",
            b"",
            b"\xff",
            b"{\"z\":\"\\q\"}",
        ] {
            assert!(
                field(bad, "z").is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn never_panics_on_truncations() {
        let doc =
            br#"{"id": 7, "nested": {"x": [1, {"y": "\"}"}]}, "region": "eu\n", "n": -1.5e-3}"#;
        for cut in 0..doc.len() {
            for name in ["region", "n", "missing"] {
                let _ = field(&doc[..cut], name);
            }
        }
        assert_eq!(field(doc, "n").unwrap(), Some(Value::Number(-1.5e-3)));
    }
}
