//! Starts the real `sluice` binary for integration tests.
#![allow(dead_code)]

pub mod net;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running broker process with its own data directory; killed on drop.
pub struct TestBroker {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl TestBroker {
    /// Starts `sluice serve --listen 127.0.0.1:0` in a fresh directory with extra arguments,
    /// and waits for its readiness line (which carries the chosen port).
    pub fn start(extra: &[&str]) -> TestBroker {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, extra)
    }

    /// Like `start`, in an existing directory (to restart on the same data).
    pub fn start_in(dir: tempfile::TempDir, extra: &[&str]) -> TestBroker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
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

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// SIGTERM, then wait for a clean exit; returns the directory for a restart.
    pub fn stop(mut self) -> tempfile::TempDir {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc_kill(self.child.id() as i32, 15);
        }
        let status = wait_timeout(&mut self.child, Duration::from_secs(30))
            .expect("broker did not stop after SIGTERM");
        assert!(status.success(), "broker exited with {status}");
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    /// SIGKILL: no clean shutdown.
    pub fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = std::time::Instant::now();
    loop {
        if let Some(s) = child.try_wait().ok().flatten() {
            return Some(s);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
