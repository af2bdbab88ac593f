"""Benchmark: hourly sweeps in the steady state, with and without a purge window (R1, R3).

Once the backlog is cleared, each hourly sweep purges every room where a message fell
due in the last hour. On PostgreSQL, the shared dataset (``benchmarks/dataset``) is
restored once per window (``--windows``, default ``0d 1d``) and its events dated as
steady traffic: spread evenly, in send order, over 28 days starting 30 days ago (the
probe's own messages, sent now, are never due). Then:

1. a client sends and paginates in a room of its own (``sweep_latency.Probe``) for
   ``--idle`` seconds with no sweep;
2. a sweep "as of" 24 months and 7 days after the traffic began clears its first week
   (the backlog; not measured);
3. sweeps (``POST /sweep``, messages rule, the shipped pace), each "as of" ``--every``
   hours after the last (1: hourly, the default ``sweep_interval``; 24: daily), for
   ``--hours`` hours, run back to back while the client goes on: a simulated week of
   sweeps, compressed.

It prints, per window: the purges of those sweeps (the rule's log line per
purge), the rooms where a message fell due meanwhile (active rooms) and the purges per
active room per week, the messages deleted, the sweeps' time (total and median), and
the send and ``/messages`` p99 and median idle and during the sweeps, with their ratios.
A script, not a test: figures vary with the machine and its load.

    LUX_BENCH_DATASETS=/work/datasets .venv/bin/python benchmarks/purge_window.py \\
        --users 1000 --rooms 300 --messages 10000 --media 1000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.content_retention import admin_client, quota_settled  # noqa: E402
from benchmarks.dataset import (  # noqa: E402
    add_spec_arguments,
    lux_module,
    restore,
    spec_from_args,
)
from benchmarks.dataset.aging import spread  # noqa: E402
from benchmarks.sweep_latency import (  # noqa: E402
    SMALL,
    latency_line,
    on_fresh_restores,
    prepare,
    purges_per_room,
)
from tests.harness import Database, MatrixClient, PostgresCluster  # noqa: E402

HOUR = 3_600_000
DAY = 24 * HOUR
LIFETIME = 720 * DAY  # retention.messages: 24 months of 30 days (R1)
TRAFFIC_STARTS_AGO = 30 * DAY
TRAFFIC_SPAN = 28 * DAY
BACKLOG = 7 * DAY  # the traffic's first week is due at the first sweep


def active_rooms(db: Database, sent_after: int, sent_until: int) -> int:
    """Rooms with a message (non-state event) sent in (``sent_after``, ``sent_until``]."""
    return db.number(
        "SELECT COUNT(DISTINCT e.room_id) FROM events AS e"
        " WHERE e.origin_server_ts > ? AND e.origin_server_ts <= ? AND NOT EXISTS"
        " (SELECT 1 FROM state_events AS s WHERE s.event_id = e.event_id)",
        (sent_after, sent_until),
    )


def sweep_as_of(admin: MatrixClient, as_of: int) -> tuple[float, int]:
    """A messages sweep "as of" ``as_of``: (seconds, messages deleted)."""
    began = time.monotonic()
    status, report = admin.lux("POST", "/sweep", {"rules": ["messages"], "as_of": as_of})
    assert status == 200, report
    return time.monotonic() - began, int(report["results"]["messages"]["deleted"])


def one_window(
    snapshot: Path, workdir: Path, cluster: PostgresCluster, window: str, args: Any
) -> dict[str, Any]:
    module = lux_module(
        {"retention": {"purge_window": window}, "allow_future_sweeps": True, "sweep_interval": "1d"}
    )
    server, manifest = restore(snapshot, workdir, cluster, [module], None)
    started = int(time.time() * 1000) - TRAFFIC_STARTS_AGO
    spread(
        server.db(),
        "events",
        ("received_ts", "origin_server_ts"),
        "stream_ordering",
        started,
        TRAFFIC_SPAN,
    )
    server.start()
    try:
        admin = admin_client(server.base_url, manifest)
        db = server.db()
        quota_settled(db)
        probe = prepare(admin, admin_client(server.base_url, manifest), args)
        load_before = os.getloadavg()[0]
        idle = probe.measure(args.idle)
        idle_send, idle_page = list(idle.send), list(idle.paginate)
        first = started + LIFETIME + BACKLOG
        sweep_as_of(admin, first)
        purged_before = purges_per_room(server.log_text())
        active = active_rooms(db, started + BACKLOG, started + BACKLOG + args.hours * HOUR)
        times: list[float] = []
        deleted = 0

        def sweeps() -> bool:
            nonlocal deleted
            for hour in range(args.every, args.hours + 1, args.every):
                took, count = sweep_as_of(admin, first + hour * HOUR)
                times.append(took)
                deleted += count
            return True

        during = probe.measure(None, until=_in_thread(sweeps))
        purges = purges_per_room(server.log_text())
        purges.subtract(purged_before)
        purges = +purges  # rooms purged in the measured sweeps only
        return {
            "window": window,
            "active_rooms": active,
            "purges": sum(purges.values()),
            "rooms_purged": len(purges),
            "deleted": deleted,
            "times": times,
            "load": (load_before, os.getloadavg()[0]),
            "send": (idle_send, list(during.send)),
            "paginate": (idle_page, list(during.paginate)),
        }
    finally:
        server.stop()


def _in_thread(work: Any) -> Any:
    """Start ``work`` in a thread; a function telling whether it has finished (it raises
    the thread's error, if any, once finished)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["done"] = work()
        except BaseException as error:  # reported to the caller below
            outcome["error"] = error

    thread = threading.Thread(target=target)
    thread.start()

    def finished() -> bool:
        if thread.is_alive():
            return False
        if "error" in outcome:
            raise outcome["error"]
        return True

    return finished


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_spec_arguments(parser, SMALL)
    parser.add_argument("--windows", nargs="+", default=["0d", "1d"], help="purge windows")
    parser.add_argument("--hours", type=int, default=168, help="hours swept (168: a week)")
    parser.add_argument("--every", type=int, default=1, help="hours between sweeps (24: daily)")
    parser.add_argument("--rate", type=float, default=5.0, help="probe requests/s of each kind")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds measured idle")
    args = parser.parse_args(argv)

    on_fresh_restores(args, args.windows, one_window, report)


def report(runs: Sequence[dict[str, Any]], args: Any) -> None:
    print(
        f"dataset: {spec_from_args(args)}; a sweep every {args.every} h for {args.hours} h"
        " after the backlog"
    )
    for run in runs:
        weekly = run["purges"] / max(run["active_rooms"], 1) * 168 / args.hours
        times = run["times"]
        print(
            f"purge_window {run['window']}: {run['purges']} purges in {run['rooms_purged']}"
            f" rooms; {run['active_rooms']} active rooms: {weekly:.2f} purges per active room"
            f" per week; {run['deleted']} messages deleted; {len(times)} sweeps"
            f" {sum(times):.1f} s in all, median {statistics.median(times) * 1000:.0f} ms;"
            " load average (1 min) {:.2f} -> {:.2f}".format(*run["load"])
        )
        for kind in ("send", "paginate"):
            print(latency_line(kind, *run[kind]))


if __name__ == "__main__":
    main()
