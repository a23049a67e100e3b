//! Keeps records whose value is a JSON object with a field that compares true with a constant,
//! such as `amount > 100` or `status == "failed"`.
//!
//! Params:
//!
//! | param     | meaning                                                                  |
//! |-----------|--------------------------------------------------------------------------|
//! | `field`   | the top-level field to read (required)                                   |
//! | `op`      | `==`, `!=`, `>`, `>=`, `<` or `<=` (required)                            |
//! | `value`   | the constant; compared as a number if it parses as one, else as a string |
//! | `missing` | `drop` (default) or `keep`: what to do with records without the field, with a null value, or whose value is not a JSON object |
//!
//! A number field is compared with a number constant, a string field with a string constant
//! (byte order); any other pairing does not match, except `!=`, which does.

use std::cmp::Ordering;

use sluice_plugin::json::{self, Value};
use sluice_plugin::{Error, FromParams, Params, Record};

/// The comparison, built once per instance.
pub struct Condition {
    field: String,
    op: Op,
    constant: Constant,
    keep_missing: bool,
}

#[derive(Clone, Copy)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

enum Constant {
    Number(f64),
    Text(String),
}

impl FromParams for Condition {
    fn from_params(params: &Params) -> Result<Self, Error> {
        let field = params.require("field")?.to_string();
        let op = match params.require("op")? {
            "==" | "=" => Op::Eq,
            "!=" => Op::Ne,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "<" => Op::Lt,
            "<=" => Op::Le,
            other => {
                return Err(Error::new(format!(
                    "param `op` = {other:?}: expected one of == != > >= < <="
                )));
            }
        };
        let raw = params.require("value")?;
        let constant = match raw.parse::<f64>() {
            Ok(n) if n.is_finite() => Constant::Number(n),
            _ => Constant::Text(raw.to_string()),
        };
        let keep_missing = match params.get("missing").unwrap_or("drop") {
            "drop" => false,
            "keep" => true,
            other => {
                return Err(Error::new(format!(
                    "param `missing` = {other:?}: expected drop or keep"
                )));
            }
        };
        Ok(Condition {
            field,
            op,
            constant,
            keep_missing,
        })
    }
}

impl Condition {
    fn test(&self, value: &Value<'_>) -> bool {
        let ordering = match (value, &self.constant) {
            (Value::Number(n), Constant::Number(c)) => n.partial_cmp(c),
            (Value::String(s), Constant::Text(c)) => Some(s.as_ref().cmp(c.as_str())),
            _ => None,
        };
        match (ordering, self.op) {
            (None, op) => matches!(op, Op::Ne),
            (Some(o), Op::Eq) => o == Ordering::Equal,
            (Some(o), Op::Ne) => o != Ordering::Equal,
            (Some(o), Op::Gt) => o == Ordering::Greater,
            (Some(o), Op::Ge) => o != Ordering::Less,
            (Some(o), Op::Lt) => o == Ordering::Less,
            (Some(o), Op::Le) => o != Ordering::Greater,
        }
    }
}

/// Keeps the record if its JSON field satisfies the condition.
#[sluice_plugin::filter]
pub fn keep(record: &Record, condition: &Condition) -> bool {
    let found = record
        .value()
        .and_then(|v| json::field(v, &condition.field).ok().flatten());
    match found {
        None | Some(Value::Null) => condition.keep_missing,
        Some(value) => condition.test(&value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(pairs: &[(&str, &str)]) -> Condition {
        Condition::from_params(&Params::from_pairs(pairs.iter().copied())).unwrap()
    }

    fn keeps(c: &Condition, value: &str) -> bool {
        keep(&Record::new(0, 0, None, Some(value.as_bytes())), c)
    }

    #[test]
    fn numbers_strings_and_missing_fields() {
        let big = condition(&[("field", "amount"), ("op", ">"), ("value", "100")]);
        assert!(keeps(&big, r#"{"amount": 120.5}"#));
        assert!(!keeps(&big, r#"{"amount": 100}"#));
        assert!(!keeps(&big, r#"{"amount": "120"}"#));
        assert!(!keeps(&big, r#"{"other": 1}"#));
        assert!(!keeps(&big, "not json"));
        let failed = condition(&[("field", "status"), ("op", "=="), ("value", "failed")]);
        assert!(keeps(&failed, r#"{"status": "failed"}"#));
        assert!(!keeps(&failed, r#"{"status": "ok"}"#));
        let keep_missing = condition(&[
            ("field", "amount"),
            ("op", "<="),
            ("value", "5"),
            ("missing", "keep"),
        ]);
        assert!(keeps(&keep_missing, "{}"));
        assert!(keeps(&keep_missing, r#"{"amount": 5}"#));
        assert!(!keeps(&keep_missing, r#"{"amount": 6}"#));
    }

    #[test]
    fn bad_params_are_refused() {
        let err = |pairs: &[(&str, &str)]| {
            Condition::from_params(&Params::from_pairs(pairs.iter().copied()))
                .err()
                .unwrap()
                .message()
                .to_string()
        };
        assert!(err(&[("op", ">"), ("value", "1")]).contains("`field`"));
        assert!(err(&[("field", "a"), ("op", "~"), ("value", "1")]).contains("`op`"));
        assert!(err(&[("field", "a"), ("op", ">")]).contains("`value`"));
    }
}
