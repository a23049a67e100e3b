//! Per-log settings.
//!
//! Every setting is defined once, in [`SETTINGS`]: its Kafka-style name, default, unit and
//! meaning. The broker's topic configuration, the config file and the docs all read that table,
//! so a setting never has two defaults.

use std::fmt;
use std::str::FromStr;

use crate::error::StorageError;

/// When appended bytes reach the disk (fsync). See docs/OPERATIONS.md for what each can lose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `append` returns after the bytes are fsynced. Concurrent appends share one fsync (group
    /// commit), so throughput grows with the number of concurrent writers.
    Always,
    /// fsync when `interval_ms` have passed or `interval_bytes` were appended since the last one,
    /// whichever comes first. A crash of the machine loses at most that window; a crash of the
    /// process loses nothing that `append` acknowledged (the page cache survives it).
    Interval {
        /// Longest time unflushed bytes wait, in milliseconds.
        interval_ms: u64,
        /// Most unflushed bytes before an fsync.
        interval_bytes: u64,
    },
    /// Never fsync from the append path (segments are still flushed when rolled and on clean
    /// shutdown). A process crash loses nothing acknowledged; power loss can lose everything
    /// since the last roll.
    Never,
}

impl Durability {
    /// The default interval policy: 1 s or 64 MiB.
    pub const DEFAULT_INTERVAL: Durability = Durability::Interval {
        interval_ms: 1000,
        interval_bytes: 64 << 20,
    };
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Durability::Always => f.write_str("always"),
            Durability::Never => f.write_str("never"),
            Durability::Interval {
                interval_ms,
                interval_bytes,
            } => write!(f, "interval:{interval_ms}ms:{interval_bytes}"),
        }
    }
}

impl FromStr for Durability {
    type Err = String;

    /// `always`, `never`, `interval` (defaults), `interval:<ms>` or `interval:<ms>ms:<bytes>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        match s {
            "always" => return Ok(Durability::Always),
            "never" => return Ok(Durability::Never),
            "interval" => return Ok(Durability::DEFAULT_INTERVAL),
            _ => {}
        }
        let Some(rest) = s.strip_prefix("interval:") else {
            return Err(format!(
                "unknown durability `{s}`: use always, never, interval, or interval:<ms>[:<bytes>]"
            ));
        };
        let mut parts = rest.split(':');
        let ms = parts.next().unwrap_or_default().trim_end_matches("ms");
        let interval_ms = ms
            .parse::<u64>()
            .map_err(|_| format!("durability interval `{ms}` is not a number of milliseconds"))?;
        let interval_bytes = match parts.next() {
            Some(b) => b
                .parse::<u64>()
                .map_err(|_| format!("durability interval bytes `{b}` is not a number"))?,
            None => match Durability::DEFAULT_INTERVAL {
                Durability::Interval { interval_bytes, .. } => interval_bytes,
                _ => unreachable!("DEFAULT_INTERVAL is an interval"),
            },
        };
        if interval_ms == 0 || interval_bytes == 0 {
            return Err("durability interval needs ms > 0 and bytes > 0 (use `always` to fsync every append)".into());
        }
        Ok(Durability::Interval {
            interval_ms,
            interval_bytes,
        })
    }
}

/// What happens to old data: deleted by age/size, compacted by key, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CleanupPolicy {
    /// Whole closed segments are deleted by `retention.ms` / `retention.bytes`.
    pub delete: bool,
    /// Closed segments keep only the latest record per key.
    pub compact: bool,
}

impl CleanupPolicy {
    /// `cleanup.policy=delete`, the default.
    pub const DELETE: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: false,
    };
    /// `cleanup.policy=compact`.
    pub const COMPACT: CleanupPolicy = CleanupPolicy {
        delete: false,
        compact: true,
    };
}

impl fmt::Display for CleanupPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.compact, self.delete) {
            (true, true) => f.write_str("compact,delete"),
            (true, false) => f.write_str("compact"),
            (false, true) => f.write_str("delete"),
            (false, false) => f.write_str(""),
        }
    }
}

impl FromStr for CleanupPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut policy = CleanupPolicy::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "delete" => policy.delete = true,
                "compact" => policy.compact = true,
                other => {
                    return Err(format!(
                        "unknown cleanup.policy `{other}`: use delete, compact or compact,delete"
                    ));
                }
            }
        }
        if !policy.delete && !policy.compact {
            return Err("cleanup.policy is empty: use delete, compact or compact,delete".into());
        }
        Ok(policy)
    }
}

/// The settings of one log. Build with `LogConfig::default()` and the `set` method or struct
/// update syntax; [`LogConfig::validate`] checks the bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Roll the active segment when it would grow past this many bytes.
    pub segment_bytes: u64,
    /// Roll the active segment when its first batch is this old (by the batch's timestamp).
    pub segment_ms: u64,
    /// Bytes between two entries of the sparse offset and time indexes.
    pub index_interval_bytes: u64,
    /// Largest size of one segment's offset index; the segment rolls when it is full.
    pub segment_index_bytes: u64,
    /// Delete closed segments whose newest record is older than this; `None` keeps forever.
    pub retention_ms: Option<u64>,
    /// Delete the oldest closed segments while the log is larger than this; `None` is unlimited.
    pub retention_bytes: Option<u64>,
    /// Delete, compact, or both.
    pub cleanup_policy: CleanupPolicy,
    /// How long compaction keeps a tombstone (a record with a null value) after its timestamp.
    pub delete_retention_ms: u64,
    /// Compaction runs once this share of the log's closed bytes was written since it last ran.
    pub min_cleanable_dirty_ratio: f64,
    /// When appends reach the disk.
    pub durability: Durability,
    /// Largest append (one or more batches) accepted in one call, in bytes.
    pub max_append_bytes: u64,
    /// Most distinct keys one compaction pass maps; a pass cleans as many whole segments as fit.
    pub compaction_map_keys: u64,
    /// Check each batch's CRC when reading it back, so a corrupt batch is reported with its file
    /// and position instead of being served.
    pub verify_crc_on_read: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 << 20,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            retention_bytes: None,
            cleanup_policy: CleanupPolicy::DELETE,
            delete_retention_ms: 24 * 3600 * 1000,
            min_cleanable_dirty_ratio: 0.5,
            durability: Durability::DEFAULT_INTERVAL,
            max_append_bytes: 16 << 20,
            compaction_map_keys: 4_000_000,
            verify_crc_on_read: true,
        }
    }
}

/// One setting's definition: the single place its name, default, unit and meaning live.
#[derive(Debug, Clone, Copy)]
pub struct SettingDef {
    /// Kafka-style name, as used in topic configs.
    pub name: &'static str,
    /// The default, as text.
    pub default: &'static str,
    /// Unit of the value.
    pub unit: &'static str,
    /// What it does.
    pub doc: &'static str,
}

/// Every per-log setting. `LogConfig::set` accepts exactly these names.
pub const SETTINGS: &[SettingDef] = &[
    SettingDef {
        name: "segment.bytes",
        default: "1073741824",
        unit: "bytes",
        doc: "Roll the active segment when it would grow past this size (1 MiB to 2 GiB).",
    },
    SettingDef {
        name: "segment.ms",
        default: "604800000",
        unit: "ms",
        doc: "Roll the active segment when its first batch is older than this.",
    },
    SettingDef {
        name: "index.interval.bytes",
        default: "4096",
        unit: "bytes",
        doc: "Bytes of log between two sparse index entries.",
    },
    SettingDef {
        name: "segment.index.bytes",
        default: "10485760",
        unit: "bytes",
        doc: "Largest offset index of one segment; the segment rolls when it is full.",
    },
    SettingDef {
        name: "retention.ms",
        default: "604800000",
        unit: "ms (-1 = forever)",
        doc: "Delete closed segments whose newest record is older than this.",
    },
    SettingDef {
        name: "retention.bytes",
        default: "-1",
        unit: "bytes (-1 = unlimited)",
        doc: "Delete the oldest closed segments while the partition is larger than this.",
    },
    SettingDef {
        name: "cleanup.policy",
        default: "delete",
        unit: "delete | compact | compact,delete",
        doc: "Delete old segments, keep the latest record per key, or both.",
    },
    SettingDef {
        name: "delete.retention.ms",
        default: "86400000",
        unit: "ms",
        doc: "How long compaction keeps tombstones (null values) after their timestamp.",
    },
    SettingDef {
        name: "min.cleanable.dirty.ratio",
        default: "0.5",
        unit: "ratio 0..1",
        doc: "Compact when this share of the closed log was written since the last compaction.",
    },
    SettingDef {
        name: "durability",
        default: "interval:1000ms:67108864",
        unit: "always | interval[:<ms>[:<bytes>]] | never",
        doc: "When appends are fsynced: before acknowledging (group commit), periodically, or never.",
    },
    SettingDef {
        name: "max.append.bytes",
        default: "16777216",
        unit: "bytes",
        doc: "Largest append (one or more record batches) accepted at once.",
    },
    SettingDef {
        name: "compaction.map.keys",
        default: "4000000",
        unit: "keys",
        doc: "Most distinct keys one compaction pass holds in memory (about 40 bytes each).",
    },
    SettingDef {
        name: "verify.crc.on.read",
        default: "true",
        unit: "bool",
        doc: "Check batch CRCs when serving reads; a corrupt batch is reported, not served.",
    },
];

fn parse_u64(name: &str, value: &str) -> Result<u64, StorageError> {
    value
        .trim()
        .parse::<u64>()
        .map_err(|_| StorageError::InvalidConfig {
            setting: name.to_string(),
            reason: format!("`{value}` is not a non-negative integer"),
        })
}

fn parse_optional(name: &str, value: &str) -> Result<Option<u64>, StorageError> {
    match value.trim() {
        "-1" => Ok(None),
        v => parse_u64(name, v).map(Some),
    }
}

fn invalid(setting: &str, reason: impl Into<String>) -> StorageError {
    StorageError::InvalidConfig {
        setting: setting.to_string(),
        reason: reason.into(),
    }
}

impl LogConfig {
    /// Sets one setting by its name in [`SETTINGS`] from its text form.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), StorageError> {
        let mut next = self.clone();
        match name {
            "segment.bytes" => next.segment_bytes = parse_u64(name, value)?,
            "segment.ms" => next.segment_ms = parse_u64(name, value)?,
            "index.interval.bytes" => next.index_interval_bytes = parse_u64(name, value)?,
            "segment.index.bytes" => next.segment_index_bytes = parse_u64(name, value)?,
            "retention.ms" => next.retention_ms = parse_optional(name, value)?,
            "retention.bytes" => next.retention_bytes = parse_optional(name, value)?,
            "cleanup.policy" => {
                next.cleanup_policy = value.parse().map_err(|e| invalid(name, e))?
            }
            "delete.retention.ms" => next.delete_retention_ms = parse_u64(name, value)?,
            "min.cleanable.dirty.ratio" => {
                next.min_cleanable_dirty_ratio = value
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| invalid(name, format!("`{value}` is not a number")))?
            }
            "durability" => next.durability = value.parse().map_err(|e| invalid(name, e))?,
            "max.append.bytes" => next.max_append_bytes = parse_u64(name, value)?,
            "compaction.map.keys" => next.compaction_map_keys = parse_u64(name, value)?,
            "verify.crc.on.read" => {
                next.verify_crc_on_read = value
                    .trim()
                    .parse::<bool>()
                    .map_err(|_| invalid(name, "use true or false"))?
            }
            other => {
                return Err(invalid(
                    other,
                    "unknown setting; see SETTINGS (docs/OPERATIONS.md) for the list",
                ));
            }
        }
        next.validate()?;
        *self = next;
        Ok(())
    }

    /// The current value of a setting, in the text form `set` accepts.
    pub fn get(&self, name: &str) -> Option<String> {
        let opt = |v: Option<u64>| v.map_or("-1".to_string(), |v| v.to_string());
        Some(match name {
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "segment.index.bytes" => self.segment_index_bytes.to_string(),
            "retention.ms" => opt(self.retention_ms),
            "retention.bytes" => opt(self.retention_bytes),
            "cleanup.policy" => self.cleanup_policy.to_string(),
            "delete.retention.ms" => self.delete_retention_ms.to_string(),
            "min.cleanable.dirty.ratio" => self.min_cleanable_dirty_ratio.to_string(),
            "durability" => self.durability.to_string(),
            "max.append.bytes" => self.max_append_bytes.to_string(),
            "compaction.map.keys" => self.compaction_map_keys.to_string(),
            "verify.crc.on.read" => self.verify_crc_on_read.to_string(),
            _ => return None,
        })
    }

    /// Checks every bound. Segment positions are 32-bit in the index, so segments stay below
    /// 2 GiB.
    pub fn validate(&self) -> Result<(), StorageError> {
        if !(1024..=i32::MAX as u64).contains(&self.segment_bytes) {
            return Err(invalid(
                "segment.bytes",
                "must be between 1024 and 2147483647",
            ));
        }
        if self.segment_ms == 0 {
            return Err(invalid("segment.ms", "must be at least 1"));
        }
        if self.index_interval_bytes == 0 {
            return Err(invalid("index.interval.bytes", "must be at least 1"));
        }
        if !(64..=i32::MAX as u64).contains(&self.segment_index_bytes) {
            return Err(invalid(
                "segment.index.bytes",
                "must be between 64 and 2147483647",
            ));
        }
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return Err(invalid(
                "min.cleanable.dirty.ratio",
                "must be between 0 and 1",
            ));
        }
        if !(61..=i32::MAX as u64).contains(&self.max_append_bytes) {
            return Err(invalid(
                "max.append.bytes",
                "must be between 61 (one empty batch header) and 2147483647",
            ));
        }
        if self.compaction_map_keys == 0 {
            return Err(invalid("compaction.map.keys", "must be at least 1"));
        }
        if !self.cleanup_policy.delete && !self.cleanup_policy.compact {
            return Err(invalid("cleanup.policy", "choose delete, compact or both"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_round_trips_through_set_and_get() {
        let defaults = LogConfig::default();
        for def in SETTINGS {
            let mut c = LogConfig::default();
            c.set(def.name, def.default)
                .unwrap_or_else(|e| panic!("{}: {e}", def.name));
            assert_eq!(
                c, defaults,
                "default of {} differs from LogConfig::default",
                def.name
            );
            assert_eq!(defaults.get(def.name).as_deref(), Some(def.default));
        }
    }

    #[test]
    fn operations_doc_lists_every_setting_with_its_default() {
        let doc = include_str!("../../../docs/OPERATIONS.md");
        for def in SETTINGS {
            let row = format!("| `{}` | `{}` |", def.name, def.default);
            assert!(
                doc.contains(&row),
                "docs/OPERATIONS.md lacks the row for {}: {row}",
                def.name
            );
        }
    }

    #[test]
    fn bad_values_are_refused_with_the_setting_name() {
        let mut c = LogConfig::default();
        let err = c.set("segment.bytes", "12").unwrap_err().to_string();
        assert!(err.contains("segment.bytes"), "{err}");
        assert!(c.set("cleanup.policy", "shred").is_err());
        assert!(c.set("durability", "sometimes").is_err());
        assert!(c.set("no.such.setting", "1").is_err());
        c.set("durability", "interval:50").unwrap();
        assert_eq!(
            c.durability,
            Durability::Interval {
                interval_ms: 50,
                interval_bytes: 64 << 20
            }
        );
        c.set("cleanup.policy", "compact,delete").unwrap();
        assert!(c.cleanup_policy.compact && c.cleanup_policy.delete);
    }
}
