#!/usr/bin/env bash
# sdk-uniffi CI: build the sluice-ffi library (dev profile, shared target dir), generate its
# Python, Kotlin and Swift bindings with uniffi-bindgen (so they never go stale), check the
# Kotlin and Swift sources for the expected API, and run the Python bindings (UniFFI's ctypes
# backend) end to end against the real broker. Idempotent; installs what it needs.
#
#   SLUICE_BIN          the broker to test against (default: builds $CARGO_TARGET_DIR/debug/sluice)
#   SLUICE_PLUGINS_DIR  the built example plugins (default: builds them, as sdk-python does)
#   CARGO_TARGET_DIR    the shared target dir (default: <repo>/target)
#
# The generated sources land in $CARGO_TARGET_DIR/uniffi/{python,kotlin,swift}; Swift and
# Kotlin are not compiled here (docs/bindings.md says why and how to use them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"

step() { printf '\n\033[1m--> sdk-uniffi: %s\033[0m\n' "$*"; }

if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  step "installing python3 and python3-venv"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
fi

if [ -z "${SLUICE_BIN:-}" ]; then
  step "building the broker"
  cargo build --locked -p sluice-server --bin sluice
  export SLUICE_BIN="$CARGO_TARGET_DIR/debug/sluice"
fi

if [ -z "${SLUICE_PLUGINS_DIR:-}" ]; then
  step "building the example plugins (wasm32-unknown-unknown)"
  rustup target list --installed 2>/dev/null | grep -q '^wasm32-unknown-unknown$' \
    || rustup target add wasm32-unknown-unknown
  (cd "$repo/plugins" && env -u RUSTFLAGS CARGO_TARGET_DIR="$CARGO_TARGET_DIR/plugins" \
    cargo build --release --locked --target wasm32-unknown-unknown -q)
  export SLUICE_PLUGINS_DIR="$CARGO_TARGET_DIR/plugins/wasm32-unknown-unknown/release"
fi

# The library without the `cli` feature: the same build as the workspace's (its dependencies
# Fresh after `cargo build --workspace`). The generator is a binary of its own with `cli`.
step "building libsluice_ffi (dev profile)"
cargo build --locked -p sluice-ffi --lib
lib="$CARGO_TARGET_DIR/debug/libsluice_ffi.so"
step "building uniffi-bindgen"
cargo build --locked -p sluice-ffi --features cli --bin uniffi-bindgen
bindgen="$CARGO_TARGET_DIR/debug/uniffi-bindgen"

out="$CARGO_TARGET_DIR/uniffi"
for lang in python kotlin swift; do
  step "generating $lang bindings into $out/$lang"
  rm -rf "${out:?}/$lang"
  mkdir -p "$out/$lang"
  (cd "$here" && "$bindgen" generate --library "$lib" --language "$lang" --out-dir "$out/$lang" --no-format >/dev/null)
done
cp "$lib" "$out/python/"

step "checking the Kotlin and Swift sources for the API"
# Every exported object, constructor and method, in each language's spelling.
check() {  # check <file> <what>...
  local file="$1"; shift
  for what in "$@"; do
    grep -q -- "$what" "$file" || { echo "missing in $file: $what" >&2; exit 1; }
  done
}
kt="$(find "$out/kotlin" -name 'sluice_ffi.kt')"
[ -n "$kt" ] || { echo "no sluice_ffi.kt generated" >&2; exit 1; }
check "$kt" "^package dev.sluice" \
  "class SluiceClient" "suspend fun \`connect\`(" "suspend fun \`connectWith\`(" \
  "fun \`admin\`(" "fun \`producer\`(" "suspend fun \`consumer\`(" "fun \`close\`(" \
  "class SluiceProducer" "suspend fun \`send\`(" "suspend fun \`sendBatch\`(" "suspend fun \`sendValues\`(" "suspend fun \`flush\`(" \
  "class SluiceConsumer" "suspend fun \`pollBatch\`(" "suspend fun \`commit\`(" \
  "suspend fun \`commitOffsets\`(" "suspend fun \`seek\`(" \
  "class SluiceAdmin" "suspend fun \`createTopic\`(" "suspend fun \`listTopics\`(" \
  "suspend fun \`deleteTopic\`(" "suspend fun \`listGroups\`(" "suspend fun \`describeGroup\`(" \
  "suspend fun \`uploadPlugin\`(" "suspend fun \`listPlugins\`(" "suspend fun \`deletePlugin\`(" \
  "sealed class SluiceException" "class Broker(" "data class ProducerRecord" \
  "data class ConsumedRecord" "data class RecordMetadata" "data class FilterOptions" \
  "AutoCloseable"
swift="$out/swift/Sluice.swift"
# (Swift's generator writes `)async throws` in the classes, `) async throws` in the protocols.)
check "$swift" \
  "class SluiceClient" "static func connect(url: String) \?async throws" \
  "static func connectWith(url: String, options: ClientOptions) \?async throws" \
  "func admin()" "func producer(options: ProducerOptions) \?throws" \
  "func consumer(options: ConsumerOptions) \?async throws" "func close()" \
  "class SluiceProducer" "func send(record: ProducerRecord) \?async throws" \
  "func sendBatch(records: \[ProducerRecord\]) \?async throws" "func sendValues(topic: String, values: \[Data\], keys: \[Data\]?)" "func flush() \?async throws" \
  "class SluiceConsumer" "func pollBatch(max: UInt32, timeoutMs: UInt64) \?async throws" \
  "func commit() \?async throws" "func commitOffsets(offsets: \[TopicPartitionOffset\])" \
  "func seek(topic: String, partition: UInt32, offset: UInt64) \?async throws" \
  "class SluiceAdmin" "func createTopic(name: String, partitions: UInt32, configs: \[String: String\])" \
  "func listTopics() \?async throws" "func deleteTopic(name: String)" \
  "func listGroups() \?async throws" "func describeGroup(group: String)" \
  "func uploadPlugin(name: String, module: Data)" "func listPlugins()" "func deletePlugin(name: String)" \
  "enum SluiceError" "case Broker(" "case InvalidInput(" "case Closed" \
  "struct ProducerRecord" "struct ConsumedRecord" "struct RecordMetadata" "struct FilterOptions"
for f in "$out/swift/SluiceFFI.h" "$out/swift/SluiceFFI.modulemap"; do
  [ -s "$f" ] || { echo "missing $f" >&2; exit 1; }
done

venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  step "creating $venv"
  python3 -m venv "$venv"
fi

step "python: the generated bindings against the real broker"
PYTHONPATH="$out/python" "$venv/bin/python" "$here/tests/python/test_bindings.py"
