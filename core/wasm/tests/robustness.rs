//! Random damage, to modules and to batches: the host answers with errors, never panics, and
//! reads batches exactly as `sluice-record` does.

mod common;

use common::{host, params, push_batch, wat};
use sluice_record::Batches;
use sluice_wasm::{Limits, PluginError};

/// xorshift64*: deterministic, dependency-free randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Overwrites, inserts or deletes a few random bytes.
    fn damage(&mut self, bytes: &mut Vec<u8>, from: usize) {
        for _ in 0..1 + self.below(3) {
            let at = from + self.below(bytes.len() - from);
            match self.below(4) {
                0 => bytes.insert(at, self.next() as u8),
                1 if bytes.len() > from + 1 => {
                    bytes.remove(at);
                }
                2 => bytes[at] ^= 1 << self.below(8),
                _ => bytes[at] = self.next() as u8,
            }
        }
    }
}

fn sample_batches() -> Vec<u8> {
    let headers: &[(&[u8], Option<&[u8]>)] = &[(b"h", Some(b"value")), (b"n", None)];
    let long = vec![b'L'; 300];
    let mut out = Vec::new();
    push_batch(
        &mut out,
        0,
        &[
            (Some(b"k1"), Some(b"v1"), headers),
            (None, None, &[]),
            (Some(&long), Some(b""), headers),
        ],
    );
    push_batch(&mut out, 3, &[(None, Some(&long), &[])]);
    out
}

/// What sluice-record says: `Some(record count)` if every batch walks cleanly.
fn reference_count(bytes: &[u8]) -> Option<usize> {
    let mut count = 0;
    for batch in Batches::new(bytes) {
        let batch = batch.ok()?;
        if batch.header().is_control() {
            continue;
        }
        for record in batch.records().ok()? {
            record.ok()?;
            count += 1;
        }
    }
    Some(count)
}

#[test]
fn damaged_batches_are_read_exactly_as_sluice_record_reads_them() {
    let host = host();
    let plugin = host
        .compile(
            "drop-tombstones",
            &wat("examples/wat/drop_tombstones.wat"),
            Limits::default(),
        )
        .unwrap();
    let filter = plugin.filter(&params(&[])).unwrap();
    let mut instance = filter.instance().unwrap();
    let original = sample_batches();
    let mut rng = Rng(0x5EED_0001);
    let mut keep = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..3000 {
        let mut bytes = original.clone();
        // Damage past the header's fixed fields most of the time, where the records are.
        let from = if rng.below(4) == 0 { 0 } else { 61 };
        rng.damage(&mut bytes, from);
        let result = instance.run(&bytes, &mut keep);
        match (reference_count(&bytes), result) {
            (Some(n), Ok(summary)) => {
                assert_eq!(summary.records, n);
                assert_eq!(keep.len(), n);
                accepted += 1;
            }
            (None, Err(PluginError::InvalidBatch { .. })) => refused += 1,
            (reference, result) => {
                panic!("sluice-record says {reference:?}, the host says {result:?}")
            }
        }
    }
    // Both outcomes were exercised.
    assert!(
        accepted > 50 && refused > 50,
        "{accepted} accepted, {refused} refused"
    );
}

#[test]
fn damaged_modules_never_panic_the_host() {
    let host = host();
    let original = wat("examples/wat/drop_tombstones.wat");
    let batches = sample_batches();
    let mut rng = Rng(0x5EED_0002);
    let limits = Limits {
        call_timeout_ms: 20,
        ..Limits::default()
    };
    let (mut compiled, mut ran) = (0, 0);
    for _ in 0..400 {
        let mut module = original.clone();
        // Keep the 8-byte preamble most of the time so that damage reaches the sections.
        let from = if rng.below(8) == 0 { 0 } else { 8 };
        rng.damage(&mut module, from);
        let Ok(plugin) = host.compile("damaged", &module, limits.clone()) else {
            continue;
        };
        compiled += 1;
        let Ok(filter) = plugin.filter(&params(&[])) else {
            continue;
        };
        let mut keep = Vec::new();
        if filter
            .instance()
            .and_then(|mut i| i.run(&batches, &mut keep))
            .is_ok()
        {
            assert_eq!(keep.len(), 4);
            ran += 1;
        }
    }
    assert!(compiled > 0 && ran > 0, "{compiled} compiled, {ran} ran");
}
