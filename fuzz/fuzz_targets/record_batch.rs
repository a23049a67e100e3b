//! Record batch bytes as a client sends them: walking, validation, record and header
//! iteration and compaction's rewrite must never panic or allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_record::{Batches, retain_records};

fuzz_target!(|data: &[u8]| {
    for batch in Batches::new(data).flatten() {
        let valid = batch.validate().is_ok();
        if let Ok(records) = batch.records() {
            let mut n = 0usize;
            for r in records {
                let Ok(r) = r else { break };
                n += 1;
                for h in r.headers() {
                    if h.is_err() {
                        break;
                    }
                }
            }
            if valid {
                assert_eq!(n, batch.header().record_count as usize, "a valid batch iterates to its count");
            }
        }
        let mut out = Vec::new();
        let _ = retain_records(&batch, &mut out, |i, _| i % 2 == 0);
    }
});
