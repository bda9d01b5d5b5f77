# Shared by scripts/test.sh: the web console's browser tests (console-tests/: `node --test`
# against the real coordinator and agent binaries in headless Chromium, with axe-core and
# Lighthouse). Source it, then:
#   ensure_browser     installs Debian's chromium when /usr/bin/chromium is missing and the
#                      pinned npm packages of console-tests (npm ci) when node_modules is
#                      missing or older than package-lock.json; exports BITSAGE_CHROMIUM.
#   run_browser_tests  builds the two binaries and runs console-tests/tests/*.test.mjs one
#                      file at a time; sets BROWSER_PASSED and BROWSER_FAILED; returns non-zero
#                      when a test failed or none ran.
# Under CI=true a missing Chromium or Node.js (>= 20) fails; elsewhere the browser tests are
# skipped with the reason printed (BROWSER_SKIPPED holds it).
# Process logs, screenshots, axe and Lighthouse reports: console-tests/artifacts/.
# shellcheck shell=bash

declare -F log >/dev/null || log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
declare -F as_root >/dev/null || as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

BROWSER_TESTS_DIR=console-tests
BROWSER_SKIPPED=""
BROWSER_PASSED=0
BROWSER_FAILED=0
# How run_browser_tests builds the binaries: `bins` (cargo build --features
# bitsage-coordinator/devnet --bin bitsage-coordinator
# --bin bitsage-agent; the least work on its own) or `tests` (cargo test --workspace
# --no-run: the feature set `cargo test --workspace` builds the binaries with — dev-dependencies
# add features, e.g. bitsage-core/conformance — so it is a no-op right after it, where
# `cargo build --bin` would compile the workspace crates a second time).
BROWSER_BUILD=${BROWSER_BUILD:-bins}

# Records why the browser tests cannot run: a failure under CI=true, a skip elsewhere.
browser_unavailable() {
  if [ "${CI:-}" = "true" ]; then
    log "FAILED: $1 (CI=true: the browser tests must run)"
    return 1
  fi
  BROWSER_SKIPPED="$1"
  log "browser tests skipped: $1"
}

ensure_browser() {
  BROWSER_SKIPPED=""
  local major
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    browser_unavailable "Node.js (>= 20) and npm not found"
    return
  fi
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt 20 ]; then
    browser_unavailable "Node.js $(node --version) is too old (>= 20 needed)"
    return
  fi

  export BITSAGE_CHROMIUM="${BITSAGE_CHROMIUM:-/usr/bin/chromium}"
  if [ ! -x "$BITSAGE_CHROMIUM" ] && [ "$BITSAGE_CHROMIUM" = /usr/bin/chromium ]; then
    if [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null; then
      log "Chromium not found: installing Debian's chromium (~1 min)"
      DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null 2>&1 \
        || { as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null; } \
        || log "apt-get install chromium failed"
    fi
  fi
  if [ ! -x "$BITSAGE_CHROMIUM" ]; then
    browser_unavailable "no Chromium at $BITSAGE_CHROMIUM"
    return
  fi
  log "Chromium: $("$BITSAGE_CHROMIUM" --version 2>/dev/null | head -1)"

  local dir="$BROWSER_TESTS_DIR"
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules" ]; then
    log "npm ci in $dir (playwright-core, axe-core, lighthouse; pinned by package-lock.json)"
    if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2); then
      browser_unavailable "npm ci in $dir failed"
      return
    fi
    touch "$dir/node_modules"
  fi
}

run_browser_tests() {
  BROWSER_PASSED=0
  BROWSER_FAILED=0
  if [ -n "$BROWSER_SKIPPED" ]; then
    log "browser tests not run: $BROWSER_SKIPPED"
    return 0
  fi
  local build=(cargo build --features bitsage-coordinator/devnet --bin bitsage-coordinator --bin bitsage-agent)
  if [ "$BROWSER_BUILD" = tests ]; then build=(cargo test --workspace --no-run); fi
  log "${build[*]}"
  "${build[@]}" || { log "FAILED: building the binaries the browser tests run"; return 1; }

  local files=() f
  for f in "$BROWSER_TESTS_DIR"/tests/*.test.mjs; do [ -f "$f" ] && files+=("$f"); done
  if [ "${#files[@]}" -eq 0 ]; then
    log "FAILED: no browser test in $BROWSER_TESTS_DIR/tests"
    return 1
  fi

  local tap rc start status=0
  tap=$(mktemp)
  start=$SECONDS
  log "node --test --test-concurrency=1 (${#files[@]} file(s) in $BROWSER_TESTS_DIR/tests)"
  # Readable output on the terminal, TAP (with its `# pass N` summary) into a file to count.
  timeout --kill-after=30 "${BITSAGE_BROWSER_TESTS_TIMEOUT:-1800}" \
    node --test --test-concurrency=1 \
      --test-reporter=spec --test-reporter-destination=stdout \
      --test-reporter=tap --test-reporter-destination="$tap" \
      "${files[@]}" || status=$?
  BROWSER_PASSED=$(awk '/^# pass /{n=$3} END {print n+0}' "$tap")
  BROWSER_FAILED=$(awk '/^# (fail|cancelled) /{n+=$3} END {print n+0}' "$tap")
  # A file without a test passes as one test named after the file: no test ran there.
  local empty
  empty=$(grep -Ec '^ok [0-9]+ - .*\.test\.mjs$' "$tap" || true)
  if [ "$empty" -gt 0 ]; then
    log "$empty browser test file(s) without a test: $(grep -E '^ok [0-9]+ - .*\.test\.mjs$' "$tap" | sed 's/^ok [0-9]* - //' | tr '\n' ' ')"
    BROWSER_PASSED=$((BROWSER_PASSED - empty))
  fi
  rm -f "$tap"
  rc=0
  if [ "$status" -ne 0 ]; then
    log "FAILED: browser tests (node --test exit $status) after $((SECONDS - start)) s; logs, screenshots and reports in $BROWSER_TESTS_DIR/artifacts/"
    # A crash or a timeout may leave no summary: count it as a failure.
    if [ "$BROWSER_FAILED" -eq 0 ]; then BROWSER_FAILED=1; fi
    rc=1
  elif [ "$((BROWSER_PASSED + BROWSER_FAILED))" -eq 0 ]; then
    log "FAILED: no browser test ran"
    rc=1
  elif [ "$BROWSER_FAILED" -ne 0 ]; then
    rc=1
  else
    log "browser tests: $BROWSER_PASSED passed in $((SECONDS - start)) s (artifacts in $BROWSER_TESTS_DIR/artifacts/)"
  fi
  return "$rc"
}
