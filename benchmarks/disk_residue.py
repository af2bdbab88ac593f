"""Benchmark: deleted text gone from the disk (R1, R15), what it costs.

``sqlite``: the cost of the module's SQLite steps (``synapse_adapter/disk_residue.py``:
``secure_delete`` on Synapse's connection, the FTS merge and the WAL truncation after a
deleting sweep) on the messages sweep's duration and on send latency. A history of
``--rooms`` rooms and ``--messages`` messages is sent once through the client API into a
SQLite server; each round restores a copy of it, backdates the first half of each
room's messages past ``retention.messages`` (24 months), starts Synapse, records send
latencies for ``--idle`` seconds, then runs a real messages sweep (``POST /sweep``)
while the same client keeps sending. Rounds alternate the module as it ships ("with")
and the baseline ("without": the benchmark-only environment switch
``LUX_PRIVACY_BENCHMARK_DISK_RESIDUE_BASELINE``: ``secure_delete`` off, as on a SQLite
built without it, and no steps after the sweep). The FTS merge rewrites the whole
index, so its cost grows with the history: ``--fts-rows`` also times the steps alone on
synthetic full-text indexes of those sizes.

``postgres``: the operator guide's residue procedure (``pg_repack``, docs/operator-guide.md)
on the shared dataset restored from ``LUX_BENCH_DATASETS`` and aged as of now: the
database's size before the messages sweep, after it (and the dead rows the module
reports), and after the procedure, run while a client keeps sending (its send latency
during the procedure). ``--no-sweep`` runs the procedure on the restored data without
a sweep first (the 1M dataset, whose unpaced sweep takes about 14 minutes).

It prints the load average (``os.getloadavg()``) before and after each part. A script,
not a test: figures vary with the machine and its load.

    .venv/bin/python benchmarks/disk_residue.py sqlite --rounds 3
    LUX_BENCH_DATASETS=/work/datasets .venv/bin/python benchmarks/disk_residue.py postgres \\
        --users 1000 --rooms 300 --messages 10000 --media 1000
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.content_retention import admin_client  # noqa: E402
from benchmarks.dataset import (  # noqa: E402
    DatasetSpec,
    add_spec_arguments,
    lux_module,
    restore,
    snapshot_path,
    spec_from_args,
    wait_for_background_updates,
)
from benchmarks.sweep_latency import Probe, p  # noqa: E402
from synapse_lux_privacy.synapse_adapter.disk_residue import (  # noqa: E402
    BENCHMARK_BASELINE_ENV,
    clear_sqlite,
    secure_delete,
)
from tests.harness import Database, MatrixClient, PostgresCluster, SynapseServer  # noqa: E402
from tests.integration.test_disk_residue import run_guide_procedure  # noqa: E402

DAY = 86_400_000
MONTH = 30 * DAY
MODULE = {"sweep_interval": "1d"}
ARMS = ("with", "without")


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


# -- SQLite ---------------------------------------------------------------------------


def build_history(workdir: Path, rooms: int, messages: int) -> tuple[Path, dict[str, str]]:
    """A SQLite server's database with the history sent through the client API; the file
    and the admin's login (user ID, token)."""
    server = SynapseServer(workdir, "sqlite", None, dict(MODULE))
    server.start()
    try:
        admin = server.register_user("benchadmin", admin=True)
        per_room = messages // rooms
        for r in range(rooms):
            room = admin.create_room()
            for i in range(per_room):
                admin.send_message(room, f"message {i} of room {r}: the weather, lunch and plans")
        login = {"user_id": str(admin.user_id), "token": str(admin.access_token)}
    finally:
        server.stop()
    return workdir / "homeserver.db", login


def backdate_half(db: Database, now_ms: int) -> int:
    """The first half of each room's messages sent 25 months ago: due (R1)."""
    old = now_ms - 25 * MONTH
    rows = db.query(
        "SELECT room_id, COUNT(*) FROM events WHERE type = 'm.room.message' GROUP BY room_id"
    )
    due = 0
    for room_id, count in rows:
        half = int(count) // 2
        due += half
        db.execute(
            "UPDATE events SET origin_server_ts = ?, received_ts = ? WHERE event_id IN"
            " (SELECT event_id FROM events WHERE room_id = ? AND type = 'm.room.message'"
            " ORDER BY stream_ordering LIMIT ?)",
            (old, old, room_id, half),
        )
    return due


def sqlite_round(
    base: Path, login: dict[str, str], workdir: Path, arm: str, idle_s: float, rate: float
) -> dict[str, Any]:
    shutil.copytree(base.parent, workdir)
    server = SynapseServer(workdir, "sqlite", None, dict(MODULE))
    db = server.db()
    due = backdate_half(db, int(time.time() * 1000))
    db.close()
    if arm == "without":
        os.environ[BENCHMARK_BASELINE_ENV] = "1"
    try:
        server.start()
    finally:
        os.environ.pop(BENCHMARK_BASELINE_ENV, None)
    try:
        admin = MatrixClient(server.base_url, login["token"], login["user_id"], timeout=3600)
        room = admin.create_room()
        probe = Probe(admin, room, rate)
        probe.measure(3)  # warm-up
        idle = list(probe.measure(idle_s).send)
        result: dict[str, Any] = {}

        def sweep() -> bool:
            began = time.monotonic()
            status, report = admin.lux("POST", "/sweep", {"rules": ["messages"]})
            result["sweep_s"] = time.monotonic() - began
            assert status == 200, report
            result["report"] = report
            return True

        sweeper = threading.Thread(target=sweep)
        sweeper.start()
        during = list(probe.measure(None, lambda: not sweeper.is_alive()).send)
        sweeper.join()
        report = result["report"]
        return {
            "arm": arm,
            "due": due,
            "deleted": report["results"]["messages"]["deleted"],
            "sweep_s": result["sweep_s"],
            "residue": report.get("disk_residue"),
            "idle": idle,
            "during": during,
        }
    finally:
        server.stop()


def fts_steps(workdir: Path, rows: int) -> float:
    """Seconds of the sweep's SQLite steps (``clear_sqlite``) on a full-text index of
    ``rows`` messages like Synapse's (inserted 100 to a transaction), after deleting 1 %."""
    conn = sqlite3.connect(workdir / f"fts-{rows}.db")
    conn.execute("PRAGMA journal_mode = WAL")
    secure_delete(conn)
    conn.execute(
        "CREATE VIRTUAL TABLE event_search USING fts4 (event_id, room_id, sender, key, value)"
    )
    for start in range(0, rows, 100):
        conn.executemany(
            "INSERT INTO event_search VALUES (?, '!room', '@user', 'content.body', ?)",
            [(f"$e{i}", f"message {i} about the weather, lunch {i % 97} and plans") for i in
             range(start, min(rows, start + 100))],
        )  # fmt: skip
        conn.commit()
    conn.execute("DELETE FROM event_search WHERE rowid % 100 = 0")
    conn.commit()
    began = time.monotonic()
    clear_sqlite(conn)
    took = time.monotonic() - began
    conn.close()
    return took


def run_sqlite(args: Any) -> None:
    print(f"load before: {load()}")
    workdir = Path(tempfile.mkdtemp(prefix="lux-residue-"))
    try:
        began = time.monotonic()
        base, login = build_history(workdir / "base", args.rooms, args.messages)
        print(
            f"history: {args.rooms} rooms, {args.messages} messages, built in"
            f" {time.monotonic() - began:.0f} s; homeserver.db {base.stat().st_size / 1e6:.1f} MB"
        )
        for rows in args.fts_rows:
            print(f"FTS merge + WAL truncation, index of {rows} messages:"
                  f" {fts_steps(workdir, rows):.2f} s")  # fmt: skip
        runs = []
        for n in range(args.rounds):
            for arm in ARMS if n % 2 == 0 else tuple(reversed(ARMS)):
                run = sqlite_round(base, login, workdir / f"r{n}-{arm}", arm, args.idle, args.rate)
                runs.append(run)
                print(
                    f"round {n + 1} {arm:7}: sweep {run['sweep_s']:6.2f} s, deleted"
                    f" {run['deleted']}/{run['due']}, send p50/p99 idle"
                    f" {p(run['idle'], 0.5):5.1f}/{p(run['idle'], 0.99):6.1f} ms, during"
                    f" {p(run['during'], 0.5):5.1f}/{p(run['during'], 0.99):6.1f} ms"
                    f" ({len(run['during'])} sends); residue {run['residue']}"
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"load after: {load()}")
    summary: dict[str, dict[str, float]] = {}
    for arm in ARMS:
        mine = [r for r in runs if r["arm"] == arm]
        idle = [x for r in mine for x in r["idle"]]
        during = [x for r in mine for x in r["during"]]
        summary[arm] = {
            "sweep": statistics.median(r["sweep_s"] for r in mine),
            "idle50": p(idle, 0.5),
            "idle99": p(idle, 0.99),
            "during50": p(during, 0.5),
            "during99": p(during, 0.99),
        }
        s = summary[arm]
        print(
            f"{arm:7}: sweep median {s['sweep']:.2f} s; send p50/p99 idle"
            f" {s['idle50']:.1f}/{s['idle99']:.1f} ms, during the sweep"
            f" {s['during50']:.1f}/{s['during99']:.1f} ms"
        )
    w, b = summary["with"], summary["without"]
    print(
        f"with / without: sweep {w['sweep'] / b['sweep']:.3f}x; send idle p50"
        f" {w['idle50'] / b['idle50']:.3f}x p99 {w['idle99'] / b['idle99']:.3f}x;"
        f" during p50 {w['during50'] / b['during50']:.3f}x p99 {w['during99'] / b['during99']:.3f}x"
    )


# -- PostgreSQL -------------------------------------------------------------------------

SIZES = (
    "SELECT pg_database_size(current_database()),"
    " pg_total_relation_size('event_json'), pg_total_relation_size('event_search')"
)


def sizes(db: Database) -> str:
    row = db.query_one(SIZES)
    assert row is not None
    total, json_bytes, search_bytes = (int(x) / 1e6 for x in row)
    return (
        f"database {total:8.1f} MB, event_json {json_bytes:7.1f} MB,"
        f" event_search {search_bytes:6.1f} MB"
    )


def measured(admin: MatrixClient, sweep_id: str) -> Any:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _, record = admin.lux("GET", f"/sweeps/{sweep_id}")
        if (record.get("disk_residue") or {}).get("tables") is not None:
            return record["disk_residue"]["tables"]
        time.sleep(1)
    return None


def run_postgres(args: Any) -> None:
    spec = spec_from_args(args)
    snapshot = snapshot_path(spec, "postgres")
    if not (snapshot / "manifest.json").exists():
        raise SystemExit(f"no snapshot {snapshot}: build it with python -m benchmarks.dataset")
    print(f"load before: {load()}")
    workdir = Path(tempfile.mkdtemp(prefix="lux-residue-"))
    cluster = PostgresCluster()
    cluster.start()
    try:
        began = time.monotonic()
        now = int(time.time() * 1000)
        server, manifest = restore(snapshot, workdir, cluster, [lux_module(MODULE)], now)
        print(f"dataset {snapshot.name} restored in {time.monotonic() - began:.0f} s")
        server.start()
        wait_for_background_updates(server)
        admin = admin_client(server.base_url, manifest)
        db = server.db()
        print(f"before the sweep:     {sizes(db)}")
        if not args.no_sweep:
            began = time.monotonic()
            status, report = admin.lux("POST", "/sweep", {"rules": ["messages"]})
            assert status == 200, report
            print(
                f"messages sweep: {time.monotonic() - began:.1f} s,"
                f" {report['results']['messages']['deleted']} events deleted"
            )
            print(f"  residue the module reports: {measured(admin, report['sweep_id'])}")
            print(f"after the sweep:      {sizes(db)}")
        room = admin.create_room()
        probe = Probe(admin, room, args.rate)
        idle = list(probe.measure(args.idle).send)
        assert server.pg_params is not None
        database = str(server.pg_params["database"])
        out: dict[str, float] = {}

        def procedure() -> bool:
            started = time.monotonic()
            run_guide_procedure(cluster, database)
            out["s"] = time.monotonic() - started
            return True

        worker = threading.Thread(target=procedure)
        worker.start()
        during = list(probe.measure(None, lambda: not worker.is_alive()).send)
        worker.join()
        print(
            f"residue procedure (pg_repack, Synapse running): {out['s']:.1f} s; send p50/p99"
            f" idle {p(idle, 0.5):.1f}/{p(idle, 0.99):.1f} ms, during"
            f" {p(during, 0.5):.1f}/{p(during, 0.99):.1f} ms ({len(during)} sends, none failed)"
        )
        print(f"after the procedure:  {sizes(db)}")
        db.close()
        server.stop()
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"load after: {load()}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parts = parser.add_subparsers(dest="part", required=True)
    lite = parts.add_parser("sqlite", help="cost of the SQLite steps, with vs without")
    lite.add_argument("--rooms", type=int, default=40)
    lite.add_argument("--messages", type=int, default=2000)
    lite.add_argument("--rounds", type=int, default=3, help="rounds of each arm, alternating")
    lite.add_argument("--idle", type=float, default=10.0, help="seconds of idle sends")
    lite.add_argument("--rate", type=float, default=10.0, help="sends per second")
    lite.add_argument(
        "--fts-rows",
        type=int,
        nargs="*",
        default=[10_000, 100_000],
        help="also time the steps alone on synthetic full-text indexes of these sizes",
    )
    pg = parts.add_parser("postgres", help="the residue procedure on the shared dataset")
    add_spec_arguments(pg, DatasetSpec(users=1000, rooms=300, messages=10_000, media=1000))
    pg.add_argument("--no-sweep", action="store_true", help="no messages sweep first")
    pg.add_argument("--idle", type=float, default=10.0, help="seconds of idle sends")
    pg.add_argument("--rate", type=float, default=5.0, help="sends per second")
    args = parser.parse_args(argv)
    print(f"command: {' '.join(sys.argv)}")
    if args.part == "sqlite":
        run_sqlite(args)
    else:
        run_postgres(args)


if __name__ == "__main__":
    main()
