#!/usr/bin/env bash
# The Docker path, as a provider takes it (CI: .ci/run). Needs root (it installs Debian's
# docker.io through the stand-ins script) and the project's .venv (bash scripts/test.sh).
#
#   bash scripts/docker-checks.sh
#
# 1. the stand-ins of the official images (../shared/docker-standins/make-images.sh:
#    about 5 minutes the first time, 2 s when they exist);
# 2. tests/docker: the README's `docker compose up -d synapse` with a dry-run and a real
#    sweep through the CLI, and the workers stack with a sweep through nginx's front door
#    that runs on the background worker and deletes media; each stack is removed with
#    `docker compose down -v`;
# 3. `docker compose --profile tests run --rm tests` on the tests that reach the adapter
#    (the self-check, the range checks and a real sweep through every rule), inside the
#    image, against the compose PostgreSQL.
# What the stand-ins cannot prove: behaviour that depends on the official image's exact
# Python packages (they install PyPI's newest allowed ones, not upstream's lock file).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
STANDINS="${LUX_DOCKER_STANDINS:-../shared/docker-standins}"
VENV="${VENV:-.venv}"

started=$(date +%s)
echo "==> stand-in images ($STANDINS/make-images.sh)"
bash "$STANDINS/make-images.sh"
echo "    $(($(date +%s) - started)) s"

echo "==> compose stacks (tests/docker)"
LUX_DOCKER_TESTS=1 LUX_REQUIRE_DOCKER=1 "$VENV/bin/python" -m pytest tests/docker -q -p no:cacheprovider

echo "==> the test image on the adapter's tests"
compose=(docker compose -p luxci-tests -f docker-compose.yml --profile tests)
trap '"${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true' EXIT
"${compose[@]}" build tests
"${compose[@]}" run --rm tests -q -p no:cacheprovider \
    tests/unit/test_adapter_selfcheck.py tests/integration/test_synapse_range.py \
    tests/integration/test_sweep_engine.py
echo "==> Docker checks passed in $(($(date +%s) - started)) s"
