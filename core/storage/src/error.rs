//! The storage error type.

use std::io;
use std::path::PathBuf;

use sluice_record::RecordError;

/// Everything a log operation can fail with. Each message says what went wrong and, where
/// there is one, what to do next.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file operation failed (disk full, permissions, I/O error).
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// An appended batch failed validation; nothing of the append was written.
    #[error("invalid record batch at byte {position} of the append: {source}")]
    InvalidBatch {
        /// Byte position of the bad batch inside the appended bytes.
        position: usize,
        /// Why it was refused.
        #[source]
        source: RecordError,
    },
    /// The append held no batch, or bytes after the last whole batch.
    #[error("append must be one or more whole record batches: {reason}")]
    IncompleteAppend {
        /// What was wrong.
        reason: String,
    },
    /// The append is larger than `max.append.bytes`.
    #[error("append of {size} bytes is larger than max.append.bytes ({max}); send smaller batches")]
    AppendTooLarge {
        /// Bytes offered.
        size: usize,
        /// The limit.
        max: u64,
    },
    /// A compacted log needs a key on every record.
    #[error(
        "record at offset delta {offset_delta} has no key; a compacted log needs a key on every record"
    )]
    KeyRequired {
        /// Offset delta of the keyless record in its batch.
        offset_delta: i32,
    },
    /// The requested offset is outside the log.
    #[error(
        "offset {requested} is out of range: the log holds offsets {log_start} to {log_end} (exclusive)"
    )]
    OffsetOutOfRange {
        /// The offset asked for.
        requested: u64,
        /// First offset still in the log.
        log_start: u64,
        /// Offset the next append will get.
        log_end: u64,
    },
    /// Stored bytes failed a check. Everything before `position` in that file is still served.
    #[error("corrupt data in {} at byte {position}: {reason}; run sluice-log-dump on the directory to inspect it", path.display())]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte position of the bad batch.
        position: u64,
        /// What check failed.
        reason: String,
    },
    /// A setting is out of bounds.
    #[error("invalid setting {setting}: {reason}")]
    InvalidConfig {
        /// Setting name.
        setting: String,
        /// Why.
        reason: String,
    },
    /// A write failed and could not be rolled back; the log refuses appends until reopened
    /// (reopening truncates the partial write).
    #[error("log {} refuses appends after an unrecoverable write error ({reason}); reopen it to recover", path.display())]
    Failed {
        /// The log directory.
        path: PathBuf,
        /// The original error.
        reason: String,
    },
    /// The log is open in another process or another `Log` value.
    #[error("log directory {} is locked by another process", path.display())]
    Locked {
        /// The log directory.
        path: PathBuf,
    },
}

impl StorageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Result alias for storage operations.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
