//! Starts the real `sluice` broker binary for the Rust tests of the exported API (as
//! sdk-rust/tests/common does).
//!
//! This crate does not depend on the server crate, so Cargo does not build the binary for these
//! tests: the first broker started builds it (`cargo build -p sluice-server --bin sluice`, a
//! no-op when it is up to date) into the same target directory. `SLUICE_BIN` names a binary
//! to use instead.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

/// The workspace root (this crate lives in `sdk-uniffi/`).
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("sdk-uniffi has a parent")
        .to_path_buf()
}

/// The `sluice` binary, built once per test process.
pub fn broker_binary() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("SLUICE_BIN") {
            return PathBuf::from(bin);
        }
        let root = workspace_root();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|t| if t.is_relative() { root.join(t) } else { t })
            .unwrap_or_else(|| root.join("target"));
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "sluice-server", "--bin", "sluice"])
            .current_dir(&root)
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .expect("run cargo to build the sluice broker");
        let bin = target.join("debug").join("sluice");
        assert!(
            status.success() && bin.exists(),
            "could not build the broker binary {} (cargo build -p sluice-server --bin sluice: {status}); \
             build it yourself or set SLUICE_BIN",
            bin.display()
        );
        bin
    })
}

/// A running broker with its own data directory; killed on drop.
pub struct TestBroker {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl TestBroker {
    /// `sluice serve --listen 127.0.0.1:0` in a fresh directory.
    pub fn start(extra: &[&str]) -> TestBroker {
        Self::start_on(tempfile::tempdir().expect("temp dir"), "127.0.0.1:0", extra)
    }

    /// Starts on `listen` with data in `dir`, and waits for the readiness line (which carries
    /// the address actually bound).
    fn start_on(dir: tempfile::TempDir, listen: &str, extra: &[&str]) -> TestBroker {
        let mut child = Command::new(broker_binary())
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(dir.path().join("data"))
            .args(extra)
            .env("SLUICE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn sluice");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("sluice exited before it was ready")
                .expect("read stdout");
            if let Some(rest) = line.strip_prefix("sluice listening on http://") {
                let addr = rest.split_whitespace().next().expect("address");
                break addr.parse().expect("socket address");
            }
        };
        // Keep draining stdout so the broker never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        TestBroker { child, addr, dir }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A built example plugin from the separate `plugins/` workspace, by crate name with
/// underscores (`keyword_filter`). The examples are built once per test binary with
///
/// ```text
/// cd plugins && cargo build --release --locked --target wasm32-unknown-unknown
/// ```
///
/// into `<target dir>/plugins` (its own target dir, so the nested cargo never waits on the
/// outer one's lock), as the plugin host's tests do. `SLUICE_PLUGINS_DIR` names a directory of
/// already-built `.wasm` files instead.
pub fn example_plugin(name: &str) -> Vec<u8> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("SLUICE_PLUGINS_DIR") {
            return PathBuf::from(dir);
        }
        // CARGO_TARGET_TMPDIR is <target dir>/tmp.
        let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("the tmp dir is inside the target dir")
            .join("plugins");
        // From plugins/, so that plugins/.cargo/config.toml applies.
        let output = Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "--locked",
                "--target",
                "wasm32-unknown-unknown",
            ])
            .current_dir(workspace_root().join("plugins"))
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
    });
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The broker's open WebSocket connections, from its Prometheus `/metrics` (a plain HTTP/1.0
/// GET, so the tests need no HTTP client crate).
pub fn websocket_connections(addr: SocketAddr) -> u64 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect for /metrics");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: sluice\r\n\r\n")
        .expect("send the /metrics request");
    let mut body = String::new();
    stream.read_to_string(&mut body).expect("read /metrics");
    body.lines()
        .find_map(|l| {
            let rest = l.strip_prefix("sluice_websocket_connections")?;
            rest.split_whitespace().last()?.parse::<f64>().ok()
        })
        .unwrap_or_else(|| panic!("no sluice_websocket_connections in /metrics:\n{body}"))
        as u64
}
