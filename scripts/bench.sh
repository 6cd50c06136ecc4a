#!/usr/bin/env bash
# The data-plane benchmark: installs the peers when missing (iperf3, Open vSwitch, vde2,
# wireguard-go), builds, and measures every path side by side in one run (switchsim bench;
# its flags pass through: --runs 3, --format json, --plot bench.svg). Needs root; under sudo
# it builds as the invoking user. Ctrl-C at any point leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_root "the benchmark creates network namespaces and TAP devices"
scripts/deps.sh bench
as_builder cargo build --release --workspace --bins
trap 'target/release/switchsim clean --quiet || true' EXIT
trap 'exit 130' INT TERM
target/release/switchsim bench "$@"
