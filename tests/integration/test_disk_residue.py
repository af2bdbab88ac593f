"""Deleted text gone from the disk (R1, R15) on a real Synapse with the module.

A marker message is sent among others, its event purged by the messages rule (R1), and
the database's files are then read as bytes, as anyone with the files (or a copy) could.

Time: the marker's events are backdated in the database (``events.origin_server_ts``
and ``received_ts``, to 1990) and the sweep runs "as of" 24 months and a day later
through the admin API; the messages sent after them are not backdated and stay.

- SQLite: the module sets ``secure_delete`` on Synapse's connection, merges the
  full-text index and checkpoints and truncates the WAL after the sweep, so the marker
  (as sent, and lowercased as the FTS index stores its words) is in neither
  ``homeserver.db`` nor ``homeserver.db-wal`` once the sweep has answered.
- PostgreSQL: the sweep's record and the metrics show the residue (dead rows of
  ``event_json``); the operator guide's procedure (docs/operator-guide.md, "Deleted
  text on the disk") then runs with ``pg_repack`` while Synapse keeps answering, after
  which the marker is in no file of the database's directory ``base/<oid>/``, nor, with
  ``wal_recycle = off`` as the guide recommends, in ``pg_wal/``.
"""

import os
import re
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import StartSynapse
from tests.harness import Database, MatrixClient, PostgresCluster, SynapseServer, uid
from tests.integration.test_content_support import DAY, MONTH, backdate_events, stored_events

pytestmark = pytest.mark.integration

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "operator-guide.md"
BACKDATED = 631_152_000_000  # 1990-01-01
AS_OF = BACKDATED + 24 * MONTH + DAY
OTHERS = 12  # messages beside the marker, so that its pages hold other rows too


def send_history(
    hs: SynapseServer, marker: str
) -> tuple[MatrixClient, MatrixClient, str, list[str]]:
    """An admin, a user and a room: the marker among old messages (backdated), then
    messages that stay. The old events' IDs."""
    admin = hs.register_user(uid("admin"), admin=True)
    alice = hs.register_user(uid("alice"))
    room = alice.create_room()
    old = [alice.send_message(room, f"old message {i} about the weather") for i in range(OTHERS)]
    old.insert(OTHERS // 2, alice.send_message(room, f"the code word is {marker} today"))
    for i in range(OTHERS):
        alice.send_message(room, f"recent message {i} about lunch")
    backdate_events(hs.db(), old, BACKDATED)
    return admin, alice, room, old


def sweep_messages(admin: MatrixClient) -> dict[str, Any]:
    """A real sweep of the messages rule as of AS_OF, through the admin API; its report."""
    code, report = admin.lux("POST", "/sweep", {"as_of": AS_OF, "rules": ["messages"]})
    assert code == 200, report
    assert report["status"] == "completed", report
    return dict(report)


def files_holding(paths: list[Path], needles: list[bytes]) -> list[str]:
    """The files (by name) that hold one of the needles."""
    return [p.name for p in paths if p.is_file() and any(n in p.read_bytes() for n in needles)]


def test_r1_deleted_text_gone_from_sqlite_files(start_synapse: StartSynapse) -> None:
    hs = start_synapse("sqlite", {})
    marker = f"Zqx7Marker{uid('k')}"
    needles = [marker.encode(), marker.lower().encode()]
    db_files = [hs.dir / "homeserver.db", hs.dir / "homeserver.db-wal"]
    admin, _alice, _room, old = send_history(hs, marker)
    assert files_holding(db_files, needles), "the marker should be on the disk before the sweep"

    report = sweep_messages(admin)

    assert files_holding(db_files, needles) == []
    assert report["results"]["messages"]["deleted"] == len(old)
    assert stored_events(hs.db(), old) == set()
    residue = report["disk_residue"]
    assert residue["database"] == "sqlite" and residue["fts_optimized"] is True
    assert residue["wal_checkpoint"]["busy"] == 0


def pg_files(cluster: PostgresCluster, database: Database) -> tuple[list[Path], list[Path]]:
    """The files of the database's directory ``base/<oid>/`` and of ``pg_wal/``."""
    oid = database.number("SELECT oid FROM pg_database WHERE datname = current_database()")
    data = cluster.data_dir
    return list((data / "base" / str(oid)).iterdir()), list((data / "pg_wal").iterdir())


def relations_of(database: Database, files: list[str]) -> set[str]:
    """The relations (tables, indexes, TOAST) whose data files these are."""
    nodes = {int(re.match(r"\d+", name).group()) for name in files if re.match(r"\d+", name)}  # type: ignore[union-attr]
    if not nodes:
        return set()
    rows = database.query(
        "SELECT relname FROM pg_class WHERE pg_relation_filenode(oid) IN"
        f" ({', '.join(str(n) for n in nodes)})"
    )
    return {str(r[0]) for r in rows}


def measured_residue(admin: MatrixClient, sweep_id: str, timeout: float = 40) -> dict[str, Any]:
    """The sweep record's ``disk_residue`` once the module has measured it (PostgreSQL's
    statistics are read ``STATS_DELAY_S`` after the sweep)."""
    deadline = time.monotonic() + timeout
    while True:
        code, record = admin.lux("GET", f"/sweeps/{sweep_id}")
        assert code == 200, record
        residue: dict[str, Any] = record["disk_residue"]
        if residue.get("tables") is not None or time.monotonic() > deadline:
            assert residue.get("tables") is not None, f"not measured within {timeout} s"
            return residue
        time.sleep(1)


def dead_rows_metric(hs: SynapseServer, table: str) -> float:
    pattern = rf'^lux_privacy_synapse_table_dead_rows\{{[^}}]*table="{table}"[^}}]*\}} (\S+)$'
    found = re.findall(pattern, hs.metrics_text(), re.MULTILINE)
    assert found, f"no dead-rows metric for {table}"
    return float(found[0])


def guide_procedure() -> str:
    """The operator guide's residue procedure: its ``<!-- residue: procedure -->`` block."""
    text = GUIDE.read_text()
    found = re.search(r"<!-- residue: procedure -->\n```sh\n(.*?)```", text, re.DOTALL)
    assert found, "the operator guide has no residue procedure block"
    return found.group(1)


def run_guide_procedure(cluster: PostgresCluster, database: str) -> str:
    """Run the guide's block as written, with libpq's variables naming the database."""
    params = cluster.params(database)
    result = subprocess.run(
        ["bash", "-c", guide_procedure()],
        env={
            "PATH": f"{cluster.bin_dir}:{os.environ['PATH']}",
            "PGHOST": str(params["host"]),
            "PGPORT": str(params["port"]),
            "PGUSER": str(params["user"]),
            "PGDATABASE": database,
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_r1_r15_postgres_residue_reported_and_removed_online(
    start_synapse: StartSynapse, postgres_cluster: PostgresCluster
) -> None:
    if postgres_cluster.external:
        pytest.skip("reads the data directory of the harness's own PostgreSQL server")
    hs = start_synapse("postgres", {})
    assert hs.pg_params is not None
    db = hs.db()
    marker = f"zqx7marker{uid('k')}"
    lexemes = db.query("SELECT to_tsvector('english', ?)::text", (marker,))[0][0]
    assert f"'{marker}'" in lexemes, "the English stemmer must leave the marker as it is"
    # The harness's server runs with wal_recycle = off from its start, as the guide asks
    # of a server: set only around the procedure, the segments a checkpoint had recycled
    # before (renamed ahead, old bytes kept) still held the text afterwards (seen in CI).
    assert db.query("SHOW wal_recycle") == [("off",)]
    admin, alice, room, old = send_history(hs, marker)
    # In the WAL now (its inserts); checked before any checkpoint could retire the segment.
    assert files_holding(pg_files(postgres_cluster, db)[1], [marker.encode()]), "in the WAL"

    report = sweep_messages(admin)

    assert report["results"]["messages"]["deleted"] == len(old)
    assert report["disk_residue"] == {"database": "postgres", "tables": None}
    residue = measured_residue(admin, report["sweep_id"])
    assert set(residue["tables"]) == {"event_json", "event_search"}
    assert residue["tables"]["event_json"]["dead_rows"] > 0, residue
    assert dead_rows_metric(hs, "event_json") == residue["tables"]["event_json"]["dead_rows"]

    db.execute("CHECKPOINT")  # the pages as they are, written to the files
    base = pg_files(postgres_cluster, db)[0]
    before = files_holding(base, [marker.encode()])
    # The residue, in the tables the module reports (disk_residue.TEXT_TABLES) only. Which
    # of them still hold it varies: PostgreSQL's page pruning may compact a page over a
    # dead row (in CI, event_json's copy was gone once while event_search's stayed).
    found_in = relations_of(db, before)
    assert found_in, "the purged text is still in the database files before the procedure"
    assert found_in <= {"event_json", "event_search", "event_search_fts_idx"}, found_in

    sent: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def keep_sending() -> None:
        while not stop.is_set():
            try:
                sent.append(alice.send_message(room, f"during the procedure {len(sent)}"))
            except BaseException as error:
                errors.append(error)
                return
            time.sleep(0.2)

    sender = threading.Thread(target=keep_sending)
    sender.start()
    try:
        run_guide_procedure(postgres_cluster, hs.pg_params["database"])
    finally:
        stop.set()
        sender.join(timeout=60)
    assert errors == [] and sent, errors
    sent.append(alice.send_message(room, "after the procedure"))
    assert stored_events(db, sent) == set(sent)

    nullable = db.query(
        "SELECT is_nullable FROM information_schema.columns WHERE table_name = 'event_search'"
        " AND column_name = 'event_id' AND table_schema = current_schema()"
    )
    assert nullable == [("YES",)], "event_search.event_id is given back as Synapse made it"
    db.execute("CHECKPOINT")
    base, wal = pg_files(postgres_cluster, db)
    assert files_holding(base, [marker.encode()]) == []
    assert files_holding(wal, [marker.encode()]) == []
