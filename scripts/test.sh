#!/usr/bin/env bash
# The project's test command: lint, format check, type check and the test suite.
#
#   bash scripts/test.sh                      # everything, on the newest supported Synapse
#   bash scripts/test.sh -k sqlite -x         # extra arguments go to pytest
#   bash scripts/test.sh --synapse 1.150.0 tests/integration
#                                             # the tests on another Synapse release
#
# Works on a fresh Debian machine with python3.11, pip and git: installs PostgreSQL,
# pg_repack and Redis (apt) if missing, creates .venv and installs the package with its test extras.
# Set LUX_TEST_POSTGRES to a libpq DSN to use an existing PostgreSQL server instead.
#
# --synapse VERSION (or LUX_SYNAPSE_VERSION): the Synapse release to test on, in its
# own venv (.venv-synapse-VERSION; .venv is left alone). Synapse is installed first,
# then the package: the script checks that installing the package kept that release
# (the module states a lower bound only). Lint and type checks run on the default only.
set -euo pipefail

# The newest release of the tested range (synapse_adapter.TESTED_SYNAPSE): the default.
NEWEST_SYNAPSE=1.163.2
SYNAPSE_VERSION="${LUX_SYNAPSE_VERSION:-}"
if [[ ${1:-} == --synapse ]]; then
    SYNAPSE_VERSION="${2:?--synapse needs a version, e.g. --synapse 1.150.0}"
    shift 2
elif [[ ${1:-} == --synapse=* ]]; then
    SYNAPSE_VERSION="${1#--synapse=}"
    shift
fi
if [[ -n $SYNAPSE_VERSION && ! $SYNAPSE_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+([a-z0-9.]*)$ ]]; then
    echo "error: --synapse $SYNAPSE_VERSION is not a release number such as 1.150.0" >&2
    exit 2
fi
if [[ -n $SYNAPSE_VERSION ]]; then
    VENV=".venv-synapse-$SYNAPSE_VERSION"
else
    VENV=.venv
    SYNAPSE_VERSION=$NEWEST_SYNAPSE
fi

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

# pg_repack for the operator guide's residue procedure (tests/integration/test_disk_residue.py
# runs it against the local PostgreSQL): Debian's package of the installed major version.
ensure_pg_repack() {
    if [[ -n "${LUX_TEST_POSTGRES:-}" ]]; then
        echo "PostgreSQL from LUX_TEST_POSTGRES: the residue procedure's test is skipped"
    elif command -v pg_repack >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/pg_repack" >/dev/null; then
        echo "pg_repack found"
    else
        local major
        major="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -n | tail -1)"
        echo "pg_repack not found: installing Debian's postgresql-$major-repack package"
        as_root apt-get update -q
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "postgresql-$major-repack"
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
    if [[ ! -x $VENV/bin/python ]]; then
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
        if ! "$base" -m venv "$VENV"; then
            echo "venv creation failed: installing python3-venv"
            rm -rf "$VENV"
            as_root apt-get update -q
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                "python$("$base" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
            "$base" -m venv "$VENV"
        fi
    fi
    # Reinstall only when pyproject.toml or the Synapse release changed since the last install.
    local stamp=$VENV/.lux-test-install
    local want
    want="$(sha256sum pyproject.toml | cut -d' ' -f1) $SYNAPSE_VERSION"
    if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
        local pip=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
        # Synapse first, as a provider has it; then the package, which must keep it.
        # txredisapi 1.6 breaks the Redis connection (workers) of every Synapse before
        # 1.163.2, which is the first release to cap it: cap it for all.
        "${pip[@]}" "matrix-synapse[postgres,redis]==$SYNAPSE_VERSION" "txredisapi<1.6"
        "${pip[@]}" -e ".[test]"
        local installed
        installed="$("$VENV/bin/python" -c \
            'import importlib.metadata as m; print(m.version("matrix-synapse"))')"
        if [[ $installed != "$SYNAPSE_VERSION" ]]; then
            echo "error: installing the package changed Synapse $SYNAPSE_VERSION to $installed" >&2
            return 1
        fi
        echo "$want" >"$stamp"
    else
        echo "$VENV is up to date"
    fi
    echo "Synapse $SYNAPSE_VERSION in $VENV"
}

run_pytest() {
    local status=0
    "$VENV/bin/python" -m pytest "$@" || status=$?
    if [[ $status -eq 5 ]]; then
        echo "error: pytest collected no tests (exit status 5) - the test suite is missing" \
            "or every test was deselected" >&2
    fi
    return "$status"
}

step "postgresql" ensure_postgres
step "pg_repack" ensure_pg_repack
step "redis" ensure_redis
step "virtualenv" ensure_venv
export PATH="$PWD/$VENV/bin:$PATH"
if [[ $VENV == .venv ]]; then
    step "ruff check" ruff check .
    step "ruff format --check" ruff format --check .
    step "mypy" mypy
fi
step "pytest (Synapse $SYNAPSE_VERSION)" run_pytest "$@"
