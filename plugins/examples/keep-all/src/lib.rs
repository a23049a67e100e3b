//! The trivial filter: keeps every record. The benchmarks use it to measure what the host and
//! the SDK cost per record, with no work of the plugin's own.

use sluice_plugin::{Params, Record};

/// Keeps the record.
#[sluice_plugin::filter]
pub fn keep(_record: &Record, _params: &Params) -> bool {
    true
}
