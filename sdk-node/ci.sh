#!/usr/bin/env bash
# The Node package's CI: installs what it needs, builds the native addon (dev profile, into the
# shared $CARGO_TARGET_DIR, next to the workspace's own build so no dependency is built twice)
# and the TypeScript layer, then runs the tests against the real broker ($SLUICE_BIN).
# Idempotent; run from anywhere.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd .. && pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt-get update && apt-get install -y nodejs npm
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  echo "sdk-node needs Node.js 20 or later (found $(node --version))" >&2
  exit 1
fi

if [ -z "${SLUICE_BIN:-}" ]; then
  cargo build --locked -p sluice-server --bin sluice
  export SLUICE_BIN="$CARGO_TARGET_DIR/debug/sluice"
fi

# The example plugins (the filter test uploads keyword_filter.wasm), built as the Rust tests
# build them: from plugins/ (its .cargo/config.toml applies), into a target dir of their own.
if [ -z "${SLUICE_PLUGINS_DIR:-}" ]; then
  rustup target list --installed 2>/dev/null | grep -q '^wasm32-unknown-unknown$' \
    || rustup target add wasm32-unknown-unknown
  (cd "$root/plugins" && env -u RUSTFLAGS CARGO_TARGET_DIR="$CARGO_TARGET_DIR/plugins" \
    cargo build --release --locked --target wasm32-unknown-unknown)
  export SLUICE_PLUGINS_DIR="$CARGO_TARGET_DIR/plugins/wasm32-unknown-unknown/release"
fi

# `npm ci` runs the package's install script: the addon and the TypeScript build.
npm ci --no-audit --no-fund
node --test --test-concurrency=2 test/*.test.js
