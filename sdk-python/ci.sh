#!/usr/bin/env bash
# sdk-python CI: build the `sluice` Python package (dev profile, shared target dir) into a
# virtualenv and run its tests against the real broker. Idempotent; installs what it needs.
#
#   SLUICE_BIN        the broker to test against (default: builds $CARGO_TARGET_DIR/debug/sluice)
#   CARGO_TARGET_DIR  the shared target dir (default: <repo>/target)
#   PYTEST_ARGS       extra pytest arguments
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"

step() { printf '\n\033[1m--> sdk-python: %s\033[0m\n' "$*"; }

# Python with venv and pip (Debian splits them out).
if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  step "installing python3 and python3-venv"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
fi

venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  step "creating $venv"
  python3 -m venv "$venv"
fi
step "pip install maturin pytest"
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
  "maturin>=1.9.4,<2" "pytest>=7" "pytest-timeout>=2" "mypy>=1.10"

if [ -z "${SLUICE_BIN:-}" ]; then
  step "building the broker"
  cargo build --locked -p sluice-server --bin sluice
  export SLUICE_BIN="$CARGO_TARGET_DIR/debug/sluice"
fi

# The example plugins the filter tests upload, built as the broker's own tests build them (a
# target dir of their own inside the shared one; Fresh when `dev test` built them already).
if [ -z "${SLUICE_PLUGINS_DIR:-}" ]; then
  step "building the example plugins (wasm32-unknown-unknown)"
  rustup target list --installed 2>/dev/null | grep -q '^wasm32-unknown-unknown$' \
    || rustup target add wasm32-unknown-unknown
  (cd "$repo/plugins" && env -u RUSTFLAGS CARGO_TARGET_DIR="$CARGO_TARGET_DIR/plugins" \
    cargo build --release --locked --target wasm32-unknown-unknown -q)
  export SLUICE_PLUGINS_DIR="$CARGO_TARGET_DIR/plugins/wasm32-unknown-unknown/release"
fi

step "maturin develop (dev profile) into the venv"
(cd "$here" && VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" \
  "$venv/bin/maturin" develop --locked --quiet)

step "mypy --strict: the type stubs against the package and the examples"
"$venv/bin/python" -m mypy --strict --no-error-summary --cache-dir "$venv/mypy-cache" "$here/python/sluice" "$repo/examples/python"

step "pytest"
cd "$here"
# shellcheck disable=SC2086
"$venv/bin/python" -m pytest -q ${PYTEST_ARGS:-}
