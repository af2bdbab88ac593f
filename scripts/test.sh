#!/usr/bin/env bash
# The project's test command: lint, format check, type check and the test suite.
#
#   bash scripts/test.sh                      # everything
#   bash scripts/test.sh -k sqlite -x         # extra arguments go to pytest
#
# Works on a fresh Debian machine with python3.11, pip and git: installs PostgreSQL
# and Redis (apt) if missing, creates .venv and installs the package with its test extras.
# Set LUX_TEST_POSTGRES to a libpq DSN to use an existing PostgreSQL server instead.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ ! -f pyproject.toml || ! -d synapse_lux_privacy ]]; then
    echo "error: cannot find the repository root (run: bash scripts/${0##*/})" >&2
    exit 1
fi

TIMINGS=()
SCRIPT_START=$(date +%s.%N)
CURRENT_STEP=""
STEP_START=""

elapsed() { # elapsed START -> seconds since START, one decimal
    awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}

print_timings() {
    local status=$?
    if [[ -n $CURRENT_STEP ]]; then
        TIMINGS+=("$CURRENT_STEP: $(elapsed "$STEP_START") s (FAILED)")
    fi
    echo
    echo "==> timings"
    local line
    for line in "${TIMINGS[@]}"; do
        echo "    $line"
    done
    echo "    total: $(elapsed "$SCRIPT_START") s"
    if [[ $status -eq 0 ]]; then
        echo "==> all steps passed"
    else
        echo "==> FAILED in step '${CURRENT_STEP:-?}' (exit status $status)" >&2
    fi
}
trap print_timings EXIT

# step NAME COMMAND... : run a command, recording how long it took. A failure ends the
# script (set -e) and the EXIT trap reports the failed step.
step() {
    CURRENT_STEP=$1
    shift
    echo
    echo "==> $CURRENT_STEP"
    STEP_START=$(date +%s.%N)
    "$@"
    TIMINGS+=("$CURRENT_STEP: $(elapsed "$STEP_START") s")
    CURRENT_STEP=""
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    else
        sudo "$@"
    fi
}

have_postgres() {
    command -v postgres >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null
}

ensure_postgres() {
    if [[ -n "${LUX_TEST_POSTGRES:-}" ]]; then
        echo "using the PostgreSQL server from LUX_TEST_POSTGRES"
    elif have_postgres; then
        echo "PostgreSQL found"
    else
        echo "PostgreSQL not found: installing Debian's postgresql package"
        as_root apt-get update -q
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql
    fi
}

# Redis for the worker-deployment tests (tests/harness/workers.py starts its own).
ensure_redis() {
    if command -v redis-server >/dev/null 2>&1; then
        echo "Redis found"
    else
        echo "Redis not found: installing Debian's redis-server package"
        as_root apt-get update -q
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server
    fi
}

ensure_venv() {
    if [[ ! -x .venv/bin/python ]]; then
        local base
        base="$(command -v python3.11 || command -v python3 || true)"
        if [[ -z "$base" ]]; then
            echo "error: python3.11 (or python3 >= 3.11) is required" >&2
            return 1
        fi
        "$base" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' || {
            echo "error: $base is older than Python 3.11" >&2
            return 1
        }
        if ! "$base" -m venv .venv; then
            echo "venv creation failed: installing python3-venv"
            rm -rf .venv
            as_root apt-get update -q
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                "python$("$base" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
            "$base" -m venv .venv
        fi
    fi
    # Reinstall only when pyproject.toml changed since the last install.
    local stamp=.venv/.lux-test-install
    local want
    want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
    if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
        .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
        echo "$want" >"$stamp"
    else
        echo ".venv is up to date"
    fi
}

run_pytest() {
    local status=0
    .venv/bin/python -m pytest "$@" || status=$?
    if [[ $status -eq 5 ]]; then
        echo "error: pytest collected no tests (exit status 5) - the test suite is missing" \
            "or every test was deselected" >&2
    fi
    return "$status"
}

step "postgresql" ensure_postgres
step "redis" ensure_redis
step "virtualenv" ensure_venv
export PATH="$PWD/.venv/bin:$PATH"
step "ruff check" ruff check .
step "ruff format --check" ruff format --check .
step "mypy" mypy
step "pytest" run_pytest "$@"
