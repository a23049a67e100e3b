#!/usr/bin/env bash
# Browser end-to-end tests: the web console and the JavaScript client in headless Chromium
# against the real `sluice` binary. Installs what it needs (idempotently), builds the broker,
# runs the tests; screenshots go to tests/browser/artifacts/.
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

step "browser tests (headless Chromium)"
mkdir -p "$here/artifacts"
SLUICE_BIN="$SLUICE_BIN" ARTIFACTS="$here/artifacts" \
  node --test --test-concurrency=1 --test-timeout=60000 "$here/e2e.test.mjs"
echo "screenshots: $here/artifacts/"
