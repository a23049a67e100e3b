//! WebSocket frames as a client sends them, in both encodings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_protocol::frame::{ClientFrame, from_binary, from_json, to_binary, to_json};

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = from_binary::<ClientFrame>(data) {
        // Whatever decodes re-encodes and decodes to the same frame.
        assert_eq!(from_binary::<ClientFrame>(&to_binary(&f)).unwrap(), f);
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(f) = from_json::<ClientFrame>(text)
    {
        assert_eq!(from_json::<ClientFrame>(&to_json(&f)).unwrap(), f);
    }
});
