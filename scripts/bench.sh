#!/usr/bin/env bash
# Runs the criterion benchmarks with a throw-away PostgreSQL for the PgStore groups.
#
#   scripts/bench.sh [cargo bench args, e.g. --bench store]
#
# Built with RUSTFLAGS="-C target-cpu=native" unless RUSTFLAGS is set (even empty); BENCHMARKS.md
# records which.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/postgres.sh
source scripts/lib/postgres.sh
trap stop_postgres EXIT
# Benchmarks measure durable writes: keep fsync on (tests turn it off for speed).
export BITSAGE_PG_FSYNC=on
if [ -z "${BITSAGE_TEST_PG_URL:-}" ]; then start_postgres; fi
export RUSTFLAGS="${RUSTFLAGS--C target-cpu=native}"
log "RUSTFLAGS=$RUSTFLAGS cargo bench -p bitsage-benches $*"
cargo bench -p bitsage-benches "$@"
