#!/usr/bin/env bash
# The whole BitSage test suite, on a fresh machine, with no manual step.
#
#   scripts/test.sh [extra cargo test args]
#
# 1. Installs what is missing: PostgreSQL (Debian's packages), starknet-devnet 0.10.1 (into
#    ~/.cache/bitsage-tools: unpacked from a checksummed prebuilt binary in ../shared/tools when
#    there is one, else cargo install --locked, ~16-45 min once; then reused; exported as
#    STARKNET_DEVNET), the Cairo compiler from PyPI (cached) to check that bitsage-chain/classes is
#    reproducible, and the API fuzzer schemathesis (PyPI, pinned, into a virtual environment in
#    the tools cache; exported as BITSAGE_SCHEMATHESIS).
# 2. Starts a throw-away PostgreSQL cluster in a temp directory on a free loopback port and
#    exports its URL as BITSAGE_TEST_PG_URL (PostgreSQL refuses to run as root, so as root the
#    cluster runs as the `postgres` user).
# 3. Runs `cargo test --workspace`, then stops and deletes the cluster.
# 4. Then the web console's browser tests (console-tests/, scripts/lib/browser.sh): installs
#    Debian's chromium and the pinned npm packages (npm ci) when missing, and runs
#    `node --test` against the real binaries in headless Chromium; their counts join the
#    summary line. Without Chromium or Node.js they are skipped, with the reason, unless CI=true.
# 5. After the tests, the source checks CI holds too (scripts/lib/code_checks.sh), one test each
#    in the summary line: `cargo fmt --check`, `cargo clippy --workspace --all-targets -- -D
#    warnings`, `cargo doc --workspace --no-deps` with warnings denied, and `cargo package` of
#    every library crate in dependency order.
# 6. Between the two, the deployment files' checks (deploy/, scripts/lib/promtool.sh), one test
#    each in the summary line: `promtool check rules` and `promtool test rules` on the alerting
#    rules, `promtool check config` on the example scrape config, `systemd-analyze verify` on
#    both units (with the binaries cargo built). promtool comes from Debian's prometheus package,
#    installed when missing (its server left stopped and disabled). Without promtool or
#    systemd-analyze they are skipped, with the reason, unless CI=true.
#
# Under CI=true a test whose service is missing fails; the script also fails when no test ran.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=lib/postgres.sh
source scripts/lib/postgres.sh
# shellcheck source=lib/devnet.sh
source scripts/lib/devnet.sh
# shellcheck source=lib/schemathesis.sh
source scripts/lib/schemathesis.sh
# shellcheck source=lib/browser.sh
source scripts/lib/browser.sh
# shellcheck source=lib/promtool.sh
source scripts/lib/promtool.sh
# shellcheck source=lib/code_checks.sh
source scripts/lib/code_checks.sh

trap stop_postgres EXIT

if [ -z "${BITSAGE_TEST_PG_URL:-}" ]; then
  start_postgres
else
  log "using BITSAGE_TEST_PG_URL from the environment"
fi

ensure_devnet
log "starknet-devnet: $STARKNET_DEVNET"
ensure_schemathesis
ensure_promtool
scripts/build-contracts.sh --check

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

# fmt, clippy, doc and package: what CI holds besides the tests.
code_status=0
run_code_checks || code_status=$?
ran=$((ran + CODE_PASSED))
failed=$((failed + CODE_FAILED))

# The deployment files, against the binaries `cargo test --workspace` just built.
deploy_status=0
run_deploy_checks || deploy_status=$?
ran=$((ran + DEPLOY_PASSED))
failed=$((failed + DEPLOY_FAILED))

ensure_browser
browser_status=0
# The binaries `cargo test --workspace` just built (same features: no second compile).
BROWSER_BUILD=tests run_browser_tests || browser_status=$?
ran=$((ran + BROWSER_PASSED))
failed=$((failed + BROWSER_FAILED))
if [ "$browser_status" -ne 0 ]; then
  log "FAILED (browser tests): $ran passed, $failed failed"
  echo "$ran passed, $failed failed"
  exit 1
fi
if [ "$code_status" -ne 0 ]; then
  log "FAILED (fmt / clippy / doc / package): $ran passed, $failed failed"
  echo "$ran passed, $failed failed"
  exit 1
fi
if [ "$deploy_status" -ne 0 ]; then
  log "FAILED (deployment checks): $ran passed, $failed failed"
  echo "$ran passed, $failed failed"
  exit 1
fi
log "all tests passed: $ran passed, $failed failed"
echo "$ran passed, $failed failed"
