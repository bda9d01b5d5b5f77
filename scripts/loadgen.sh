#!/usr/bin/env bash
# Runs the HTTP load generator's matrix (BENCHMARKS.md, "HTTP and load (loadgen)") and keeps
# every summary and JSON line under target/loadgen/<UTC time>/.
#
#   scripts/loadgen.sh                 # SQLite heartbeats + status vs bare axum (+ wrk if installed)
#                                      # + console page TTFB (1,000 nodes, 100,000 jobs)
#   scripts/loadgen.sh --with-postgres # also heartbeats on a throw-away PostgreSQL (fsync on)
#   DURATION=5 scripts/loadgen.sh      # shorter phases (smoke run)
#
# Built with the release profile and RUSTFLAGS as set in the environment (default: none); the
# binary prints the commit, machine and flags next to its figures.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/postgres.sh
source scripts/lib/postgres.sh

WITH_PG=0
for a in "$@"; do
  case "$a" in
    --with-postgres) WITH_PG=1 ;;
    *) log "unknown argument: $a"; exit 2 ;;
  esac
done
DURATION="${DURATION:-20}"
AGENTS="${AGENTS:-50 200 1000}"
CONNECTIONS="${CONNECTIONS:-16 64}"

log "cargo build --release -p bitsage-benches --bin loadgen (RUSTFLAGS=${RUSTFLAGS:-})"
cargo build --release -p bitsage-benches --bin loadgen
BIN=target/release/loadgen
OUT="target/loadgen/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
JSON="$OUT/results.jsonl"
log "results in $OUT"

run() {
  log "loadgen $*"
  "$BIN" --json-out "$JSON" "$@" | tee -a "$OUT/summary.txt" | sed '$d'
}

for n in $AGENTS; do
  run heartbeats --agents "$n" --duration-secs "$DURATION"
done
# What 1000 real agents send (one heartbeat per 10 s each), then 10× that, open loop.
run heartbeats --agents 1000 --rate 100 --duration-secs "$DURATION"
run heartbeats --agents 1000 --rate 1000 --duration-secs "$DURATION"
# A GPU host's heartbeat also carries its samples (a second transaction).
run heartbeats --agents 200 --gpu-samples 2 --duration-secs "$DURATION"

WRK=()
if command -v wrk >/dev/null; then WRK=(--wrk); else log "wrk not installed: in-process client only"; fi
for c in $CONNECTIONS; do
  run status --connections "$c" --duration-secs "$DURATION" "${WRK[@]}"
done
# How the status handler scales with the store's contents.
run status --connections 16 --duration-secs "$DURATION" --rounds 1 --queued-jobs 5000
run status --connections 16 --duration-secs "$DURATION" --rounds 1 --credits-per-node 500

# The web console's Overview and Nodes pages (and their JSON) on a fleet-sized store: TTFB
# sequential, then 8 connections for DURATION seconds per page.
run console --nodes 1000 --jobs 100000 --connections 8 --duration-secs "$DURATION"

if [ "$WITH_PG" = 1 ]; then
  trap stop_postgres EXIT
  export BITSAGE_PG_FSYNC=on
  if [ -z "${BITSAGE_TEST_PG_URL:-}" ]; then start_postgres; fi
  for n in $AGENTS; do
    run heartbeats --store postgres --agents "$n" --duration-secs "$DURATION"
  done
fi
log "done: $OUT/summary.txt, $JSON"
