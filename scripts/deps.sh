#!/usr/bin/env bash
# Installs the Debian packages the fabric, its demo and its tests use, when missing.
set -euo pipefail
declare -A pkg=(
  [ip]=iproute2 [ping]=iputils-ping [nft]=nftables [tcpdump]=tcpdump
  [nsenter]=util-linux [timeout]=coreutils [sysctl]=procps
  [dig]=bind9-dnsutils [dnsmasq]=dnsmasq-base [curl]=curl [getent]=libc-bin [tshark]=tshark [iperf3]=iperf3
  [ethtool]=ethtool [podman]=podman [runc]=runc [systemd-analyze]=systemd
  [dockerd]=docker.io [docker-compose]=docker-compose
)
# Packages known by name, not by a command: the static busybox that the podman test's
# containers run, and Debian's reference CNI plugins chained with switch-cni.
by_name=(busybox-static containernetworking-plugins)
missing=()
for cmd in "${!pkg[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg[$cmd]}")
done
for p in "${by_name[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages ${missing[*]}: run as root so they can be installed" >&2
    exit 1
  fi
  echo "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for m in tun; do
  [ -e /dev/net/tun ] || modprobe "$m" 2>/dev/null || true
done
