"""The audit's hash chain on SQLite (store/audit_chain.py, audit_verification.py; R13, R14).

Time: every timestamp is given explicitly (rows are written "at" fixed instants); the
retention cut-off is passed to ``prune`` as an instant. No clock is read but the
migration's ``since_ts``, which is only compared with the test's own wall clock.
"""

import time
from pathlib import Path

import pytest

from synapse_lux_privacy.store import audit_chain
from synapse_lux_privacy.store.audit import AuditGroup, AuditStore
from synapse_lux_privacy.store.audit_verification import AuditVerifier, Verification
from synapse_lux_privacy.store.record_retention import RecordRetention
from synapse_lux_privacy.store.schema import MIGRATIONS, apply_migrations
from synapse_lux_privacy.store.sweeps import SweepRunStore
from tests.unit.orchestrators import drive
from tests.unit.sqlite_runner import SqliteRunner, migrated_runner

ALICE = "@alice:lux.test"
BOB = "@bob:lux.test"


def write_batches(db: SqliteRunner, batches: int, start_ts: int = 1000) -> AuditStore:
    """``batches`` batches of two groups each, one group completed and one that deletes
    nothing (its row goes), then a housekeeping row."""
    audit = AuditStore(db)
    for i in range(batches):
        ts = start_ts + 10 * i
        groups = [AuditGroup(ALICE, "!r:lux.test", 3, 30), AuditGroup(BOB, None, 1, 5)]
        ids = drive(audit.start_batch(f"s{i}", "messages", ts, groups))
        drive(audit.finish_batch(ids, [AuditGroup(ALICE, "!r:lux.test", 2, 20), None], ts + 1))
    drive(audit.record("s-last", "audit", start_ts + 10 * batches, 7))
    return audit


def verify(db: SqliteRunner) -> Verification:
    return drive(AuditVerifier(db).verify())


def test_r14_completed_rows_form_one_chain_and_started_rows_wait(tmp_path: Path) -> None:
    db = migrated_runner(tmp_path / "db")
    audit = write_batches(db, 3)
    drive(audit.start_batch("s9", "messages", 5000, [AuditGroup(ALICE, None, 1, 1)]))
    result = verify(db)
    assert (result.ok, result.rows, result.head.head_seq) == (True, 4, 4)
    rows = db.query("SELECT chain_seq, status FROM lux_privacy_audit ORDER BY id")
    assert rows == [(1, "done"), (2, "done"), (3, "done"), (4, "done"), (None, "started")]
    # The next sweep marks the started row interrupted, and chains it then.
    drive(SweepRunStore(db).start("s10", "test", 6000, 6000, False))
    result = verify(db)
    assert (result.ok, result.rows) == (True, 5)


@pytest.mark.parametrize(
    ("tamper", "problem", "row"),
    [
        ("UPDATE lux_privacy_audit SET count = 99 WHERE chain_seq = 2", "edited", 2),
        ("UPDATE lux_privacy_audit SET user_id = NULL WHERE chain_seq = 2", "edited", 2),
        ("DELETE FROM lux_privacy_audit WHERE chain_seq = 2", "missing", 2),
        ("DELETE FROM lux_privacy_audit WHERE chain_seq = 4", "head", 4),
        (
            "INSERT INTO lux_privacy_audit (ts, rule, status, count, bytes)"
            " VALUES (1005, 'messages', 'done', 1, 1)",
            "unchained",
            None,
        ),
        ("UPDATE lux_privacy_audit SET chain_seq = 7 WHERE chain_seq = 3", "missing", 3),
    ],
)
def test_r14_a_row_edited_deleted_or_inserted_is_named(
    tmp_path: Path, tamper: str, problem: str, row: int | None
) -> None:
    db = migrated_runner(tmp_path / "db")
    write_batches(db, 3)
    assert verify(db).ok
    db.conn.execute(tamper)
    result = verify(db)
    assert result.mismatch is not None and result.mismatch.problem == problem
    assert result.mismatch.seq == row
    if problem == "unchained":
        inserted = db.query("SELECT MAX(id) FROM lux_privacy_audit")[0][0]
        assert result.mismatch.id == inserted


def test_r14_a_row_rehashed_after_an_edit_breaks_the_link_to_the_next(tmp_path: Path) -> None:
    """An editor who recomputes the edited row's hash is caught at the next row."""
    db = migrated_runner(tmp_path / "db")
    write_batches(db, 3)
    fields = audit_chain.row_fields(
        db.query(f"SELECT {audit_chain.ROW_COLUMNS} FROM lux_privacy_audit WHERE chain_seq = 2")[0]
    )
    fields["count"] = 1
    forged = audit_chain.row_hash(fields, 2, fields["prev_hash"])
    db.conn.execute(
        "UPDATE lux_privacy_audit SET count = 1, row_hash = ? WHERE chain_seq = 2", (forged,)
    )
    result = verify(db)
    assert result.mismatch is not None
    assert (result.mismatch.problem, result.mismatch.seq) == ("relinked", 3)


def test_r14_pruning_keeps_the_last_pruned_hash_as_the_anchor(tmp_path: Path) -> None:
    db = migrated_runner(tmp_path / "db")
    write_batches(db, 3, start_ts=1000)  # seq 1-3 at 1001, 1011, 1021; seq 4 at 1030
    third = db.query("SELECT row_hash FROM lux_privacy_audit WHERE chain_seq = 2")[0][0]
    assert drive(RecordRetention(db).prune(1015)) == 2
    result = verify(db)
    assert (result.ok, result.rows) == (True, 2)
    assert (result.head.anchor_seq, result.head.anchor_hash) == (2, third)
    assert result.head.anchor_ts == 1011
    # The anchor is what the rest is checked against: the row after it cannot go unseen.
    db.conn.execute("DELETE FROM lux_privacy_audit WHERE chain_seq = 3")
    assert verify(db).mismatch == verify(db).mismatch is not None


def test_r14_pruning_stops_at_the_first_row_within_the_retention(tmp_path: Path) -> None:
    """A chain is pruned from its start only: a younger row keeps the older ones after it."""
    db = migrated_runner(tmp_path / "db")
    audit = AuditStore(db)
    for ts in (100, 5000, 200):  # chained in this order
        drive(audit.record("s", "audit", ts, 1))
    assert drive(RecordRetention(db).prune(1000)) == 1
    assert db.query("SELECT ts FROM lux_privacy_audit ORDER BY chain_seq") == [(5000,), (200,)]
    assert verify(db).ok


def test_r14_existing_rows_are_chained_once_by_the_migration(tmp_path: Path) -> None:
    """A provider upgrading with audit rows: the migration chains them by ID, from now."""
    core = MIGRATIONS["core"]
    before = core.index("ALTER TABLE lux_privacy_audit ADD COLUMN chain_seq BIGINT")
    db = SqliteRunner(str(tmp_path / "db"))
    apply_migrations(db.conn.cursor(), "sqlite", {"core": core[:before]})
    for i, status in enumerate(["done", "interrupted", "started", "done"]):
        db.conn.execute(
            "INSERT INTO lux_privacy_audit (ts, rule, status, count, bytes, user_id)"
            " VALUES (?, 'messages', ?, ?, 0, ?)",
            (100 + i, status, i + 1, ALICE),
        )
    upgraded = int(time.time() * 1000)
    apply_migrations(db.conn.cursor(), "sqlite")
    result = verify(db)
    assert (result.ok, result.rows, result.head.migrated_seq) == (True, 3, 3)
    assert result.head.since_ts >= upgraded
    assert db.query("SELECT chain_seq, count FROM lux_privacy_audit ORDER BY id") == [
        (1, 1),
        (2, 2),
        (None, 3),  # started: chained when it reaches its final state
        (3, 4),
    ]
    apply_migrations(db.conn.cursor(), "sqlite")  # once: a second start chains nothing
    write_batches(db, 1)
    result = verify(db)
    assert (result.ok, result.rows, result.head.migrated_seq) == (True, 5, 3)


def test_r14_the_hash_ignores_null_fields_so_a_new_nullable_column_keeps_old_hashes() -> None:
    fields = {"id": 1, "ts": 2, "rule": "messages", "status": "done", "count": 1, "bytes": 0}
    with_nulls = {**fields, "user_id": None, "room_id": None, "sweep_id": None}
    assert audit_chain.row_hash(fields, 1, "0" * 64) == audit_chain.row_hash(
        with_nulls, 1, "0" * 64
    )
    assert audit_chain.row_hash(fields, 1, "0" * 64) != audit_chain.row_hash(
        {**fields, "count": 2}, 1, "0" * 64
    )
