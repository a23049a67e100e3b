//! The compiled-artifact cache: one file per module, named by the module's sha256.
//!
//! # File format, version 1
//!
//! | offset | size | field                                           |
//! |-------:|-----:|-------------------------------------------------|
//! |      0 |    8 | magic `SLUICEWC`                                |
//! |      8 |    4 | format version, u32 little-endian, 1            |
//! |     12 |   32 | sha256 of the WebAssembly module it came from   |
//! |     44 |   32 | sha256 of the artifact that follows             |
//! |     76 |    … | the artifact: `wasmtime::Module::serialize`     |
//!
//! Loading checks the magic, the version, the module hash (against the file name's) and the
//! artifact hash before handing the artifact to `Module::deserialize`, which itself refuses
//! artifacts from another Wasmtime version or engine configuration. Files are written to a
//! temporary name and renamed, so a crash leaves no half-written artifact under the real name.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::{Engine, Module};

const MAGIC: &[u8; 8] = b"SLUICEWC";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 32 + 32;

/// Compiled modules on disk, by module sha256.
#[derive(Debug)]
pub(crate) struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    pub fn new(dir: PathBuf) -> Self {
        ArtifactCache { dir }
    }

    fn path(&self, module_sha256: &[u8; 32]) -> PathBuf {
        self.dir.join(format!("{}.cwasm", hex(module_sha256)))
    }

    /// The cached module, or `None` (missing, damaged, or from another engine: the caller then
    /// compiles and [`store`](Self::store)s it again).
    pub fn load(&self, engine: &Engine, module_sha256: &[u8; 32]) -> Option<Module> {
        let path = self.path(module_sha256);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read cached plugin artifact; recompiling");
                return None;
            }
        };
        let artifact = match check(&bytes, module_sha256) {
            Ok(artifact) => artifact,
            Err(reason) => {
                tracing::warn!(path = %path.display(), reason, "ignoring damaged plugin artifact; recompiling");
                return None;
            }
        };
        // SAFETY: `Module::deserialize` trusts its input to be an artifact Wasmtime wrote. This
        // one was written by `store` below (this host, same cache layout) and its sha256 was
        // just checked, so a torn or damaged file is refused before this point; Wasmtime then
        // refuses artifacts of another version or engine configuration. The cache directory
        // is the host's own (in the broker's data dir): anyone able to write there can already
        // replace the broker's files.
        match unsafe { Module::deserialize(engine, artifact) } {
            Ok(module) => Some(module),
            Err(e) => {
                tracing::info!(path = %path.display(), error = %e, "cached plugin artifact is for another engine; recompiling");
                None
            }
        }
    }

    /// Writes the artifact; failures are logged, not returned (the cache is an optimisation).
    pub fn store(&self, module_sha256: &[u8; 32], module: &Module) {
        let path = self.path(module_sha256);
        if let Err(e) = self.try_store(&path, module_sha256, module) {
            tracing::warn!(path = %path.display(), error = %e, "cannot cache plugin artifact");
        }
    }

    fn try_store(
        &self,
        path: &Path,
        module_sha256: &[u8; 32],
        module: &Module,
    ) -> Result<(), Box<dyn std::error::Error>> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let artifact = module.serialize().map_err(|e| e.to_string())?;
        let artifact_sha256: [u8; 32] = Sha256::digest(&artifact).into();
        let tmp = self.dir.join(format!(
            ".{}.{}.{}.tmp",
            hex(module_sha256),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(MAGIC)?;
            f.write_all(&VERSION.to_le_bytes())?;
            f.write_all(module_sha256)?;
            f.write_all(&artifact_sha256)?;
            f.write_all(&artifact)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        Ok(result?)
    }
}

/// Checks a cache file's header and hash; returns the artifact.
fn check<'b>(bytes: &'b [u8], module_sha256: &[u8; 32]) -> Result<&'b [u8], &'static str> {
    if bytes.len() < HEADER_LEN {
        return Err("shorter than its header");
    }
    let (header, artifact) = bytes.split_at(HEADER_LEN);
    if &header[0..8] != MAGIC {
        return Err("bad magic");
    }
    if header[8..12] != VERSION.to_le_bytes() {
        return Err("unknown format version");
    }
    if &header[12..44] != module_sha256 {
        return Err("module hash differs from its file name");
    }
    let computed: [u8; 32] = Sha256::digest(artifact).into();
    if header[44..76] != computed {
        return Err("artifact hash mismatch");
    }
    Ok(artifact)
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}
