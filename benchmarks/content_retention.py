"""Benchmark: the content-retention sweep (R1, R2) against Synapse's own ``retention:`` purge.

Builds a dataset on PostgreSQL through the client API (rooms, messages, uploads), puts the
first half of it past its limits (backdated rows: ``events.origin_server_ts`` and
``received_ts`` by 25 months, ``local_media_repository.created_ts`` by 13 months), copies
the database and the media store, then:

- on the original, runs the module's sweep (``POST /sweep``: ``messages``, then the media
  rules) and times it;
- on the copy, starts Synapse without the module and with ``retention:`` purge jobs
  configured for the same 24-month lifetime, and times them until every due message is gone.

It prints both wall times, the rows each deleted and their ratio, and the cost of a sweep
when nothing is due at two data sizes (half the data, all of it), and once more after the
real sweep. A script, not a test: figures vary with the machine.

    .venv/bin/python benchmarks/content_retention.py                 # the issue's sizes
    .venv/bin/python benchmarks/content_retention.py --rooms 300 --events 10000 --media 1000
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import psycopg2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness import Database, MatrixClient, PostgresCluster, SynapseServer  # noqa: E402

DAY = 86_400_000
MONTH = 30 * DAY
CONTENT_MEDIA_RULES = ["attachments", "remote_media", "redacted_content"]
T = TypeVar("T")


def parallel(workers: int, func: Callable[[T], Any], items: Sequence[T]) -> list[Any]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(func, items))


def clone(client: MatrixClient) -> MatrixClient:
    """The same session on a new HTTP connection pool (one per thread)."""
    return MatrixClient(client.base_url, client.access_token, client.user_id, client.device_id)


class Dataset:
    def __init__(self, server: SynapseServer, rooms: int, users: int, workers: int) -> None:
        self.server = server
        self.workers = workers
        self.users = [server.register_user(f"bench{i}") for i in range(users)]
        self.rooms = parallel(workers, self._room, range(rooms))

    def _room(self, index: int) -> tuple[int, str]:
        owner = clone(self.users[index % len(self.users)])
        member = clone(self.users[(index + 1) % len(self.users)])
        room = owner.create_room(preset="public_chat")
        member.join(room)
        return index, room

    def send(self, events: int) -> None:
        """``events`` messages spread evenly over the rooms, both members speaking."""
        per_room = max(1, events // len(self.rooms))

        def fill(item: tuple[int, str]) -> None:
            index, room = item
            speakers = [clone(self.users[index % len(self.users)]),
                        clone(self.users[(index + 1) % len(self.users)])]  # fmt: skip
            for n in range(per_room):
                speakers[n % 2].send_message(room, f"message {n} in room {index}")

        parallel(self.workers, fill, self.rooms)

    def upload(self, count: int) -> list[str]:
        def one(n: int) -> str:
            return clone(self.users[n % len(self.users)]).upload_media(
                os.urandom(1024), "application/octet-stream"
            )

        return parallel(self.workers, one, range(count))


def counts(db: Database) -> dict[str, int]:
    """Rows of the tables a purge and a media deletion empty."""
    tables = ("events", "event_json", "event_edges", "event_search", "local_media_repository")
    return {t: int(db.query_one(f"SELECT COUNT(*) FROM {t}")[0]) for t in tables}  # type: ignore[index]


def due_messages(db: Database, cutoff: int) -> int:
    row = db.query_one(
        "SELECT COUNT(*) FROM events AS e WHERE e.origin_server_ts < ? AND NOT EXISTS"
        " (SELECT 1 FROM state_events AS s WHERE s.event_id = e.event_id)",
        (cutoff,),
    )
    return int(row[0])  # type: ignore[index]


def sweep(admin: MatrixClient, rules: list[str], dry_run: bool = False) -> tuple[float, Any]:
    began = time.monotonic()
    status, report = admin.lux("POST", "/sweep", {"rules": rules, "dry_run": dry_run})
    elapsed = time.monotonic() - began
    assert status == 200, report
    return elapsed, report["results"]


def noop_sweep(admin: MatrixClient) -> float:
    elapsed, results = sweep(admin, ["messages", *CONTENT_MEDIA_RULES])
    assert all(r["deleted"] == 0 for r in results.values()), results
    return elapsed


def copy_database(cluster: PostgresCluster, source: str, target: str) -> dict[str, Any]:
    conn = psycopg2.connect(**_libpq(cluster.params("postgres")))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{target}" TEMPLATE "{source}"')
    finally:
        conn.close()
    return cluster.params(target)


def _libpq(params: dict[str, Any]) -> dict[str, Any]:
    out = dict(params)
    out["dbname"] = out.pop("database")
    return out


def synapse_retention(
    workdir: Path, params: dict[str, Any], media_store: Path, cutoff: int, expected: int
) -> tuple[float, dict[str, int], dict[str, int]]:
    """Synapse's own purge jobs on the copy: wall time from the job's start until no due
    message is left (or nothing moved for 60 s); rows before and after."""
    extra = {
        "media_store_path": str(media_store),
        "retention": {
            "enabled": True,
            "default_policy": {"max_lifetime": "720d"},
            "purge_jobs": [{"interval": "5s"}],
        },
    }
    server = SynapseServer(workdir, "postgres", params, None, extra)
    db = Database(pg_params=params)
    before = counts(db)
    server.start()
    try:
        server.wait_for_log("[purge] Running retention purge job", timeout=120)
        began = time.monotonic()
        last_change, last = began, due_messages(db, cutoff)
        while last > 0 and time.monotonic() - last_change < 60:
            time.sleep(0.2)
            now = due_messages(db, cutoff)
            if now != last:
                last_change, last = time.monotonic(), now
        elapsed = last_change - began
        if last:
            print(f"  Synapse left {last} of {expected} due messages")
        return elapsed, before, counts(db)
    finally:
        server.stop()
        db.close()


def deleted(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {t: before[t] - after[t] for t in before}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=3000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--media", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="lux-bench-"))
    cluster = PostgresCluster()
    cluster.start()
    ours = cluster.create_database("bench_ours")
    server = SynapseServer(workdir / "ours", "postgres", ours, {}, None)
    server.start()
    try:
        admin = server.register_user("benchadmin", admin=True)
        print(f"building {args.rooms} rooms, {args.events} messages, {args.media} uploads ...")
        began = time.monotonic()
        data = Dataset(server, args.rooms, args.users, args.workers)
        data.send(args.events // 2)
        data.upload(args.media // 2)
        db = server.db()
        (old_stream,) = db.query_one("SELECT MAX(stream_ordering) FROM events")  # type: ignore[misc]
        (old_media_ts,) = db.query_one("SELECT MAX(created_ts) FROM local_media_repository")  # type: ignore[misc]
        half = counts(db)
        noop_half = [noop_sweep(admin) for _ in range(3)]
        data.send(args.events - args.events // 2)
        data.upload(args.media - args.media // 2)
        full = counts(db)
        noop_full = [noop_sweep(admin) for _ in range(3)]
        print(f"built in {time.monotonic() - began:.0f} s: {full}")

        # The first half goes past its limits: 25 months for events, 13 for files.
        db.execute(
            "UPDATE events SET origin_server_ts = origin_server_ts - ?,"
            " received_ts = received_ts - ? WHERE stream_ordering <= ?",
            (25 * MONTH, 25 * MONTH, old_stream),
        )
        db.execute(
            "UPDATE local_media_repository SET created_ts = created_ts - ? WHERE created_ts <= ?",
            (13 * MONTH, old_media_ts),
        )
        cutoff = int(time.time() * 1000) - 24 * MONTH
        due = due_messages(db, cutoff)
        server.stop()
        copy = copy_database(cluster, ours["database"], "bench_synapse")
        shutil.copytree(workdir / "ours" / "media_store", workdir / "synapse_media")
        server.start()
        admin = server.login("benchadmin", str(admin.password))

        db = server.db()
        before = counts(db)
        _, forecast = sweep(admin, ["messages", *CONTENT_MEDIA_RULES], dry_run=True)
        t_messages, r_messages = sweep(admin, ["messages"])
        t_media, r_media = sweep(admin, CONTENT_MEDIA_RULES)
        ours_deleted = deleted(before, counts(db))
        left = due_messages(db, cutoff)
        noop_after = [noop_sweep(admin) for _ in range(3)]
        server.stop()

        t_synapse, s_before, s_after = synapse_retention(
            workdir / "synapse", copy, workdir / "synapse_media", cutoff, due
        )
        synapse_deleted = deleted(s_before, s_after)
    finally:
        server.stop()
        cluster.stop()

    print()
    print(f"dataset: {args.rooms} rooms, {full['events']} event rows ({due} messages due),"
          f" {full['local_media_repository']} uploads (half due)")  # fmt: skip
    print(f"dry run forecast: { {k: v['candidates'] for k, v in forecast.items()} }")
    print(f"module sweep, messages rule:     {t_messages:8.2f} s  {r_messages['messages']}")
    print(f"module sweep, media rules:       {t_media:8.2f} s  {r_media['attachments']}")
    print(f"  rows deleted: {ours_deleted}; due messages left: {left}")
    print(f"Synapse retention purge jobs:    {t_synapse:8.2f} s (media: not deleted)")
    print(f"  rows deleted: {synapse_deleted}")
    ratio = t_synapse / t_messages if t_messages else float("inf")
    print(f"ratio Synapse / module (messages): {ratio:.2f}")
    print(f"events deleted per second: module {ours_deleted['events'] / t_messages:.0f},"
          f" Synapse {synapse_deleted['events'] / max(t_synapse, 1e-9):.0f}")  # fmt: skip
    print("sweep with nothing due (median of 3):")
    for label, size, times in (
        ("half the data", half["events"], noop_half),
        ("all the data", full["events"], noop_full),
        ("after the sweep", full["events"] - ours_deleted["events"], noop_after),
    ):
        print(f"  {label:16} {size:8} event rows: {sorted(times)[1] * 1000:8.1f} ms")
    if args.keep:
        print(f"work folder kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
