#!/usr/bin/env bash
# Installs the Debian packages one purpose needs, when missing, saying which and why:
#   scripts/deps.sh demo    the demo (scripts/demo.sh)
#   scripts/deps.sh test    every test (scripts/test.sh)
#   scripts/deps.sh bench   the data-plane benchmark and its peers (scripts/bench.sh)
# Installing needs root; without it, the missing packages are named and nothing changes.
set -euo pipefail
purpose=${1:-test}

# command|package|why. A package known only by name (no command of its own) is "-|package|why".
demo=(
  "ip|iproute2|namespaces, links and addresses"
  "ping|iputils-ping|the demo's and tests' reachability checks"
  "nft|nftables|switchd's firewall: isolation, outbound NAT, published ports"
  "nsenter|util-linux|starting each host's switchd in its namespace"
  "timeout|coreutils|bounding commands that may hang"
  "sysctl|procps|forwarding and IPv6 settings of the test namespaces"
  "curl|curl|reaching published ports"
  "getent|libc-bin|name lookups through a sandbox's resolver"
)
test=(
  "${demo[@]}"
  "tcpdump|tcpdump|captures that check what crossed a wire"
  "dig|bind9-dnsutils|asking the embedded DNS"
  "dnsmasq|dnsmasq-base|an upstream resolver and a peer's DHCP server"
  "tshark|tshark|decoding switchctl's captures"
  "iperf3|iperf3|bulk transfers through the overlay"
  "ethtool|ethtool|checking interfaces' offloads"
  "podman|podman|the CNI plugin under a real runtime"
  "runc|runc|podman's container runtime"
  "systemd-analyze|systemd|verifying switchd's unit file"
  "dockerd|docker.io|the Docker Engine plugin's tests"
  "docker-compose|docker-compose|a Compose project on switchd's networks"
  "-|busybox-static|the programs inside the podman and Docker tests' containers"
  "-|containernetworking-plugins|the reference CNI plugins chained with switch-cni"
)
bench=(
  "${demo[@]}"
  "iperf3|iperf3|throughput of every path"
  "ovs-vswitchd|openvswitch-switch|Open vSwitch's userspace datapath, a peer measured"
  "vde_switch|vde2|vde_switch, a peer measured"
  "wireguard-go|wireguard-go|VXLAN over wireguard-go, the encrypted overlay's peer"
  "wg|wireguard-tools|configuring wireguard-go"
)
case "$purpose" in
  demo) wanted=("${demo[@]}") what="the demo" ;;
  test) wanted=("${test[@]}") what="the tests" ;;
  bench) wanted=("${bench[@]}") what="the benchmark" ;;
  *)
    echo "scripts/deps.sh: unknown purpose '$purpose': give demo, test or bench" >&2
    exit 2
    ;;
esac

missing=()
reasons=()
for entry in "${wanted[@]}"; do
  IFS='|' read -r cmd package why <<<"$entry"
  if [ "$cmd" = "-" ]; then
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' && continue
  else
    command -v "$cmd" >/dev/null 2>&1 && continue
  fi
  case " ${missing[*]} " in *" $package "*) continue ;; esac
  missing+=("$package")
  reasons+=("  $package: $why")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages for $what; run as root to install them:" >&2
    printf '%s\n' "${reasons[@]}" >&2
    exit 1
  fi
  echo "installing ${#missing[@]} Debian package(s) for $what:"
  printf '%s\n' "${reasons[@]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -e /dev/net/tun ]; then
  echo "loading the tun module: switchd's sandbox ports are TAP devices"
  modprobe tun 2>/dev/null || true
fi
