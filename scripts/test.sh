#!/usr/bin/env bash
# The whole BitSage test suite, on a fresh machine, with no manual step.
#
#   scripts/test.sh [extra cargo test args]
#
# 1. Installs what is missing (PostgreSQL from Debian's packages).
# 2. Starts a throw-away PostgreSQL cluster in a temp directory on a free loopback port and
#    exports its URL as BITSAGE_TEST_PG_URL (PostgreSQL refuses to run as root, so as root the
#    cluster runs as the `postgres` user).
# 3. Runs `cargo test --workspace`, then stops and deletes the cluster.
#
# Under CI=true a test whose service is missing fails; the script also fails when no test ran.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test.sh] %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

find_pg_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  return 1
}

ensure_postgres() {
  if PG_BIN=$(find_pg_bin); then return 0; fi
  log "PostgreSQL not found: installing it from Debian's packages"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
  # The package starts its own cluster; ours is separate, so stop that one.
  as_root sh -c 'command -v pg_ctlcluster >/dev/null && for c in /etc/postgresql/*/main; do v=$(basename "$(dirname "$c")"); pg_ctlcluster "$v" main stop 2>/dev/null || true; done' || true
  PG_BIN=$(find_pg_bin) || { log "PostgreSQL install failed"; exit 1; }
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

PG_DIR=""
PG_RUN=()
stop_postgres() {
  if [ -n "$PG_DIR" ] && [ -d "$PG_DIR" ]; then
    "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  fi
}

start_postgres() {
  ensure_postgres
  PG_DIR=$(mktemp -d /tmp/bitsage-pg.XXXXXX)
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
    chown postgres "$PG_DIR"
    PG_RUN=(runuser -u postgres --)
  else
    PG_RUN=(env)
  fi
  local port; port=$(free_port)
  "${PG_RUN[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust --no-sync \
    --encoding=UTF8 --locale=C >"$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log" >&2; exit 1; }
  "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_DIR -c fsync=off -c max_connections=300" \
    start >/dev/null || { cat "$PG_DIR/server.log" >&2; exit 1; }
  export BITSAGE_TEST_PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
  log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (throw-away, $PG_DIR)"
}

trap stop_postgres EXIT

if [ -z "${BITSAGE_TEST_PG_URL:-}" ]; then
  start_postgres
else
  log "using BITSAGE_TEST_PG_URL from the environment"
fi

log "cargo test --workspace $*"
out=$(mktemp)
set +e
cargo test --workspace "$@" 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
ran=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$out" | awk '{s+=$4} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$out" | awk '{s+=$1} END {print s+0}')
rm -f "$out"
if [ "$status" -ne 0 ]; then
  log "FAILED (cargo test exit $status)"
  exit "$status"
fi
if [ "$ran" -eq 0 ]; then
  log "FAILED: no test ran"
  exit 1
fi
log "all tests passed: $ran passed, $failed failed"
echo "$ran passed, $failed failed"
