#!/usr/bin/env bash
# Runs every test: unit and property tests, then the end-to-end tests of the real binaries in
# namespaces (root), then the Debian package built and checked. Installs what the tests need
# first. Under sudo it builds as the invoking user and runs only the tests as root. Ctrl-C at
# any point leaves no namespace, interface or switchd behind.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root "the test suite runs real switchd instances in network namespaces"
scripts/deps.sh test
export SWITCH_E2E=require
as_builder cargo build --workspace --bins
as_builder cargo test --workspace --no-run --quiet
log=$(mktemp)
# Whatever ends the run, what its tests made goes (`switchsim clean` takes what a test that
# was interrupted left), and target/ is the builder's again.
trap 'target/debug/switchsim clean --quiet || true; give_target_back; rm -f "$log"' EXIT
trap 'exit 130' INT TERM
status=0
as_root_cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?
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
