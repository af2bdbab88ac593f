"""The module's own tables: created idempotently, versioned per component."""

import sqlite3

import pytest

from synapse_lux_privacy.store.schema import MIGRATIONS, apply_migrations


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_schema_created_then_second_run_is_a_no_op(tmp_path: object) -> None:
    conn = sqlite3.connect(":memory:")
    first = apply_migrations(conn.cursor(), "sqlite")
    assert first == {c: len(steps) for c, steps in MIGRATIONS.items()}
    assert {
        "lux_privacy_audit",
        "lux_privacy_holds",
        "lux_privacy_hold_log",
        "lux_privacy_lock",
        "lux_privacy_sweeps",
        "lux_privacy_schema_version",
    } <= _tables(conn)
    assert apply_migrations(conn.cursor(), "sqlite") == {c: 0 for c in MIGRATIONS}


def test_new_component_steps_run_once_and_only_the_new_ones() -> None:
    conn = sqlite3.connect(":memory:")
    apply_migrations(conn.cursor(), "sqlite")
    extra = {**MIGRATIONS, "feature": ("CREATE TABLE IF NOT EXISTS lux_t1 (a INTEGER)",)}
    assert apply_migrations(conn.cursor(), "sqlite", extra)["feature"] == 1
    extra2 = {**extra, "feature": (*extra["feature"], "CREATE TABLE lux_t2 (b INTEGER)")}
    # The second step has no IF NOT EXISTS: it would fail if it ran twice.
    assert apply_migrations(conn.cursor(), "sqlite", extra2)["feature"] == 1
    assert apply_migrations(conn.cursor(), "sqlite", extra2)["feature"] == 0
    assert {"lux_t1", "lux_t2"} <= _tables(conn)


def test_schema_newer_than_the_code_is_refused() -> None:
    conn = sqlite3.connect(":memory:")
    apply_migrations(conn.cursor(), "sqlite")
    conn.execute("UPDATE lux_privacy_schema_version SET version = 999 WHERE component = 'core'")
    with pytest.raises(RuntimeError, match="downgraded"):
        apply_migrations(conn.cursor(), "sqlite")


def test_r2_audit_rows_written_before_provider_objects_existed_count_none() -> None:
    """The append-only step adding ``provider_objects`` to an audit table with rows."""
    conn = sqlite3.connect(":memory:")
    core = MIGRATIONS["core"]
    step = core.index(
        "ALTER TABLE lux_privacy_audit ADD COLUMN provider_objects BIGINT NOT NULL DEFAULT 0"
    )
    apply_migrations(conn.cursor(), "sqlite", {"core": core[:step]})
    conn.execute(
        "INSERT INTO lux_privacy_audit (ts, rule, status, count, bytes)"
        " VALUES (1, 'attachments', 'done', 2, 10)"
    )
    assert apply_migrations(conn.cursor(), "sqlite", {"core": core[: step + 1]}) == {"core": 1}
    assert conn.execute("SELECT provider_objects FROM lux_privacy_audit").fetchall() == [(0,)]
