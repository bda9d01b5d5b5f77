# Shared by scripts/test.sh: the source checks CI holds too, one test each in the summary line.
# Source it, then call run_code_checks; it sets CODE_PASSED and CODE_FAILED and returns
# non-zero when one failed.
#   cargo fmt --check                  formatting
#   cargo clippy (workspace, all       every lint of the workspace, warnings denied
#     targets, -D warnings)
#   cargo doc --workspace --no-deps    the API docs, warnings denied (a broken intra-doc link
#     (RUSTDOCFLAGS=-D warnings)       fails), with every feature of the crates documented
#   cargo package (library crates,     each publishable crate packages in dependency order
#     dependency order)                (metadata, file list, the README it names, the packaged
#                                      manifest resolved against the crates packaged before it
#                                      through cargo's local overlay). With
#                                      CODE_PACKAGE_VERIFY=1 each package is also built from its
#                                      packaged sources — a second build of every dependency in
#                                      the packages' own profile (19 min on two cores), so the
#                                      suite leaves it to a release check.
# shellcheck shell=bash

declare -F log >/dev/null || log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }

CODE_PASSED=0
CODE_FAILED=0

# The publishable library crates, dependencies first (bitsage-benches is publish = false).
CODE_PACKAGES=(bitsage-core bitsage-gpu bitsage-prover bitsage-store bitsage-chain bitsage-http
  bitsage-agent bitsage-coordinator)

# Runs one check: its name, then the command.
code_check() {
  local name=$1 start=$SECONDS
  shift
  log "$name"
  if "$@"; then
    CODE_PASSED=$((CODE_PASSED + 1))
    log "passed: $name ($((SECONDS - start)) s)"
  else
    CODE_FAILED=$((CODE_FAILED + 1))
    log "FAILED: $name ($((SECONDS - start)) s)"
  fi
}

# Every feature of the workspace's crates (docs.rs documents them the same way), so an
# intra-doc link to a feature-gated item is checked too.
doc_all_features() {
  RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -D warnings" cargo doc --workspace --no-deps --all-features
}

package_libraries() {
  local args=() p
  for p in "${CODE_PACKAGES[@]}"; do args+=(-p "$p"); done
  if [ "${CODE_PACKAGE_VERIFY:-0}" != 1 ]; then args+=(--no-verify); fi
  cargo package --locked --allow-dirty "${args[@]}"
}

run_code_checks() {
  CODE_PASSED=0
  CODE_FAILED=0
  code_check "cargo fmt --all --check" cargo fmt --all --check
  code_check "cargo clippy --workspace --all-targets -- -D warnings" \
    cargo clippy --workspace --all-targets -- -D warnings
  code_check "cargo doc --workspace --no-deps --all-features (warnings denied)" doc_all_features
  code_check "cargo package ${CODE_PACKAGES[*]}" package_libraries
  [ "$CODE_FAILED" -eq 0 ]
}
