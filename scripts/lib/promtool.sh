# Shared by scripts/test.sh: the deployment files' checks (deploy/): the Prometheus alerting
# rules, their unit tests and the example scrape config with promtool, and the two systemd
# units with systemd-analyze. Source it, then:
#   ensure_promtool     installs Debian's prometheus package (it ships promtool) when promtool
#                       is missing, leaving the Prometheus server it brings stopped and
#                       disabled; exports PROMTOOL.
#   run_deploy_checks   runs the five checks below, one test each; sets DEPLOY_PASSED and
#                       DEPLOY_FAILED; returns non-zero when one failed or none ran.
#     promtool check rules   deploy/prometheus/bitsage-alerts.yml
#     promtool test rules    deploy/prometheus/bitsage-alerts.test.yml
#     promtool check config  deploy/prometheus/prometheus.yml (in a temp copy with a placeholder
#                            bitsage-metrics.key: the config names that credentials file)
#     systemd-analyze verify deploy/systemd/bitsage-{coordinator,agent}.service (in a temp copy
#                            whose ExecStart is the binary cargo built: verify needs it to exist)
# Under CI=true a missing promtool or systemd-analyze fails; elsewhere the check that needs it
# is skipped with the reason printed (DEPLOY_SKIPPED holds it).
# shellcheck shell=bash

declare -F log >/dev/null || log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
declare -F as_root >/dev/null || as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

DEPLOY_DIR=deploy
DEPLOY_SKIPPED=""
DEPLOY_PASSED=0
DEPLOY_FAILED=0

# Records why a deployment check cannot run: a failure under CI=true, a skip elsewhere.
deploy_unavailable() {
  if [ "${CI:-}" = "true" ]; then
    log "FAILED: $1 (CI=true: the deployment checks must run)"
    return 1
  fi
  DEPLOY_SKIPPED="${DEPLOY_SKIPPED:+$DEPLOY_SKIPPED; }$1"
  log "deployment checks skipped: $1"
}

# The prometheus package enables its server and starts it where the init system lets it; we
# want promtool only. A policy-rc.d answering 101 (unless the machine already has one) keeps
# the maintainer scripts from starting it; then it is stopped and disabled in case it started
# anyway (a machine whose policy allowed it).
install_prometheus_package() {
  local policy=/usr/sbin/policy-rc.d added=0 rc=0
  if [ ! -e "$policy" ]; then
    as_root sh -c "printf '#!/bin/sh\n# scripts/lib/promtool.sh: no service starts during apt-get install\nexit 101\n' > $policy && chmod 0755 $policy" \
      && added=1
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 \
    || { as_root apt-get update -qq \
         && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends prometheus >/dev/null; } \
    || rc=$?
  if [ "$added" -eq 1 ]; then as_root rm -f "$policy"; fi
  stop_prometheus_service
  return "$rc"
}

# Stops and disables the Prometheus server Debian's package installs (systemd or SysV init).
stop_prometheus_service() {
  if command -v systemctl >/dev/null; then
    if [ -d /run/systemd/system ]; then
      as_root systemctl stop prometheus.service >/dev/null 2>&1 || true
    fi
    # Works without a running systemd too: it removes the unit's links.
    as_root systemctl disable prometheus.service >/dev/null 2>&1 || true
  fi
  if [ -x /etc/init.d/prometheus ]; then
    as_root /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    if command -v update-rc.d >/dev/null; then
      as_root update-rc.d prometheus disable >/dev/null 2>&1 || true
    fi
  fi
}

ensure_promtool() {
  DEPLOY_SKIPPED=""
  if ! command -v promtool >/dev/null; then
    if [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null; then
      log "promtool not found: installing Debian's prometheus package (it ships promtool; ~1 min; its server is left stopped and disabled)"
      install_prometheus_package || log "apt-get install prometheus failed"
    fi
  fi
  if ! command -v promtool >/dev/null; then
    deploy_unavailable "promtool not found (Debian's prometheus package ships it)"
    return
  fi
  PROMTOOL=$(command -v promtool)
  export PROMTOOL
  log "promtool: $("$PROMTOOL" --version 2>&1 | head -1)"
}

# One check: its name and command; counts it, prints its output when it fails.
deploy_check() {
  local name="$1" out
  shift
  if out=$("$@" 2>&1); then
    DEPLOY_PASSED=$((DEPLOY_PASSED + 1))
    log "ok: $name"
  else
    DEPLOY_FAILED=$((DEPLOY_FAILED + 1))
    log "FAILED: $name"
    printf '%s\n' "$out" >&2
  fi
}

# `systemd-analyze verify` of deploy/systemd/UNIT in a temp copy whose ExecStart binary is
# BINARY; fails on any complaint about the unit (verify exits 0 on unknown keys, only warning).
verify_unit() {
  local unit="$1" binary="$2" tmp out rc=0
  tmp=$(mktemp -d)
  sed "s#/usr/local/bin/${unit%.service}#$binary#" "$DEPLOY_DIR/systemd/$unit" > "$tmp/$unit"
  out=$(cd "$tmp" && systemd-analyze verify "./$unit" 2>&1) || rc=$?
  rm -rf "$tmp"
  printf '%s' "$out"
  if [ "$rc" -ne 0 ] || printf '%s' "$out" | grep -Eq "$unit|ignoring|Unknown"; then
    return 1
  fi
}

# `promtool check config` of a temp copy of deploy/prometheus with a placeholder credentials
# file (the real one holds an API key's secret and is never in the repository).
check_prometheus_config() {
  local tmp rc=0
  tmp=$(mktemp -d)
  cp "$DEPLOY_DIR"/prometheus/*.yml "$tmp/"
  printf 'placeholder\n' > "$tmp/bitsage-metrics.key"
  "$PROMTOOL" check config "$tmp/prometheus.yml" || rc=$?
  rm -rf "$tmp"
  return "$rc"
}

run_deploy_checks() {
  DEPLOY_PASSED=0
  DEPLOY_FAILED=0
  local target="${CARGO_TARGET_DIR:-target}/debug" rc=0

  if [ -n "${PROMTOOL:-}" ]; then
    deploy_check "promtool check rules bitsage-alerts.yml" \
      "$PROMTOOL" check rules "$DEPLOY_DIR/prometheus/bitsage-alerts.yml"
    deploy_check "promtool test rules bitsage-alerts.test.yml" \
      "$PROMTOOL" test rules "$DEPLOY_DIR/prometheus/bitsage-alerts.test.yml"
    deploy_check "promtool check config prometheus.yml" check_prometheus_config
  else
    log "promtool checks not run: ${DEPLOY_SKIPPED:-promtool not found}"
  fi

  if ! command -v systemd-analyze >/dev/null; then
    deploy_unavailable "systemd-analyze not found (Debian's systemd package)" || rc=1
  else
    local bin
    for bin in bitsage-coordinator bitsage-agent; do
      if [ ! -x "$target/$bin" ]; then
        log "cargo build --bin $bin (systemd-analyze verify needs the unit's binary)"
        cargo build --bin "$bin" >&2 || { log "FAILED: building $bin"; DEPLOY_FAILED=$((DEPLOY_FAILED + 1)); continue; }
      fi
      deploy_check "systemd-analyze verify $bin.service" \
        verify_unit "$bin.service" "$(cd "$target" && pwd)/$bin"
    done
  fi

  if [ "$DEPLOY_FAILED" -ne 0 ]; then
    rc=1
  elif [ "$((DEPLOY_PASSED + DEPLOY_FAILED))" -eq 0 ]; then
    if [ "${CI:-}" = "true" ]; then
      log "FAILED: no deployment check ran"
      rc=1
    else
      log "no deployment check ran: $DEPLOY_SKIPPED"
    fi
  else
    log "deployment checks: $DEPLOY_PASSED passed"
  fi
  return "$rc"
}
