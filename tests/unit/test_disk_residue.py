"""Deleted text gone from the disk (R1): the sweep's residue step, and the SQLite
statements of ``synapse_adapter/disk_residue.py`` on a real SQLite file.

Time: the clock is injected (a fixed "now"), items carry explicit ages; nothing sleeps
(the residue step's later measurement is a stub that answers at once).
"""

import functools
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from synapse_lux_privacy.store.sweeps import SweepRunStore
from synapse_lux_privacy.synapse_adapter import disk_residue
from tests.unit.orchestrators import build
from tests.unit.sqlite_runner import SqliteRunner
from tests.unit.test_sweep_orchestrator import NOW, AgedItemsRule, add_items, aged_items_db


class StubResidue:
    """A residue step that records its calls; ``clear`` fails when told to."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.cleared = 0
        self.measured = 0

    async def clear(self) -> dict[str, Any]:
        self.cleared += 1
        if self.fail:
            raise RuntimeError("disk full")
        return {"database": "postgres", "tables": None}

    async def measure(self) -> dict[str, Any] | None:
        self.measured += 1
        return {"tables": {"event_json": {"live_rows": 1, "dead_rows": 7, "bytes": 8192}}}


@pytest.fixture
def db(tmp_path: Path) -> SqliteRunner:
    return aged_items_db(tmp_path / "lux.db")


async def sweep(
    db: SqliteRunner, residue: StubResidue, rule: str = "messages", dry_run: bool = False
) -> dict[str, Any]:
    add_items(db, 3, 90, "@a:lux.test", "!r:lux.test", "old")
    orchestrator = build(db, {rule: AgedItemsRule(db, rule)}, lambda: NOW, residue=residue)
    report = await orchestrator.run(as_of_ms=None, dry_run=dry_run)
    record = await SweepRunStore(db).get(report.sweep_id, NOW)
    assert record is not None
    return record.to_json(NOW)


@pytest_twisted.ensureDeferred
async def test_r1_a_real_sweep_that_deleted_events_clears_then_records_the_residue(
    db: SqliteRunner,
) -> None:
    residue = StubResidue()
    record = await sweep(db, residue)
    assert (residue.cleared, residue.measured) == (1, 1)
    assert record["status"] == "completed"
    assert record["disk_residue"] == {
        "database": "postgres",
        "tables": {"event_json": {"live_rows": 1, "dead_rows": 7, "bytes": 8192}},
    }


@pytest.mark.parametrize(("rule", "dry_run"), [("messages", True), ("sessions", False)])
@pytest_twisted.ensureDeferred
async def test_r1_no_residue_step_after_a_dry_run_or_a_sweep_that_deleted_no_events(
    db: SqliteRunner, rule: str, dry_run: bool
) -> None:
    residue = StubResidue()
    record = await sweep(db, residue, rule, dry_run)
    assert (residue.cleared, residue.measured) == (0, 0)
    assert record["disk_residue"] is None


@pytest_twisted.ensureDeferred
async def test_r1_a_failed_residue_step_ends_the_sweep_completed_with_errors(
    db: SqliteRunner,
) -> None:
    residue = StubResidue(fail=True)
    record = await sweep(db, residue)
    assert record["status"] == "completed_with_errors"
    assert record["disk_residue"] == {"error": "RuntimeError"}
    assert residue.measured == 0


def holding(paths: list[Path], needle: bytes) -> list[str]:
    return [p.name for p in paths if p.exists() and needle in p.read_bytes()]


def fts_database(path: Path, marker: str) -> tuple[sqlite3.Connection, list[Path]]:
    """A WAL database with an FTS4 ``event_search`` like Synapse's, the marker's row
    deleted among others that stay; secure_delete off, as in a build without it."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA secure_delete = OFF")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE VIRTUAL TABLE event_search USING fts4 (event_id, room_id, value)")
    conn.commit()
    return conn, [path, Path(f"{path}-wal")]


def fill(conn: sqlite3.Connection, marker: str) -> None:
    for i in range(50):
        body = f"the word is {marker}" if i == 25 else f"message {i} about the weather"
        conn.execute("INSERT INTO event_search VALUES (?, '!r', ?)", (f"$e{i}", body))
        conn.commit()  # one FTS segment per message, as Synapse's one event per transaction
    conn.execute("DELETE FROM event_search WHERE event_id = '$e25'")
    conn.commit()


def test_r1_secure_delete_is_set_on_every_new_connection_whatever_the_build() -> None:
    conn = sqlite3.connect(":memory:")

    def built_without(db_conn: sqlite3.Connection) -> None:
        db_conn.execute("PRAGMA secure_delete = OFF")

    on_new_connection = functools.partial(disk_residue.with_secure_delete, built_without)
    on_new_connection(conn)
    assert conn.execute("PRAGMA secure_delete").fetchone() == (1,)


def test_r1_sqlite_leaves_no_deleted_word_in_the_database_or_its_wal(tmp_path: Path) -> None:
    marker = "Zqx7MarkerUnit"
    conn, files = fts_database(tmp_path / "homeserver.db", marker)
    assert disk_residue.secure_delete(conn) == 1
    fill(conn, marker)
    done = disk_residue.clear_sqlite(conn)
    assert done["fts_optimized"] and done["wal_checkpoint"]["busy"] == 0
    assert done["wal_checkpoint"]["wal_pages"] > 0
    assert holding(files, marker.encode()) == holding(files, marker.lower().encode()) == []
    assert conn.execute("SELECT COUNT(*) FROM event_search").fetchone() == (49,)


def test_r1_without_the_fts_merge_a_checkpoint_leaves_the_deleted_word_in_the_index(
    tmp_path: Path,
) -> None:
    """Why ``optimize`` runs: secure_delete and the checkpoint alone leave the word."""
    marker = "Zqx7MarkerUnit"
    conn, files = fts_database(tmp_path / "homeserver.db", marker)
    disk_residue.secure_delete(conn)
    fill(conn, marker)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert holding(files, marker.lower().encode()) == ["homeserver.db"]
