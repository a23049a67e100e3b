//! Rewrites records for a consumer: adds a header, and optionally upper-cases or masks the
//! value.
//!
//! Params:
//!
//! | param    | meaning                                                                    |
//! |----------|----------------------------------------------------------------------------|
//! | `header` | name of a header to add (default `mapped-by`)                              |
//! | `tag`    | its value (default `tag-map`)                                              |
//! | `value`  | `keep` (default), `upper` (ASCII upper case) or `mask` (every byte `*`)    |
//! | `drop_header` | a header name to remove first (optional)                              |
//!
//! Null values stay null; keys are never changed.

use sluice_plugin::{Error, FromParams, Mapped, Params, Record};

/// What to do, built once per instance.
pub struct Rewrite {
    header: Vec<u8>,
    tag: Vec<u8>,
    value: ValueOp,
    drop_header: Option<Vec<u8>>,
}

enum ValueOp {
    Keep,
    Upper,
    Mask,
}

impl FromParams for Rewrite {
    fn from_params(params: &Params) -> Result<Self, Error> {
        let value = match params.get("value").unwrap_or("keep") {
            "keep" => ValueOp::Keep,
            "upper" => ValueOp::Upper,
            "mask" => ValueOp::Mask,
            other => {
                return Err(Error::new(format!(
                    "param `value` is `{other}`; use keep, upper or mask"
                )));
            }
        };
        let header = params.get("header").unwrap_or("mapped-by");
        if header.is_empty() {
            return Err(Error::new("param `header` is empty"));
        }
        Ok(Rewrite {
            header: header.as_bytes().to_vec(),
            tag: params.get("tag").unwrap_or("tag-map").as_bytes().to_vec(),
            value,
            drop_header: params.get("drop_header").map(|h| h.as_bytes().to_vec()),
        })
    }
}

/// The rewritten record.
#[sluice_plugin::map]
pub fn rewrite(record: &Record, how: &Rewrite) -> Mapped {
    let mut out = Mapped::from_record(record);
    if let Some(name) = &how.drop_header {
        out = out.without_header(name);
    }
    let value = record.value().map(|v| match how.value {
        ValueOp::Keep => v.to_vec(),
        ValueOp::Upper => v.to_ascii_uppercase(),
        ValueOp::Mask => vec![b'*'; v.len()],
    });
    out.value(value)
        .header(how.header.clone(), Some(how.tag.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn how(pairs: &[(&str, &str)]) -> Result<Rewrite, Error> {
        Rewrite::from_params(&Params::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn rewrites_values_and_tags() {
        let record = Record::new(3, 9, Some(b"k"), Some(b"Hello"));
        let out = rewrite(&record, &how(&[("value", "upper")]).unwrap());
        assert_eq!(out.key_bytes(), Some(&b"k"[..]));
        assert_eq!(out.value_bytes(), Some(&b"HELLO"[..]));
        assert_eq!(
            out.headers_list(),
            [(b"mapped-by".to_vec(), Some(b"tag-map".to_vec()))]
        );
        let out = rewrite(&record, &how(&[("value", "mask"), ("tag", "x")]).unwrap());
        assert_eq!(out.value_bytes(), Some(&b"*****"[..]));
        let tombstone = Record::new(4, 9, Some(b"k"), None);
        assert_eq!(rewrite(&tombstone, &how(&[]).unwrap()).value_bytes(), None);
    }

    #[test]
    fn bad_params_are_refused() {
        assert!(how(&[("value", "reverse")]).is_err());
        assert!(how(&[("header", "")]).is_err());
    }
}
