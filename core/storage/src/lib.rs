//! `sluice-storage`: one partition's log — an append-only sequence of Kafka RecordBatch v2
//! batches, kept as a directory of segment files with sparse memory-mapped indexes.
//!
//! This crate is the bottom of the Sluice broker: it knows bytes, offsets, timestamps and files.
//! It does not know topics, partitions, replication or the network; the broker (`sluice-broker`)
//! owns many [`Log`]s and decides the high watermark.
//!
//! # What a log does
//!
//! - [`Log::append`] validates one or more record batches sent by a client (length, magic,
//!   CRC-32C, record count and structure — without decoding records), assigns offsets by
//!   rewriting each batch header in place (base offset and leader epoch are outside the CRC)
//!   and writes them. One writer at a time; readers never wait for it.
//! - [`Log::read_into`] returns whole batches from the one containing the requested offset,
//!   up to a byte budget, below the high watermark or the log end.
//! - [`Log::offset_for_timestamp`] finds the first record at or after a timestamp.
//! - Segments roll on `segment.bytes`, `segment.ms` or a full index; [`Log::apply_retention`]
//!   deletes whole closed segments by age or size; [`Log::compact`] keeps the latest record per
//!   key. [`Maintainer`] runs both in the background.
//! - [`Durability`] decides when appends are fsynced; `always` shares one fsync among
//!   concurrent appends (group commit).
//! - [`Log::open`] recovers: it trusts what the recovery checkpoint vouches for and scans only
//!   the tail written after the last fsync, cutting a torn or corrupt end. A clean
//!   [`Log::close`] makes the next open scan nothing.
//!
//! # On disk
//!
//! ```text
//! 00000000000000000000.log         batches, back to back, as appended (offsets assigned)
//! 00000000000000000000.index       sparse offset -> position (8-byte entries)
//! 00000000000000000000.timeindex   sparse max timestamp -> offset (12-byte entries)
//! 00000000000000052311.log         the next segment, named by its base offset
//! ...
//! recovery-checkpoint              what an open may trust without scanning
//! .lock                            flock held while the log is open
//! ```
//!
//! The index formats are documented in the `index` module and the checkpoint in the
//! `checkpoint` module, both at version 1. `sluice-log-dump DIR` prints a log directory.
//!
//! # Example
//!
//! ```
//! use sluice_record::BatchBuilder;
//! use sluice_storage::{Log, LogConfig, ReadBound};
//!
//! let dir = tempfile::tempdir()?;
//! let log = Log::open(dir.path(), LogConfig::default())?;
//!
//! let mut batch = Vec::new();
//! let mut b = BatchBuilder::new(&mut batch, 0, 1_700_000_000_000);
//! b.push(1_700_000_000_000, Some(b"user-1"), Some(b"hello"), &[]);
//! b.push(1_700_000_000_001, Some(b"user-2"), Some(b"world"), &[]);
//! b.finish();
//!
//! let info = log.append(&mut batch, 0)?;
//! assert_eq!((info.first_offset, info.last_offset), (0, 1));
//! log.set_high_watermark(info.log_end_offset);
//!
//! let (bytes, read) = log.read(0, 1 << 20, ReadBound::HighWatermark)?;
//! assert_eq!(read.next_offset, 2);
//! assert_eq!(bytes, batch); // stored byte for byte, offsets assigned
//! log.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod checkpoint;
mod cleaner;
mod config;
mod epochs;
mod error;
mod index;
mod log;
mod maintainer;
mod segment;

pub use cleaner::CompactionReport;
pub use config::{CleanupPolicy, Durability, LogConfig, SETTINGS, SettingDef};
pub use error::{Result, StorageError};
pub use log::{
    AppendInfo, Log, ReadBound, ReadInfo, RecoveryReport, RetentionReport, SegmentInfo, now_ms,
};
pub use maintainer::{Maintainer, MaintainerConfig};
