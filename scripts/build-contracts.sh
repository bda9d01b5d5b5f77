#!/usr/bin/env bash
# Builds our Cairo contracts (contracts/src/*.cairo, Cairo 2.1 dialect) into Sierra contract
# classes in bitsage-chain/classes/ (the devnet harness embeds them), with the starknet-compile 2.1.0 that the PyPI package
# cairo-lang==0.12.3 ships (later releases ship an incomplete core library; see
# ../shared/TOOLCHAIN.md). The package is fetched once into the tools cache
# ($BITSAGE_TOOLS_DIR, default ~/.cache/bitsage-tools) and checked against its SHA-256.
#
#   scripts/build-contracts.sh          # (re)build bitsage-chain/classes/*.json
#   scripts/build-contracts.sh --check  # rebuild into a temp dir; fail if it differs from the
#                                       # committed build (the build is reproducible)
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }

TOOLS="${BITSAGE_TOOLS_DIR:-$HOME/.cache/bitsage-tools}"
PKG=cairo-lang-0.12.3
PKG_SHA256=651abdaa5f911d1d8f5605749e3540e7fc4efb7fb625925e5a499c4ca04fcc85
COMPILER="$TOOLS/$PKG/starkware/starknet/compiler/v1/sierra-compiler-major-1/bin/starknet-compile"

if [ ! -x "$COMPILER" ]; then
  log "fetching $PKG from PyPI into $TOOLS"
  mkdir -p "$TOOLS/pip"
  if [ ! -f "$TOOLS/pip/$PKG.zip" ]; then
    python3 -m pip download --no-deps -q -d "$TOOLS/pip" "cairo-lang==0.12.3"
  fi
  echo "$PKG_SHA256  $TOOLS/pip/$PKG.zip" | sha256sum -c --quiet - \
    || { log "checksum mismatch for $TOOLS/pip/$PKG.zip"; exit 1; }
  unzip -q -o "$TOOLS/pip/$PKG.zip" "$PKG/starkware/starknet/compiler/v1/*" -d "$TOOLS"
  chmod +x "$TOOLS/$PKG/starkware/starknet/compiler/v1/sierra-compiler-major-1/bin/"*
fi
log "$("$COMPILER" --version)"

out=bitsage-chain/classes
if [ "${1:-}" = "--check" ]; then out=$(mktemp -d); trap 'rm -rf "$out"' EXIT; fi
mkdir -p "$out"
for src in contracts/src/*.cairo; do
  name=$(basename "$src" .cairo)
  "$COMPILER" --single-file "$src" "$out/$name.contract_class.json"
  log "built $name ($(sha256sum "$out/$name.contract_class.json" | cut -c1-16)…)"
done
if [ "${1:-}" = "--check" ]; then
  diff -rq "$out" bitsage-chain/classes >&2 || { log "bitsage-chain/classes differs from a fresh build"; exit 1; }
  log "bitsage-chain/classes is reproducible"
fi
