//! Shared by the tests and the benchmark: building the example plugins, reading the WAT
//! modules, making record batches.
//!
//! The Rust example plugins are built once per test binary by running
//!
//! ```text
//! cd plugins && cargo build --release --locked --target wasm32-unknown-unknown
//! ```
//!
//! with `CARGO_TARGET_DIR=<this workspace's target dir>/plugins` (a separate target dir, so the
//! nested cargo never waits on the outer one's lock), from `plugins/` so that
//! `plugins/.cargo/config.toml` (SIMD on) applies. Set `SLUICE_PLUGINS_DIR` to a directory
//! of already-built `.wasm` files to skip that. WAT modules are converted with the `wat` crate.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sluice_record::BatchBuilder;
use sluice_wasm::{HostConfig, PluginHost};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The directory holding the built example plugins (`keep_all.wasm`, ...), building them
/// first if needed.
pub fn plugins_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("SLUICE_PLUGINS_DIR") {
            return PathBuf::from(dir);
        }
        // CARGO_TARGET_TMPDIR is <target dir>/tmp.
        let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("the tmp dir is inside the target dir")
            .join("plugins");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        // From plugins/, so that plugins/.cargo/config.toml applies.
        let output = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--locked",
                "--target",
                "wasm32-unknown-unknown",
            ])
            .current_dir(repo().join("plugins"))
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .expect("run cargo to build the example plugins");
        assert!(
            output.status.success(),
            "building the example plugins failed (is the target installed? \
             `rustup target add wasm32-unknown-unknown`):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        target.join("wasm32-unknown-unknown/release")
    })
}

/// A built example plugin, by crate name with underscores (`keyword_filter`).
pub fn example(name: &str) -> Vec<u8> {
    let path = plugins_dir().join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A WAT module under `plugins/`, converted to binary (`hostile/trap.wat`).
pub fn wat(path: &str) -> Vec<u8> {
    let path = repo().join("plugins").join(path);
    wat::parse_file(&path).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// A host with default settings.
pub fn host() -> PluginHost {
    PluginHost::new(HostConfig::default()).expect("start the plugin host")
}

/// Params from pairs.
pub fn params(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A record to encode: key, value, headers.
pub type Rec<'a> = (
    Option<&'a [u8]>,
    Option<&'a [u8]>,
    &'a [(&'a [u8], Option<&'a [u8]>)],
);

/// Appends one batch of `records` at `base_offset` to `out`; timestamps are 1_000 + offset.
pub fn push_batch(out: &mut Vec<u8>, base_offset: i64, records: &[Rec<'_>]) {
    let mut b = BatchBuilder::new(out, base_offset, 1_000 + base_offset);
    for (i, (key, value, headers)) in records.iter().enumerate() {
        b.push(1_000 + base_offset + i as i64, *key, *value, headers);
    }
    let _ = b.finish().expect("at least one record");
}

/// `batches` batches of `per_batch` records each with a null key and a value of `value_len`
/// bytes, offsets from 0.
pub fn uniform_batches(batches: usize, per_batch: usize, value_len: usize) -> Vec<u8> {
    let value = vec![b'x'; value_len];
    let records: Vec<Rec<'_>> = (0..per_batch)
        .map(|_| (None, Some(&value[..]), &[][..]))
        .collect();
    let mut out = Vec::new();
    for b in 0..batches {
        push_batch(&mut out, (b * per_batch) as i64, &records);
    }
    out
}
