# Shared by scripts/test.sh and scripts/install-devnet.sh: finds starknet-devnet 0.10.1, or
# installs it once into the tools cache ($BITSAGE_TOOLS_DIR, default ~/.cache/bitsage-tools):
# from a prebuilt binary when the workplace's shared tools folder ($BITSAGE_SHARED_TOOLS,
# default ../shared/tools) holds one whose SHA-256 checks out (the same `cargo install
# --locked` build), otherwise with `cargo install --locked` (~16-45 min on 2 cores, then
# reused). Exports STARKNET_DEVNET.
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

# Unpacks the prebuilt devnet into $TOOLS/bin when the shared tools folder has it and its
# checksum matches; returns 1 (changing nothing) otherwise.
unpack_prebuilt_devnet() {
  local shared="${BITSAGE_SHARED_TOOLS:-$(cd .. && pwd)/shared/tools}"
  local prebuilt="$shared/starknet-devnet-$DEVNET_VERSION-x86_64-linux.xz"
  [ -f "$prebuilt" ] && [ -f "${prebuilt%.xz}.sha256" ] || return 1
  local tmp
  tmp=$(mktemp -d)
  xz -dc "$prebuilt" > "$tmp/starknet-devnet"
  if (cd "$tmp" && sha256sum -c --quiet "${prebuilt%.xz}.sha256"); then
    mkdir -p "$TOOLS/bin"
    chmod +x "$tmp/starknet-devnet"
    mv "$tmp/starknet-devnet" "$TOOLS/bin/starknet-devnet"
    rm -rf "$tmp"
    log "starknet-devnet $DEVNET_VERSION unpacked from $prebuilt into $TOOLS/bin"
    return 0
  fi
  rm -rf "$tmp"
  log "prebuilt starknet-devnet in $shared failed its checksum; building it instead"
  return 1
}

ensure_devnet() {
  local found
  if found=$(find_devnet); then
    export STARKNET_DEVNET="$found"
    return 0
  fi
  if unpack_prebuilt_devnet && found=$(find_devnet); then
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
