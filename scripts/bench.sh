#!/usr/bin/env bash
# The data-plane benchmark: installs the peers when missing (iperf3, Open vSwitch, vde2,
# wireguard-go), builds, and measures every path side by side in one run (switchsim bench).
# Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "the benchmark creates network namespaces and TAP devices: run it as root" >&2
  exit 1
fi
scripts/deps.sh
declare -A pkg=([ovs-vswitchd]=openvswitch-switch [vde_switch]=vde2 [wireguard-go]=wireguard-go [wg]=wireguard-tools)
missing=()
for cmd in "${!pkg[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg[$cmd]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
cargo build --release --workspace --bins
exec target/release/switchsim bench "$@"
