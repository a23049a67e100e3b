//! Keeps records whose value contains a keyword, or matches a regular expression.
//!
//! Params (exactly one of `keyword` and `pattern`):
//!
//! | param     | meaning                                                               |
//! |-----------|-----------------------------------------------------------------------|
//! | `keyword` | a byte string to find in the value (SIMD substring search)           |
//! | `pattern` | a regular expression (`regex` crate syntax) matched against the value |
//! | `in`      | `value` (default), `key`, `any` (key or value), or `header:<name>`    |
//! | `invert`  | `true` to drop matching records instead (default `false`)             |
//!
//! A null value (key, header) does not match; neither does a missing header. Patterns match
//! bytes, so values need not be UTF-8.

use memchr::memmem::Finder;
use regex::bytes::Regex;
use sluice_plugin::{Error, FromParams, Params, Record};

/// What to look for and where, built once per instance.
pub struct Matcher {
    how: How,
    key: bool,
    value: bool,
    header: Option<String>,
    invert: bool,
}

enum How {
    Keyword(Box<Finder<'static>>),
    Pattern(Regex),
}

impl Matcher {
    fn matches(&self, bytes: Option<&[u8]>) -> bool {
        let Some(bytes) = bytes else { return false };
        match &self.how {
            How::Keyword(finder) => finder.find(bytes).is_some(),
            How::Pattern(regex) => regex.is_match(bytes),
        }
    }
}

impl FromParams for Matcher {
    fn from_params(params: &Params) -> Result<Self, Error> {
        let how = match (params.get("keyword"), params.get("pattern")) {
            (Some(keyword), None) if !keyword.is_empty() => {
                How::Keyword(Box::new(Finder::new(keyword.as_bytes()).into_owned()))
            }
            (None, Some(pattern)) => How::Pattern(
                Regex::new(pattern).map_err(|e| Error::new(format!("param `pattern`: {e}")))?,
            ),
            (Some(_), Some(_)) => return Err(Error::new("give `keyword` or `pattern`, not both")),
            _ => {
                return Err(Error::new(
                    "missing param: `keyword` (non-empty) or `pattern`",
                ));
            }
        };
        let (key, value, header) = match params.get("in").unwrap_or("value") {
            "value" => (false, true, None),
            "key" => (true, false, None),
            "any" => (true, true, None),
            other => match other.strip_prefix("header:") {
                Some(name) if !name.is_empty() => (false, false, Some(name.to_string())),
                _ => {
                    return Err(Error::new(format!(
                        "param `in` = {other:?}: expected value, key, any or header:<name>"
                    )));
                }
            },
        };
        let invert = params.parse::<bool>("invert")?.unwrap_or(false);
        Ok(Matcher {
            how,
            key,
            value,
            header,
            invert,
        })
    }
}

/// Keeps the record if it matches (or, with `invert`, if it does not).
#[sluice_plugin::filter]
pub fn keep(record: &Record, matcher: &Matcher) -> bool {
    let found = (matcher.value && matcher.matches(record.value()))
        || (matcher.key && matcher.matches(record.key()))
        || matcher
            .header
            .as_deref()
            .is_some_and(|name| matcher.matches(record.header(name).flatten()));
    found != matcher.invert
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(pairs: &[(&str, &str)]) -> Result<Matcher, Error> {
        Matcher::from_params(&Params::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn keyword_pattern_and_invert() {
        let error = Record::new(0, 0, Some(b"k"), Some(b"level=ERROR disk full"));
        let info = Record::new(1, 0, None, Some(b"level=INFO ok"));
        let keyword = matcher(&[("keyword", "ERROR")]).unwrap();
        assert!(keep(&error, &keyword));
        assert!(!keep(&info, &keyword));
        let pattern = matcher(&[("pattern", r"level=(ERROR|WARN)")]).unwrap();
        assert!(keep(&error, &pattern));
        assert!(!keep(&info, &pattern));
        let inverted = matcher(&[("keyword", "ERROR"), ("invert", "true")]).unwrap();
        assert!(!keep(&error, &inverted));
        assert!(keep(&info, &inverted));
        let in_key = matcher(&[("keyword", "k"), ("in", "key")]).unwrap();
        assert!(keep(&error, &in_key));
        assert!(!keep(&info, &in_key));
        let mut input = Vec::new();
        sluice_plugin::record::encode_record(
            &mut input,
            0,
            0,
            None,
            None,
            &[(b"level", Some(b"ERROR"))],
        );
        let with_header = sluice_plugin::record::Records::new(&input, 1)
            .next()
            .unwrap()
            .unwrap();
        let in_header = matcher(&[("keyword", "ERR"), ("in", "header:level")]).unwrap();
        assert!(keep(&with_header, &in_header));
        assert!(!keep(&error, &in_header));
    }

    #[test]
    fn bad_params_say_what_is_wrong() {
        let err = |pairs| matcher(pairs).err().unwrap().message().to_string();
        assert!(err(&[]).contains("keyword"));
        assert!(err(&[("pattern", "(")]).contains("pattern"));
        assert!(err(&[("keyword", "a"), ("pattern", "b")]).contains("not both"));
        assert!(err(&[("keyword", "a"), ("in", "headers")]).contains("`in`"));
        assert!(err(&[("keyword", "a"), ("invert", "yes")]).contains("`invert`"));
    }
}
