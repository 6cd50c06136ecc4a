#!/usr/bin/env bash
# Builds the Debian package target/debian/switchd_VERSION-1_ARCH.deb: switchd, switchctl and
# switch-cni (stripped), switchd's systemd unit and settings file, switchctl's bash, zsh and
# fish completions, and the manual pages. Installs cargo-deb (cargo install) when missing.
# Needs no root; under sudo it builds as the invoking user.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
trap give_target_back EXIT
if ! as_builder sh -c 'command -v cargo-deb' >/dev/null 2>&1; then
  echo "installing cargo-deb (cargo install cargo-deb): it builds the package"
  as_builder cargo install cargo-deb --locked --quiet
fi
as_builder cargo build --release -p switchd -p switchctl -p switch-client --bins
out=target/release/package
rm -rf "$out"
mkdir -p "$out"
for bin in switchd switchctl switch-cni; do
  strip --strip-unneeded -o "$out/$bin" "target/release/$bin"
done
"$out/switchctl" completion bash > "$out/switchctl.bash"
"$out/switchctl" completion zsh > "$out/_switchctl"
"$out/switchctl" completion fish > "$out/switchctl.fish"
"$out/switchd" --man | gzip -9n > "$out/switchd.8.gz"
"$out/switchctl" man | gzip -9n > "$out/switchctl.1.gz"
give_target_back
as_builder cargo deb -p switchd --no-build --no-strip --quiet
ls target/debian/switchd_*.deb
