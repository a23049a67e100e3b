//! Routes each record by a field of its JSON value, such as `region`, to fixed partitions.
//!
//! Params:
//!
//! | param       | meaning                                                                |
//! |-------------|------------------------------------------------------------------------|
//! | `field`     | the top-level field to read (default `region`)                         |
//! | `route.<v>` | records whose field is the string `<v>` go to this partition (`route.eu = 0`) |
//! | `default`   | partition of records whose field is absent or has no route; without it, they are spread by a hash of the field (or of the key, if the field is absent) |
//!
//! A partition at or past the topic's partition count wraps around (modulo), so a route table
//! written for 8 partitions still answers valid partitions on a topic of 4.

use std::collections::HashMap;

use sluice_plugin::json::{self, Value};
use sluice_plugin::{Error, FromParams, Params, Record};

/// The routing table, built once per instance.
pub struct Routes {
    field: String,
    routes: HashMap<String, u32>,
    default: Option<u32>,
}

impl FromParams for Routes {
    fn from_params(params: &Params) -> Result<Self, Error> {
        let field = params.get("field").unwrap_or("region").to_string();
        let mut routes = HashMap::new();
        for (key, value) in params.iter() {
            if let Some(name) = key.strip_prefix("route.") {
                let partition = value.parse::<u32>().map_err(|e| {
                    Error::new(format!("param `{key}` = {value:?}: not a partition: {e}"))
                })?;
                routes.insert(name.to_string(), partition);
            }
        }
        let default = params.parse::<u32>("default")?;
        if routes.is_empty() && default.is_none() {
            return Err(Error::new(
                "no routes: give `route.<value>=<partition>` params and/or `default`",
            ));
        }
        Ok(Routes {
            field,
            routes,
            default,
        })
    }
}

/// FNV-1a, a stable hash for spreading unrouted records.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// The partition of the record.
#[sluice_plugin::partitioner]
pub fn route(record: &Record, partitions: u32, routes: &Routes) -> u32 {
    let field = record
        .value()
        .and_then(|v| json::field(v, &routes.field).ok().flatten());
    let text = field.as_ref().and_then(Value::as_str);
    if let Some(&p) = text.and_then(|t| routes.routes.get(t)) {
        return p % partitions;
    }
    if let Some(p) = routes.default {
        return p % partitions;
    }
    let basis = match &text {
        Some(t) => t.as_bytes(),
        None => record.key().unwrap_or_default(),
    };
    fnv1a(basis) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(pairs: &[(&str, &str)]) -> Routes {
        Routes::from_params(&Params::from_pairs(pairs.iter().copied())).unwrap()
    }

    fn route_of(r: &Routes, value: &str, partitions: u32) -> u32 {
        route(
            &Record::new(0, 0, None, Some(value.as_bytes())),
            partitions,
            r,
        )
    }

    #[test]
    fn routes_by_region() {
        let r = routes(&[
            ("route.eu", "0"),
            ("route.us", "1"),
            ("route.ap", "5"),
            ("default", "2"),
        ]);
        assert_eq!(route_of(&r, r#"{"region": "eu"}"#, 4), 0);
        assert_eq!(route_of(&r, r#"{"region": "us", "x": 1}"#, 4), 1);
        assert_eq!(
            route_of(&r, r#"{"region": "ap"}"#, 4),
            1,
            "wraps modulo the count"
        );
        assert_eq!(route_of(&r, r#"{"region": "mars"}"#, 4), 2);
        assert_eq!(route_of(&r, "not json", 4), 2);
    }

    #[test]
    fn spreads_unrouted_records_by_hash() {
        let r = routes(&[("field", "zone"), ("route.a", "0")]);
        let p = route_of(&r, r#"{"zone": "b"}"#, 16);
        assert_eq!(p, fnv1a(b"b") % 16);
        assert_eq!(
            p,
            route_of(&r, r#"{"zone": "b", "other": 3}"#, 16),
            "stable"
        );
    }

    #[test]
    fn bad_params_are_refused() {
        assert!(Routes::from_params(&Params::default()).is_err());
        let bad = Routes::from_params(&Params::from_pairs([("route.eu", "x")]));
        assert!(bad.err().unwrap().message().contains("route.eu"));
    }
}
