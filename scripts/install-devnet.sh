#!/usr/bin/env bash
# Installs starknet-devnet 0.10.1 into the tools cache when missing and prints its path.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
# shellcheck source=lib/devnet.sh
source scripts/lib/devnet.sh
ensure_devnet
echo "$STARKNET_DEVNET"
