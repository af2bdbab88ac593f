#!/usr/bin/env bash
# Run a local development Synapse (SQLite, server name "localhost") with
# synapse-lux-privacy loaded, in ./dev-homeserver/.
#
#   bash scripts/dev-homeserver.sh          # listens on 127.0.0.1:8008
#   PORT=8118 SMTP_PORT=8125 bash scripts/dev-homeserver.sh
#
# homeserver.yaml is written on every start from config/homeserver-snippet.yaml (the
# module's config and Synapse's sections), then your untracked dev-homeserver.local.yaml
# merged over it (README.md, "Set up for development"). An SMTP sink on 127.0.0.1:8025
# keeps the mail Synapse sends in dev-homeserver/mail/; server notices are on.
# An admin user "admin" is registered on first start; its password is printed and
# kept in dev-homeserver/admin-password. Ctrl-C stops Synapse and the sink.
#
# Environment: PORT (8008), SMTP_PORT (8025), LUX_DEV_DIR (dev-homeserver),
# LUX_DEV_OVERRIDE (dev-homeserver.local.yaml); relative paths are from the repository root.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ ! -f pyproject.toml || ! -d synapse_lux_privacy ]]; then
    echo "error: cannot find the repository root (run: bash scripts/${0##*/})" >&2
    exit 1
fi
PORT="${PORT:-8008}"
SMTP_PORT="${SMTP_PORT:-8025}"
DIR="${LUX_DEV_DIR:-dev-homeserver}"
OVERRIDE="${LUX_DEV_OVERRIDE:-dev-homeserver.local.yaml}"
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
if ! "$PY" -c "import synapse, synapse_lux_privacy, aiosmtpd" 2>/dev/null; then
    echo "==> installing synapse-lux-privacy into .venv (this takes a minute)"
    "$PY" -m pip install --quiet --disable-pip-version-check -e ".[dev]"
fi

"$PY" scripts/devserver.py check-port --port "$PORT"
"$PY" scripts/devserver.py check-port --port "$SMTP_PORT"

# --- configuration --------------------------------------------------------------
"$PY" scripts/devserver.py write-config --dir "$DIR" --port "$PORT" \
    --smtp-port "$SMTP_PORT" --override "$OVERRIDE"

# --- start the SMTP sink and Synapse ----------------------------------------------
SINK_PID=""
SYNAPSE_PID=""
stop_all() {
    for pid in $SYNAPSE_PID $SINK_PID; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
}
trap stop_all EXIT
trap 'echo; echo "==> stopping"; exit 130' INT TERM

echo "==> starting the SMTP sink on 127.0.0.1:$SMTP_PORT (mail: $DIR/mail/)"
"$PY" scripts/devserver.py smtp-sink --dir "$DIR" --smtp-port "$SMTP_PORT" &
SINK_PID=$!

echo "==> starting Synapse on 127.0.0.1:$PORT (log: $DIR/homeserver.log)"
"$PY" -m synapse.app.homeserver -c "$DIR/homeserver.yaml" &
SYNAPSE_PID=$!

if ! "$PY" scripts/devserver.py wait --port "$PORT" --pid "$SYNAPSE_PID"; then
    tail -n 30 "$DIR/homeserver.log" 2>/dev/null || true
    exit 1
fi
"$PY" scripts/devserver.py register-admin --dir "$DIR" --port "$PORT"
"$PY" scripts/devserver.py instructions --dir "$DIR" --port "$PORT" --override "$OVERRIDE"

# --- run in the foreground until Ctrl-C -----------------------------------------
set +e
wait "$SYNAPSE_PID"
STATUS=$?
set -e
if [[ $STATUS -ne 0 ]]; then
    echo "Synapse exited with status $STATUS; see $DIR/homeserver.log" >&2
fi
exit "$STATUS"
