"""The data-subject requests' records (R14): queue, claim, expiry, pruning.

Time: every call is given its "now"; nothing reads a clock.
"""

from pathlib import Path

import pytest
import pytest_twisted

from synapse_lux_privacy.features.rights.request_store import (
    COMPLETED,
    EXPIRED,
    FAILED,
    INTERRUPTED,
    QUEUED,
    RequestStore,
)
from synapse_lux_privacy.features.rights.schema import RIGHTS_MIGRATIONS
from synapse_lux_privacy.store.schema import MIGRATIONS
from tests.unit.sqlite_runner import SqliteRunner, migrated_runner

DAY = 86_400_000
A, B, C = "a" * 32, "b" * 32, "c" * 32


@pytest.fixture
def db(tmp_path: Path) -> SqliteRunner:
    return migrated_runner(tmp_path / "db.sqlite", {**MIGRATIONS, **RIGHTS_MIGRATIONS})


@pytest_twisted.ensureDeferred
async def test_r14_a_queued_export_is_claimed_once_and_expires_after_its_retention(
    db: SqliteRunner,
) -> None:
    store = RequestStore(db)
    await store.add_export(A, "@alice:x", "@admin:x", 1000)
    assert await store.queued() == ([A], [])
    assert await store.claim_export(A) is True
    assert await store.claim_export(A) is False  # another pass cannot take it again
    await store.finish_export(A, COMPLETED, 9, 4096, 2000, 2000 + 7 * DAY, None)
    assert await store.expired_exports(2000 + 7 * DAY - 1) == []
    assert await store.expired_exports(2000 + 7 * DAY) == [A]
    await store.set_export_status([A], EXPIRED)
    record = await store.get_export(A)
    assert record is not None and (record.status, record.files, record.bytes) == (
        EXPIRED,
        9,
        4096,
    )


@pytest_twisted.ensureDeferred
async def test_r14_a_restart_fails_running_exports_and_interrupts_running_erasures(
    db: SqliteRunner,
) -> None:
    store = RequestStore(db)
    await store.add_export(A, "@alice:x", "@admin:x", 1000)
    await store.add_erasure(B, "@bob:x", "@admin:x", "art. 17", 1000)
    await store.add_erasure(C, "@carol:x", "@admin:x", "art. 17", 1000)
    await store.claim_export(A)
    await store.claim_erasure(B)
    assert await store.interrupt_running(5000) == ([A], [B])
    export, erasure, queued = (
        await store.get_export(A),
        await store.get_erasure(B),
        await store.get_erasure(C),
    )
    assert export is not None and export.status == FAILED
    assert erasure is not None and erasure.status == INTERRUPTED
    assert queued is not None and queued.status == QUEUED and queued.reason == "art. 17"


@pytest_twisted.ensureDeferred
async def test_r14_records_are_pruned_with_the_audit_once_finished(db: SqliteRunner) -> None:
    store = RequestStore(db)
    await store.add_export(A, "@alice:x", "@admin:x", 1000)
    await store.add_erasure(B, "@bob:x", "@admin:x", "art. 17", 1000)
    await store.add_erasure(C, "@carol:x", "@admin:x", "art. 17", 1000)
    await store.claim_erasure(B)
    await store.finish_erasure(B, COMPLETED, (1, 2, 3, 0), 2000, None)
    assert await store.prune(1000) == 0  # nothing older than the cut-off
    assert await store.prune(3000) == 1  # the finished erasure; queued ones stay
    assert await store.get_erasure(B) is None
    assert await store.get_erasure(C) is not None and await store.get_export(A) is not None
