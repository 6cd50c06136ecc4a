#!/usr/bin/env bash
# Runs every test: unit and property tests, then the end-to-end tests of the real binaries in
# namespaces (root). Installs what the tests need first.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "the test suite runs real switchd instances in network namespaces: run it as root" >&2
  exit 1
fi
scripts/deps.sh
export SWITCH_E2E=require
cargo build --workspace --bins
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?
scripts/check-package.sh || status=1
leftover=$(ip netns list | awk '{print $1}' | grep -E '^[a-z]+[0-9]+-' || true)
if [ -n "$leftover" ]; then
  echo "test namespaces left behind: $leftover" >&2
  exit 1
fi
# One closing line for the whole run (cargo prints one summary per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
