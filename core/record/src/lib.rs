//! Kafka RecordBatch v2 (magic 2), the record format Sluice stores on disk and sends on the
//! wire.
//!
//! What this crate is for:
//!
//! - **Reading untrusted bytes safely.** [`Batch::validate`] checks a batch from a client or a
//!   disk (header, CRC-32C, counts and lengths against the bytes actually present) without
//!   allocating; nothing a peer writes in a count or length sizes an allocation or an index.
//! - **Zero-copy views.** [`Batch`], [`Record`] and [`Batches`] borrow from the input; keys,
//!   values and headers are slices of it.
//! - **In-place header rewrites** for the append path: [`set_base_offset`],
//!   [`set_partition_leader_epoch`] (no CRC recompute needed) and [`update_crc`].
//! - **Encoding** with [`BatchBuilder`], which appends to a caller's buffer and allocates
//!   nothing per record, and **compaction** with [`retain_records`].
//!
//! What it is not for: compression (compressed batches are recognised, validated up to their
//! header and CRC, and refused with [`RecordError::Compressed`] when records must be walked),
//! legacy message formats (magic 0 and 1), and anything about networking or files.
//!
//! The byte layouts are documented in [`batch`] (the batch header) and [`record`] (records).
//!
//! # Example
//!
//! ```
//! use sluice_record::{Batch, BatchBuilder};
//!
//! let mut out = Vec::new();
//! let mut builder = BatchBuilder::new(&mut out, 0, 1_700_000_000_000);
//! builder.push(1_700_000_000_000, Some(b"user-1"), Some(b"hello"), &[]);
//! builder.push(1_700_000_000_005, None, Some(b"world"), &[(b"trace", Some(b"42"))]);
//! let range = builder.finish().expect("two records were pushed");
//!
//! // The broker assigns offsets by rewriting the header in place.
//! sluice_record::set_base_offset(&mut out[range.clone()], 100);
//!
//! let batch = Batch::new(&out[range])?;
//! batch.validate()?;
//! assert_eq!(batch.header().record_count, 2);
//! assert_eq!(batch.header().next_offset(), 102);
//!
//! let mut records = batch.records()?;
//! let second = records.nth(1).expect("two records")?;
//! assert_eq!(second.offset(batch.header().base_offset), 101);
//! assert_eq!(second.timestamp(batch.header().base_timestamp), 1_700_000_000_005);
//! assert_eq!(second.key, None);
//! assert_eq!(second.value, Some(&b"world"[..]));
//! let (name, value) = second.headers().next().expect("one header")?;
//! assert_eq!((name, value), (&b"trace"[..], Some(&b"42"[..])));
//! # Ok::<(), sluice_record::RecordError>(())
//! ```

pub mod batch;
mod builder;
mod error;
pub mod record;
pub mod varint;

pub use batch::{
    Batch, BatchHeader, Batches, HEADER_LEN, LOG_OVERHEAD, MAGIC, MIN_BATCH_LEN, set_base_offset,
    set_partition_leader_epoch, update_crc,
};
pub use builder::{BatchBuilder, retain_records};
pub use error::RecordError;
pub use record::{Headers, Record, Records};
