#!/usr/bin/env bash
# Builds the Debian package (scripts/package.sh) and checks it: it holds the stripped binaries,
# which run, switchd's unit and settings file, switchctl's completions and both manual pages.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/package.sh >/dev/null
deb=$(ls -t target/debian/switchd_*.deb | head -1)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp"
failed=0
fail() { echo "package $deb: $*" >&2; failed=1; }
for f in usr/bin/switchd usr/bin/switchctl usr/lib/cni/switch-cni lib/systemd/system/switchd.service \
  etc/switchd/switchd.toml usr/share/bash-completion/completions/switchctl \
  usr/share/zsh/vendor-completions/_switchctl usr/share/fish/vendor_completions.d/switchctl.fish \
  usr/share/man/man8/switchd.8.gz usr/share/man/man1/switchctl.1.gz; do
  [ -s "$tmp/$f" ] || fail "$f is missing or empty"
done
for bin in usr/bin/switchd usr/bin/switchctl usr/lib/cni/switch-cni; do
  if [ -e "$tmp/$bin" ] && readelf -S "$tmp/$bin" | grep -q '\.debug_info'; then
    fail "$bin is not stripped"
  fi
done
[ "$("$tmp/usr/bin/switchd" --version)" = "switchd $(awk -F'"' '/^version/ {print $2; exit}' Cargo.toml)" ] ||
  fail "switchd --version does not give the workspace's version"
zcat "$tmp/usr/share/man/man8/switchd.8.gz" | grep -q -- 'advertise' || fail "switchd(8) lacks --advertise"
grep -q 'complete -F _switchctl' "$tmp/usr/share/bash-completion/completions/switchctl" ||
  fail "the bash completion does not complete switchctl"
dpkg-deb -f "$deb" Depends | grep -q nftables || fail "it does not depend on nftables"
[ "$(grep -c '^# [a-z-]* = ' "$tmp/etc/switchd/switchd.toml")" -ge 10 ] ||
  fail "the settings file lacks its commented settings"
if [ "$failed" -ne 0 ]; then
  exit 1
fi
echo "package: $deb holds $(find "$tmp" -type f | wc -l) files, stripped, with its unit, settings, completions and manual pages"
