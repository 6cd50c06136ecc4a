#!/usr/bin/env bash
# Runs the fabric: builds, stands up two switchd hosts in one cluster and walks through
# container networking step by step, then cleans up (--keep: keep it until Enter). Needs root;
# under sudo it builds as the invoking user. Ctrl-C at any point leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root "the demo creates network namespaces and TAP devices"
scripts/deps.sh demo
as_builder cargo build --release --workspace --bins
# Whatever ends the demo (its end, a failure, Ctrl-C), what it made goes: switchsim demo
# removes it itself, and `switchsim clean` takes what an interrupted run left.
trap 'target/release/switchsim clean --quiet || true' EXIT
trap 'exit 130' INT TERM
target/release/switchsim demo "$@"
