#!/usr/bin/env bash
# Run a local development Synapse (SQLite, server name "localhost") with
# synapse-lux-privacy loaded, in ./dev-homeserver/.
#
#   bash scripts/dev-homeserver.sh          # listens on 127.0.0.1:8008
#   PORT=8118 bash scripts/dev-homeserver.sh
#
# The module's config comes from config/homeserver-snippet.yaml when it exists.
# An admin user "admin" is registered on first start; its password is printed and
# kept in dev-homeserver/admin-password. Ctrl-C stops Synapse.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ ! -f pyproject.toml || ! -d synapse_lux_privacy ]]; then
    echo "error: cannot find the repository root (run: bash scripts/${0##*/})" >&2
    exit 1
fi
PORT="${PORT:-8008}"
DIR="dev-homeserver"
PY=".venv/bin/python"

# --- virtualenv with the package installed --------------------------------------
if [[ ! -x "$PY" ]]; then
    BASE_PY="$(command -v python3.11 || command -v python3 || true)"
    if [[ -z "$BASE_PY" ]]; then
        echo "error: python3.11 (or python3) is required" >&2
        exit 1
    fi
    echo "==> creating .venv with $BASE_PY"
    "$BASE_PY" -m venv .venv
fi
if ! "$PY" -c "import synapse, synapse_lux_privacy" 2>/dev/null; then
    echo "==> installing synapse-lux-privacy into .venv (this takes a minute)"
    "$PY" -m pip install --quiet --disable-pip-version-check -e .
fi

"$PY" scripts/devserver.py check-port --port "$PORT"

# --- configuration --------------------------------------------------------------
"$PY" scripts/devserver.py write-config --dir "$DIR" --port "$PORT"

# --- start Synapse --------------------------------------------------------------
echo "==> starting Synapse on 127.0.0.1:$PORT (log: $DIR/homeserver.log)"
"$PY" -m synapse.app.homeserver -c "$DIR/homeserver.yaml" &
SYNAPSE_PID=$!

stop_synapse() {
    if kill -0 "$SYNAPSE_PID" 2>/dev/null; then
        echo
        echo "==> stopping Synapse (pid $SYNAPSE_PID)"
        kill -TERM "$SYNAPSE_PID" 2>/dev/null || true
        wait "$SYNAPSE_PID" 2>/dev/null || true
    fi
}
trap stop_synapse EXIT
trap 'exit 130' INT TERM

if ! "$PY" scripts/devserver.py wait --port "$PORT" --pid "$SYNAPSE_PID"; then
    tail -n 30 "$DIR/homeserver.log" 2>/dev/null || true
    exit 1
fi
"$PY" scripts/devserver.py register-admin --dir "$DIR" --port "$PORT"
"$PY" scripts/devserver.py instructions --dir "$DIR" --port "$PORT"

# --- run in the foreground until Ctrl-C -----------------------------------------
set +e
wait "$SYNAPSE_PID"
STATUS=$?
set -e
if [[ $STATUS -ne 0 ]]; then
    echo "Synapse exited with status $STATUS; see $DIR/homeserver.log" >&2
fi
exit "$STATUS"
