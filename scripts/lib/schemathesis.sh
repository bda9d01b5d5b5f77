# Shared by scripts/test.sh: install the schema-driven API fuzzer (schemathesis, pinned, from
# PyPI) into a virtual environment in the tools cache when missing. Source it, call
# ensure_schemathesis (exports BITSAGE_SCHEMATHESIS, the path of its command).
# shellcheck shell=bash

SCHEMATHESIS_VERSION=4.32.5

ensure_schemathesis() {
  local tools="${BITSAGE_TOOLS_DIR:-$HOME/.cache/bitsage-tools}"
  local venv="$tools/schemathesis-$SCHEMATHESIS_VERSION"
  if [ ! -x "$venv/bin/schemathesis" ]; then
    log "installing schemathesis $SCHEMATHESIS_VERSION into $venv (PyPI, ~15 s)"
    rm -rf "$venv"
    mkdir -p "$tools"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
  fi
  export BITSAGE_SCHEMATHESIS="$venv/bin/schemathesis"
  log "schemathesis: $("$BITSAGE_SCHEMATHESIS" --version)"
}
