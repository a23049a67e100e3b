//! The one error type of this crate.

/// Why a record batch (or a piece of one) was rejected.
///
/// Positions are byte offsets from the start of the batch unless a variant says otherwise.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// Fewer bytes are present than the batch (or its header) needs.
    #[error("record batch truncated: needs {needed} bytes but only {available} are present")]
    Truncated {
        /// Bytes the batch or header needs.
        needed: usize,
        /// Bytes actually present.
        available: usize,
    },

    /// The magic byte is not 2; only the RecordBatch v2 format is understood.
    #[error(
        "unsupported record batch magic {0}: only magic 2 (Kafka RecordBatch v2, Kafka 0.11+) is supported; \
         upgrade the producer or disable legacy message formats"
    )]
    BadMagic(i8),

    /// The batchLength field is too small to hold a batch header.
    #[error(
        "invalid batch length {0}: a v2 batch length is at least 49 (header bytes after baseOffset and batchLength)"
    )]
    BadLength(i32),

    /// The CRC-32C stored in the header does not match the bytes.
    #[error(
        "record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}; the batch is corrupt"
    )]
    CrcMismatch {
        /// CRC stored at byte 17 of the batch.
        stored: u32,
        /// CRC-32C computed over bytes 21 to the end of the batch.
        computed: u32,
    },

    /// The header's recordCount is not positive.
    #[error("invalid record count {0}: a batch holds at least one record")]
    BadRecordCount(i32),

    /// The header's lastOffsetDelta cannot cover recordCount records.
    #[error(
        "invalid lastOffsetDelta {last_offset_delta} for {record_count} records: it must be >= 0 and >= recordCount - 1"
    )]
    BadOffsetDelta {
        /// lastOffsetDelta from the header.
        last_offset_delta: i32,
        /// recordCount from the header.
        record_count: i32,
    },

    /// The records present do not match the header's recordCount.
    #[error("record batch declares {declared} records but its bytes hold {found}")]
    CountMismatch {
        /// recordCount from the header.
        declared: i32,
        /// Records actually found in the batch's bytes.
        found: usize,
    },

    /// The batch is compressed, so its records can't be walked.
    #[error(
        "records can't be walked: compression codec {0} ({name}) is not supported yet; send uncompressed batches",
        name = codec_name(*.0)
    )]
    Compressed(u8),

    /// The attributes name a compression codec that does not exist.
    #[error(
        "unknown compression codec {0} in batch attributes (known: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd)"
    )]
    UnknownCompression(u8),

    /// A record inside the batch is structurally invalid.
    #[error("malformed record batch at byte {position}: {reason}")]
    Malformed {
        /// Byte offset of the problem, from the start of the batch (for errors of
        /// [`varint`](crate::varint) functions: from the start of the slice they were given).
        position: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

fn codec_name(codec: u8) -> &'static str {
    match codec {
        0 => "none",
        1 => "gzip",
        2 => "snappy",
        3 => "lz4",
        4 => "zstd",
        _ => "unknown",
    }
}

impl RecordError {
    /// Shifts the position of a [`RecordError::Malformed`] by `base` bytes.
    pub(crate) fn at(self, base: usize) -> Self {
        match self {
            RecordError::Malformed { position, reason } => RecordError::Malformed {
                position: position.saturating_add(base),
                reason,
            },
            other => other,
        }
    }
}
