#!/usr/bin/env bash
# Browser end-to-end tests: the web console and the JavaScript client in headless Chromium
# against the real `sluice` binary. Installs what it needs (idempotently), builds the broker and
# the example plugins, runs the tests; screenshots go to tests/browser/artifacts/.
#
#   tests/browser/run.sh            (from anywhere; honours $CARGO_TARGET_DIR, default target/)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if [ ! -x /usr/bin/chromium ]; then
  step "installing Chromium (Debian package)"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi
command -v node >/dev/null || { echo "node not found: install Node.js 20 or later" >&2; exit 1; }

step "npm ci (playwright-core, ws)"
cd "$here"
if ! npm ci --no-audit --no-fund --loglevel=error; then
  npm install --no-audit --no-fund --loglevel=error
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
case "$CARGO_TARGET_DIR" in /*) ;; *) CARGO_TARGET_DIR="$root/$CARGO_TARGET_DIR" ;; esac
# ./dev test passes the broker it already built (SLUICE_BIN), so nothing is built twice.
if [ -z "${SLUICE_BIN:-}" ] || [ ! -x "$SLUICE_BIN" ]; then
  step "cargo build -p sluice-server --bin sluice"
  (cd "$root" && cargo build --locked -p sluice-server --bin sluice)
  SLUICE_BIN="$CARGO_TARGET_DIR/debug/sluice"
fi

# The example plugins the tests upload (the JSON filter and partitioner), built
# as core/wasm's tests build them: from plugins/ (its .cargo/config.toml applies), into a target
# dir of their own under the shared one, so this cargo never waits on the workspace's locks.
if [ -z "${PLUGINS_DIR:-}" ]; then
  step "example plugins (cargo build --release --target wasm32-unknown-unknown in plugins/)"
  rustup target list --installed 2>/dev/null | grep -q '^wasm32-unknown-unknown$' \
    || rustup target add wasm32-unknown-unknown
  (cd "$root/plugins" && env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS CARGO_TARGET_DIR="$CARGO_TARGET_DIR/plugins" \
    cargo build --release --locked --target wasm32-unknown-unknown)
  PLUGINS_DIR="$CARGO_TARGET_DIR/plugins/wasm32-unknown-unknown/release"
fi

# The Rust SDK group member the tests run next to a console page: an ignored test of the server
# crate, run as a process of its own (server/tests/browser_member.rs). ./dev test has built every
# test binary already (`cargo test --workspace --no-run`), so this only looks its path up; with
# --workspace, features resolve as they did there and nothing is built again.
if [ -z "${RUST_MEMBER:-}" ]; then
  step "cargo test --workspace --test browser_member --no-run (the Rust group member)"
  RUST_MEMBER=$(cd "$root" && cargo test --workspace --locked --test browser_member --no-run --message-format=json \
    | node -e 'let s = ""; process.stdin.on("data", (d) => { s += d; }).on("end", () => {
        for (const line of s.split("\n")) {
          if (!line.startsWith("{")) continue;
          const m = JSON.parse(line);
          if (m.reason === "compiler-artifact" && m.target?.name === "browser_member" && m.executable) console.log(m.executable);
        }
      });')
  [ -x "$RUST_MEMBER" ] || { echo "could not find the browser_member test binary" >&2; exit 1; }
fi

step "browser tests (headless Chromium)"
mkdir -p "$here/artifacts"
SLUICE_BIN="$SLUICE_BIN" PLUGINS_DIR="$PLUGINS_DIR" RUST_MEMBER="$RUST_MEMBER" ARTIFACTS="$here/artifacts" \
  node --test --test-concurrency=1 --test-timeout=120000 "$here/e2e.test.mjs"
echo "screenshots: $here/artifacts/"
