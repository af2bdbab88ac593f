"""The accounts feature's tables on SQLite: later times win, deactivated users are
forgotten, started deletions are marked until finished.

Time: explicit timestamps.
"""

from pathlib import Path

import pytest
import pytest_twisted

from synapse_lux_privacy.features.accounts.activity_store import ActivityStore
from synapse_lux_privacy.features.accounts.deletion_marks import DeletionMarks
from synapse_lux_privacy.features.accounts.schema import ACCOUNTS_MIGRATIONS
from synapse_lux_privacy.store.schema import MIGRATIONS
from tests.unit.sqlite_runner import SqliteRunner, migrated_runner


@pytest.fixture
def db(tmp_path: Path) -> SqliteRunner:
    return migrated_runner(tmp_path / "lux.db", {**MIGRATIONS, **ACCOUNTS_MIGRATIONS})


@pytest_twisted.ensureDeferred
async def test_r12_activity_never_moves_back(db: SqliteRunner) -> None:
    store = ActivityStore(db)
    await store.record_users({"@a:x": 200, "@b:x": 100})
    await store.record_users({"@a:x": 150, "@b:x": 300})  # a late flush from another worker
    assert await store.user_last_active("@a:x") == 200
    assert await store.user_last_active("@b:x") == 300
    assert await store.user_last_active("@c:x") is None
    await store.record_users({})


@pytest_twisted.ensureDeferred
async def test_r7_a_deactivated_user_is_forgotten(db: SqliteRunner) -> None:
    store = ActivityStore(db)
    await store.record_users({"@a:x": 1, "@b:x": 1})
    for user, device in (("@a:x", "D1"), ("@a:x", "D2"), ("@b:x", "D1")):
        db.conn.execute(
            "INSERT INTO lux_privacy_device_activity VALUES (?, ?, 1, NULL)", (user, device)
        )
    await store.forget_devices("@a:x", ["D1"])
    await store.forget_user("@b:x")
    assert db.query("SELECT user_id, device_id FROM lux_privacy_device_activity") == [
        ("@a:x", "D2")
    ]
    assert db.query("SELECT user_id FROM lux_privacy_user_activity") == [("@a:x",)]


@pytest_twisted.ensureDeferred
async def test_r12_a_started_deletion_keeps_its_first_mark_until_finished(
    db: SqliteRunner,
) -> None:
    marks = DeletionMarks(db)
    await marks.start("@a:x", 100)
    await marks.start("@a:x", 200)  # the resumed deletion: the first start is kept
    await marks.start("@b:x", 300)
    await marks.finish("@b:x")
    await marks.finish("@c:x")  # nothing started: nothing to do
    assert db.query("SELECT user_id, started_ts FROM lux_privacy_account_deletions") == [
        ("@a:x", 100)
    ]
