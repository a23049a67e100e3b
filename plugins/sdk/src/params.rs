//! The string map given when the plugin is attached, and turning it into the plugin's state.

use std::str::FromStr;

use crate::Error;

/// The params a plugin was attached with: string keys to string values, sorted by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    entries: Vec<(String, String)>,
}

impl Params {
    /// Params from pairs, for tests. Later duplicates replace earlier ones.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Params {
        let mut entries: Vec<(String, String)> = Vec::new();
        for (k, v) in pairs {
            let k = k.into();
            match entries.binary_search_by(|(e, _)| e.as_str().cmp(&k)) {
                Ok(i) => entries[i].1 = v.into(),
                Err(i) => entries.insert(i, (k, v.into())),
            }
        }
        Params { entries }
    }

    /// Decodes the ABI layout: `count` u32, then `count` times `key_len` u32, key,
    /// `value_len` u32, value; little-endian, UTF-8.
    pub fn decode(bytes: &[u8]) -> Result<Params, Error> {
        let malformed = || Error::new("malformed params from the host");
        let (count, mut rest) = take_u32(bytes).ok_or_else(malformed)?;
        // Each entry takes at least 8 bytes: never reserve more than the input can hold.
        let mut entries = Vec::with_capacity((count as usize).min(rest.len() / 8));
        for _ in 0..count {
            let (key, r) = take_str(rest).ok_or_else(malformed)?;
            let (value, r) = take_str(r).ok_or_else(malformed)?;
            rest = r;
            entries.push((key.to_string(), value.to_string()));
        }
        if !rest.is_empty() {
            return Err(malformed());
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|a, b| a.0 == b.0);
        Ok(Params { entries })
    }

    /// The value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| self.entries[i].1.as_str())
    }

    /// The value of `key`, or an error saying it is required.
    pub fn require(&self, key: &str) -> Result<&str, Error> {
        self.get(key)
            .ok_or_else(|| Error::new(format!("missing required param `{key}`")))
    }

    /// The value of `key` parsed as `T`, `None` if absent; an error naming the key if it does
    /// not parse.
    pub fn parse<T: FromStr>(&self, key: &str) -> Result<Option<T>, Error>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(None),
            Some(raw) => raw
                .parse()
                .map(Some)
                .map_err(|e| Error::new(format!("param `{key}` = {raw:?}: {e}"))),
        }
    }

    /// All params, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of params.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn take_u32(input: &[u8]) -> Option<(u32, &[u8])> {
    let (b, rest) = input.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*b), rest))
}

fn take_str(input: &[u8]) -> Option<(&str, &[u8])> {
    let (len, rest) = take_u32(input)?;
    let (bytes, rest) = rest.split_at_checked(len as usize)?;
    Some((std::str::from_utf8(bytes).ok()?, rest))
}

/// A plugin's state, built once per instance from its params by `sluice_init`: compiled
/// patterns, parsed thresholds, lookup tables. The second argument of a `#[filter]` function
/// (or the third of a `#[partitioner]`) is a `&` reference to a type implementing it.
///
/// [`Params`] implements it, for plugins that read their params directly.
pub trait FromParams: Sized + 'static {
    /// Builds the state; an error here makes attaching the plugin fail with its message.
    fn from_params(params: &Params) -> Result<Self, Error>;
}

impl FromParams for Params {
    fn from_params(params: &Params) -> Result<Self, Error> {
        Ok(params.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (k, v) in pairs {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v.as_bytes());
        }
        out
    }

    #[test]
    fn decodes_and_looks_up() {
        let p = Params::decode(&encode(&[("b", "2"), ("a", "x")])).unwrap();
        assert_eq!(p.get("a"), Some("x"));
        assert_eq!(p.parse::<u32>("b").unwrap(), Some(2));
        assert_eq!(p.parse::<u32>("c").unwrap(), None);
        assert!(p.parse::<u32>("a").unwrap_err().message().contains("`a`"));
        assert!(p.require("c").unwrap_err().message().contains("`c`"));
        assert_eq!(p, Params::from_pairs([("a", "x"), ("b", "2")]));
        assert_eq!(Params::decode(&encode(&[])).unwrap().len(), 0);
    }

    #[test]
    fn refuses_malformed_params() {
        let good = encode(&[("key", "value")]);
        for cut in 0..good.len() {
            assert!(Params::decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(Params::decode(&trailing).is_err());
        let mut huge = good;
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Params::decode(&huge).is_err());
    }
}
