"""Benchmark: the floor for deleting due events (R1): raw SQL on a throwaway copy.

NEVER run this against a real server's database: it deletes rows from Synapse's tables
behind Synapse's back and leaves the database inconsistent. It restores the shared
dataset into a throwaway PostgreSQL database (aged as of now, Synapse not started) and
deletes the due non-state events (sent before ``retention.messages``) with plain
``DELETE`` statements, in batches of ``--batch`` events per transaction: the rows of
``events``, ``event_json``, ``event_edges``, ``event_auth``, ``event_relations``,
``event_search``, ``event_push_actions``, ``redactions`` and ``event_to_state_groups``
of each event, foreign keys not checked (``session_replication_role = replica``). What
it prints (events/s and rows/s) is the speed no purge through
Synapse's machinery can beat on this machine: the module's events/s is compared with
it in ``benchmarks/README.md``.

    .venv/bin/python benchmarks/raw_delete_floor.py --rooms 300 --messages 3000
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.dataset import (  # noqa: E402
    DatasetSpec,
    add_spec_arguments,
    ensure_snapshot,
    restore,
    spec_from_args,
)
from tests.harness import PostgresCluster  # noqa: E402

SMALL = DatasetSpec(users=100, rooms=300, messages=3_000, media=100)
MONTH = 30 * 86_400_000
TABLES = (
    "event_json",
    "event_edges",
    "event_auth",
    "event_relations",
    "event_search",
    "event_push_actions",
    "redactions",
    "event_to_state_groups",
    "events",
)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_spec_arguments(parser, SMALL)
    parser.add_argument("--batch", type=int, default=500, help="events per transaction")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="lux-bench-"))
    cluster = PostgresCluster()
    cluster.start()
    load = os.getloadavg()[0]
    try:
        snapshot = ensure_snapshot(spec_from_args(args), "postgres", cluster)
        now = int(time.time() * 1000)
        server, _ = restore(snapshot, workdir, cluster, [], now)
        db = server.db()
        cutoff = now - 24 * MONTH
        due = [
            str(r[0])
            for r in db.query(
                "SELECT e.event_id FROM events AS e WHERE e.origin_server_ts < ? AND NOT EXISTS"
                " (SELECT 1 FROM state_events AS s WHERE s.event_id = e.event_id)",
                (cutoff,),
            )
        ]
        # Foreign keys (Synapse's sliding-sync tables point at rooms' latest events) are
        # not checked: this copy is thrown away, and the floor is the deletes alone.
        db.execute("SET session_replication_role = replica")
        rows = 0
        began = time.monotonic()
        for start in range(0, len(due), args.batch):
            part = due[start : start + args.batch]
            marks = ", ".join("?" for _ in part)
            db.execute("BEGIN")
            for table in TABLES:
                rows += db.execute(f"DELETE FROM {table} WHERE event_id IN ({marks})", part)
            db.execute("COMMIT")
        took = time.monotonic() - began
        db.close()
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(f"dataset: {spec_from_args(args)}; load average (1 min) before: {load:.2f}")
    print(
        f"raw delete of {len(due)} due events ({rows} rows): {took:.2f} s,"
        f" {len(due) / took:.0f} events/s, {rows / took:.0f} rows/s"
    )


if __name__ == "__main__":
    main()
