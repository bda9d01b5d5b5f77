# Shared by scripts/test.sh and scripts/install-devnet.sh: finds starknet-devnet 0.10.1, or
# installs it once into the tools cache ($BITSAGE_TOOLS_DIR, default ~/.cache/bitsage-tools)
# with `cargo install --locked` (~16 min on 2 cores, then reused). Exports STARKNET_DEVNET.
# shellcheck shell=bash

DEVNET_VERSION=0.10.1
TOOLS="${BITSAGE_TOOLS_DIR:-$HOME/.cache/bitsage-tools}"

devnet_version_ok() {
  "$1" --version 2>/dev/null | grep -q "$DEVNET_VERSION"
}

find_devnet() {
  local c
  for c in "${STARKNET_DEVNET:-}" "$(command -v starknet-devnet 2>/dev/null || true)" "$TOOLS/bin/starknet-devnet"; do
    if [ -n "$c" ] && [ -x "$c" ] && devnet_version_ok "$c"; then echo "$c"; return 0; fi
  done
  return 1
}

ensure_devnet() {
  local found
  if found=$(find_devnet); then
    export STARKNET_DEVNET="$found"
    return 0
  fi
  log "starknet-devnet $DEVNET_VERSION not found: installing it into $TOOLS (cargo install --locked; ~16 min once, then reused)"
  mkdir -p "$TOOLS"
  # Its own target dir, so the workspace's RUSTC_BOOTSTRAP/config does not apply.
  (cd "$TOOLS" && CARGO_TARGET_DIR="$TOOLS/build" cargo install starknet-devnet \
      --version "$DEVNET_VERSION" --locked --root "$TOOLS" >"$TOOLS/install-devnet.log" 2>&1) \
    || { tail -30 "$TOOLS/install-devnet.log" >&2; log "starknet-devnet install failed"; return 1; }
  rm -rf "$TOOLS/build"
  found=$(find_devnet) || { log "starknet-devnet installed but not runnable"; return 1; }
  export STARKNET_DEVNET="$found"
}
