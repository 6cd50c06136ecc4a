#!/usr/bin/env bash
# Runs the fabric: builds, stands up two switchd hosts in one cluster and walks through
# container networking step by step, then cleans up (--keep: keep it until Enter). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "the demo creates network namespaces and TAP devices: run it as root" >&2
  exit 1
fi
scripts/deps.sh
cargo build --release --workspace --bins
exec target/release/switchsim demo "$@"
