# Shared by the scripts (sourced, not run): who builds, and what needs root.
#
# What these scripts run needs root (namespaces, TAP devices, nftables), but the build does
# not. Under sudo the build runs as the user who invoked sudo ($SUDO_USER), with that user's
# rustup toolchain, and target/ stays theirs; run by root itself, everything runs as root.

# The invoking user under sudo who has a cargo of their own; else nobody, and root builds.
BUILDER=""
if [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
  if [ -x "$(getent passwd "$SUDO_USER" | cut -d: -f6)/.cargo/bin/cargo" ] ||
    runuser -u "$SUDO_USER" -- sh -c 'command -v cargo' >/dev/null 2>&1; then
    BUILDER=$SUDO_USER
  else
    echo "$SUDO_USER has no cargo (neither ~/.cargo/bin/cargo nor one on the PATH): building as root"
  fi
fi

# The user who builds, or nothing when root does.
builder() {
  echo "$BUILDER"
}

# Stops unless run as root, saying why root is needed and how to run the script.
need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "$1: run it as root (sudo $0)" >&2
    exit 1
  fi
}

# The environment that finds the builder's rustup toolchain: sudo's secure_path has no
# ~/.cargo/bin, and root's HOME has no ~/.rustup.
builder_env() {
  local home
  home=$(getent passwd "$1" | cut -d: -f6)
  echo "PATH=$home/.cargo/bin:$PATH" "RUSTUP_HOME=${RUSTUP_HOME:-$home/.rustup}" "CARGO_HOME=${CARGO_HOME:-$home/.cargo}"
}

# Runs a build command (cargo ...) as the builder, or as is when root runs the script.
as_builder() {
  local user
  user=$(builder)
  if [ -z "$user" ]; then
    "$@"
    return
  fi
  if [ -d target ] && [ "$(stat -c %U target)" != "$user" ]; then
    echo "target/ belongs to $(stat -c %U target) from an earlier run; giving it to $user, who builds"
    chown -R "$user:$(id -gn "$user")" target
  fi
  # shellcheck disable=SC2046 # builder_env's words are whole NAME=VALUE assignments
  runuser -u "$user" -- env HOME="$(getent passwd "$user" | cut -d: -f6)" $(builder_env "$user") "$@"
}

# Runs cargo as root with the builder's toolchain: the tests, which need root, once the
# builder has built them. Call give_target_back when done.
as_root_cargo() {
  local user
  user=$(builder)
  if [ -z "$user" ]; then
    cargo "$@"
    return
  fi
  # shellcheck disable=SC2046 # as above
  env $(builder_env "$user") cargo "$@"
}

# Gives target/ back to the builder, whatever files root's cargo wrote there.
give_target_back() {
  local user
  user=$(builder)
  if [ -n "$user" ] && [ -d target ]; then
    chown -R "$user:$(id -gn "$user")" target 2>/dev/null || true
  fi
}
