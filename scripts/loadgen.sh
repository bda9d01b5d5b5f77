#!/usr/bin/env bash
# Runs the HTTP load generator's matrix (BENCHMARKS.md, "HTTP and load (loadgen)") and keeps
# every summary and JSON line under target/loadgen/<UTC time>/.
#
#   scripts/loadgen.sh                 # SQLite heartbeats + status vs bare axum (+ wrk if installed)
#                                      # + console page TTFB (1,000 nodes, 100,000 jobs)
#   scripts/loadgen.sh --with-postgres # also heartbeats on a throw-away PostgreSQL (fsync on)
#   DURATION=5 scripts/loadgen.sh      # shorter phases (smoke run)
#
#   scripts/loadgen.sh --fleet [--with-postgres] [--long]
#       The network-scale matrix (issue 16) instead: fleets of 1,000 / 10,000 / 100,000 nodes,
#       one heartbeat per node every 10 s (open loop, obeying the interval the coordinator
#       advertises), on one SQLite coordinator; the closed-loop maximum with 1,000 agents;
#       GET /api/validator/status beside a bare handler; with --with-postgres the same fleets
#       (and closed loop) on three coordinators sharing one PostgreSQL. Each run reports
#       heartbeats/s, p50/p99 from the schedule, CPU seconds per 1,000 heartbeats (server,
#       client, signer apart) and the process's RSS every 10 s with its slope.
#       FLEET_DURATION=60 (seconds per run), --long: the 100,000-node SQLite run lasts
#       LONG_DURATION=600 s (the RSS-growth check). FLEET_NODES="1000 10000 100000",
#       CLOSED_AGENTS=1000, FLEET_INTERVAL=10, REGISTER=http|store (how the nodes get into
#       the store; default: signed HTTP registrations up to 10,000 nodes, the store's
#       create_node above, see BENCHMARKS.md).
#
# Built with the release profile and RUSTFLAGS as set in the environment (default: none); the
# binary prints the commit, machine and flags next to its figures.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/postgres.sh
source scripts/lib/postgres.sh

WITH_PG=0
FLEET=0
LONG=0
for a in "$@"; do
  case "$a" in
    --with-postgres) WITH_PG=1 ;;
    --fleet) FLEET=1 ;;
    --long) LONG=1 ;;
    *) log "unknown argument: $a"; exit 2 ;;
  esac
done
if [ "$LONG" = 1 ] && [ "$FLEET" = 0 ]; then log "--long goes with --fleet"; exit 2; fi
DURATION="${DURATION:-20}"
AGENTS="${AGENTS:-50 200 1000}"
CONNECTIONS="${CONNECTIONS:-16 64}"
FLEET_DURATION="${FLEET_DURATION:-60}"
LONG_DURATION="${LONG_DURATION:-600}"
FLEET_NODES="${FLEET_NODES:-1000 10000 100000}"
FLEET_INTERVAL="${FLEET_INTERVAL:-10}"
CLOSED_AGENTS="${CLOSED_AGENTS:-1000}"

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

# How nodes of a fleet of $1 get registered.
register_for() {
  if [ -n "${REGISTER:-}" ]; then echo "$REGISTER"
  elif [ "$1" -le 10000 ]; then echo http
  else echo store; fi
}

if [ "$FLEET" = 1 ]; then
  # One SQLite coordinator: fleets at one heartbeat per node every FLEET_INTERVAL seconds.
  for n in $FLEET_NODES; do
    d="$FLEET_DURATION"
    if [ "$LONG" = 1 ] && [ "$n" -ge 100000 ]; then d="$LONG_DURATION"; fi
    run heartbeats --nodes "$n" --interval-secs "$FLEET_INTERVAL" --duration-secs "$d" \
      --register "$(register_for "$n")"
  done
  # The closed-loop maximum (signed heartbeats back to back, pre-signed before the window).
  run heartbeats --agents "$CLOSED_AGENTS" --duration-secs "$FLEET_DURATION"
  # The dashboard read beside a bare handler, same client, same run.
  WRK=()
  if command -v wrk >/dev/null; then WRK=(--wrk); fi
  run status --connections 16 --duration-secs "$FLEET_DURATION" "${WRK[@]}"
  if [ "$WITH_PG" = 1 ]; then
    trap stop_postgres EXIT
    export BITSAGE_PG_FSYNC=on
    if [ -z "${BITSAGE_TEST_PG_URL:-}" ]; then start_postgres; fi
    for n in $FLEET_NODES; do
      run heartbeats --store postgres --coordinators 3 --nodes "$n" \
        --interval-secs "$FLEET_INTERVAL" --duration-secs "$FLEET_DURATION" \
        --register "$(register_for "$n")"
    done
    run heartbeats --store postgres --coordinators 3 --agents "$CLOSED_AGENTS" \
      --duration-secs "$FLEET_DURATION"
  fi
  log "done: $OUT/summary.txt, $JSON"
  exit 0
fi

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
