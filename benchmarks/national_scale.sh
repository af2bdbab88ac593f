#!/usr/bin/env bash
# Issue 14's table (R1, R2) in one run per dataset size: every script on the same
# snapshot, one after the other, with the load average before and after each.
#
#   bash benchmarks/national_scale.sh LOG_DIR DATASET_OPTIONS...
#   bash benchmarks/national_scale.sh /tmp/n12k --rooms 300 --messages 10000 --media 1000
#   LATENCY_MODES="" bash benchmarks/national_scale.sh /tmp/n1m --rooms 300 \
#       --messages 10000 --media 1000 --clone-rooms 80     # no latency runs
#   LATENCY_WINDOW=600 bash benchmarks/national_scale.sh /tmp/n1m ... --clone-rooms 80
#       # latency over each sweep's first 600 s (an adaptive sweep of 1M events: 8 h)
#
# The scripts, in order (see benchmarks/README.md for each):
#   content_retention.py  the module's sweep vs Synapse's retention: purge jobs, and the
#                         sweep with nothing due at two data sizes
#   raw_delete_floor.py   raw SQL on a throwaway copy: the floor for events/s
#   idle_sweep.py         a sweep with nothing due, with and without the mark
#   sweep_latency.py      send and /messages p99 during a sweep / idle, per mode in
#                         LATENCY_MODES (default: "none adaptive"; empty to skip),
#                         for at most LATENCY_WINDOW seconds of each sweep if set
# Each script's output goes to LOG_DIR/<script>.log and to the terminal.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
LOG_DIR="${1:?usage: national_scale.sh LOG_DIR DATASET_OPTIONS...}"
shift
mkdir -p "$LOG_DIR"
PYTHON="${PYTHON:-.venv/bin/python}"
LATENCY_MODES="${LATENCY_MODES-none adaptive}"
LATENCY_WINDOW="${LATENCY_WINDOW-}"

run() { # run NAME ARGS...: one script, its log, the load before and after
    local name=$1
    shift
    {
        echo "==> $name $*"
        echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) at $(date -u +%H:%M:%S)"
    } | tee "$LOG_DIR/$name.log"
    "$PYTHON" "benchmarks/$name.py" "$@" 2>&1 | tee -a "$LOG_DIR/$name.log"
    echo "load after: $(cut -d' ' -f1-3 /proc/loadavg) at $(date -u +%H:%M:%S)" \
        | tee -a "$LOG_DIR/$name.log"
}

run content_retention "$@"
run raw_delete_floor "$@"
run idle_sweep "$@" --repeat 15
if [[ -n $LATENCY_MODES ]]; then
    # shellcheck disable=SC2086  # the modes are words
    run sweep_latency "$@" --modes $LATENCY_MODES ${LATENCY_WINDOW:+--window "$LATENCY_WINDOW"}
fi
