"""The quota's ledgers and counters on SQLite (R4): every ledger change moves the counters
by exactly that much, twice-applied changes count once, reconciliation sets them right.

Time: explicit timestamps.
"""

from pathlib import Path

import pytest
import pytest_twisted

from synapse_lux_privacy.features.quota import ledger
from synapse_lux_privacy.features.quota.ledger import Changes
from synapse_lux_privacy.features.quota.policy import EVENTS, MEDIA, Position
from synapse_lux_privacy.features.quota.reconcile import _fix_counters_txn
from synapse_lux_privacy.features.quota.schema import QUOTA_MIGRATIONS
from synapse_lux_privacy.features.quota.usage_store import Usage, UsageStore
from synapse_lux_privacy.store.schema import MIGRATIONS
from synapse_lux_privacy.synapse_adapter.quota import (
    Recheck,
    SentEvent,
    StoredMedia,
    local_sender_pattern,
)
from tests.unit.sqlite_runner import SqliteRunner, migrated_runner

A, B = "@a:x", "@b:x"


@pytest.fixture
def db(tmp_path: Path) -> SqliteRunner:
    return migrated_runner(tmp_path / "lux.db", {**MIGRATIONS, "quota": QUOTA_MIGRATIONS})


def apply(db: SqliteRunner, step: object, *args: object) -> Changes:
    changes = Changes()
    cur = db.conn.cursor()
    step(cur, *args, changes)  # type: ignore[operator]
    ledger.apply_counters_txn(cur, changes)
    return changes


def sent(event_id: str, user: str, ts: int, size: int, pruned: int) -> SentEvent:
    return SentEvent(event_id, user, "!r:x", ts, ts, size, pruned)


@pytest_twisted.ensureDeferred
async def test_r4_adding_items_moves_the_counters_once(db: SqliteRunner) -> None:
    store = UsageStore(db)
    rows = [StoredMedia("m1", A, 1, 100), StoredMedia("m2", B, 2, 50)]
    assert apply(db, ledger.add_media_txn, rows).added == 2
    assert apply(db, ledger.add_media_txn, rows).added == 0  # seen again: nothing new
    events = [sent("$e1", A, 3, 80, 20)]
    apply(db, ledger.add_events_txn, events)
    apply(db, ledger.add_events_txn, events)
    assert await store.usage(A) == Usage(100, 80)
    assert await store.usage(B) == Usage(50, 0)
    assert await store.usage("@nobody:x") == Usage(0, 0)


@pytest_twisted.ensureDeferred
async def test_r4_grown_thumbnails_resized_and_gone_items_move_the_counters(
    db: SqliteRunner,
) -> None:
    store = UsageStore(db)
    apply(db, ledger.add_media_txn, [StoredMedia("m1", A, 1, 100), StoredMedia("m2", A, 2, 10)])
    apply(db, ledger.add_events_txn, [sent("$e1", A, 3, 80, 20)])
    grown = apply(db, ledger.add_media_txn, [StoredMedia("m1", A, 1, 130)])
    assert (grown.resized, grown.by_item) == (1, {"m1": 30})
    apply(db, ledger.apply_rechecks_txn, MEDIA, [Recheck("m2", A, 10, None)])
    shrunk = apply(db, ledger.apply_rechecks_txn, EVENTS, [Recheck("$e1", A, 80, 15)])
    assert shrunk.by_item == {"$e1": -65}
    assert await store.usage(A) == Usage(130, 15)
    # an event that shrank below its expected pruned size frees nothing more
    assert db.query("SELECT size, pruned_size FROM lux_privacy_quota_events") == [(15, 15)]


def test_r4_expunged_events_are_never_chosen_again(db: SqliteRunner) -> None:
    apply(db, ledger.add_events_txn, [sent("$e1", A, 1, 80, 20), sent("$e2", A, 2, 90, 20)])
    cur = db.conn.cursor()
    ledger.mark_expunged_txn(cur, ["$e1"])
    assert [i.item_id for i in ledger.oldest_txn(cur, EVENTS, A, None, 10)] == ["$e2"]


def test_r4_a_users_oldest_items_after_a_position(db: SqliteRunner) -> None:
    uploads = [("m1", A, 10, 5), ("m2", A, 20, 5), ("m0", A, 20, 0), ("x", B, 1, 5)]
    apply(db, ledger.add_media_txn, [StoredMedia(*u) for u in uploads])
    apply(db, ledger.add_events_txn, [sent("$a", A, 10, 9, 1), sent("$b", A, 20, 9, 1)])
    cur = db.conn.cursor()
    media = ledger.oldest_txn(cur, MEDIA, A, None, 10)
    assert [(i.item_id, i.freeable) for i in media] == [("m1", 5), ("m2", 5)]
    events = ledger.oldest_txn(cur, EVENTS, A, None, 10)
    assert [(i.item_id, i.freeable, i.room_id) for i in events] == [
        ("$a", 8, "!r:x"),
        ("$b", 8, "!r:x"),
    ]
    # after the event at ts 10: the upload at ts 10 ranks before it, the one at 20 after
    after = Position(10, 1, "$a")
    assert [i.item_id for i in ledger.oldest_txn(cur, MEDIA, A, after, 10)] == ["m2"]
    assert [i.item_id for i in ledger.oldest_txn(cur, EVENTS, A, after, 10)] == ["$b"]
    after = Position(20, 0, "m2")
    assert [i.item_id for i in ledger.oldest_txn(cur, EVENTS, A, after, 10)] == ["$b"]
    assert ledger.oldest_txn(cur, MEDIA, A, after, 10) == []


@pytest_twisted.ensureDeferred
async def test_r4_over_quota_users_follow_counts_default_and_overrides(db: SqliteRunner) -> None:
    store = UsageStore(db)
    apply(db, ledger.add_media_txn, [StoredMedia("m1", A, 1, 100), StoredMedia("m2", B, 1, 100)])
    apply(db, ledger.add_events_txn, [sent("$e", B, 2, 50, 10)])
    both = {"media", "events"}
    assert await store.over_quota(both, None, None, 10) == []
    over = await store.over_quota(both, 120, None, 10)
    assert [(u.user_id, u.used, u.quota) for u in over] == [(B, 150, 120)]
    assert await store.over_quota({"media"}, 120, None, 10) == []
    await store.set_override(A, 60, "@admin:x", 5)
    assert [u.user_id for u in await store.over_quota(both, None, None, 10)] == [A]
    assert [u.user_id for u in await store.over_quota(both, 120, None, 10)] == [A, B]
    assert [u.user_id for u in await store.over_quota(both, 120, A, 10)] == [B]
    assert await store.count_over_quota(both, 120) == 2
    assert await store.quota(A, 120) == 60
    await store.set_override(A, None, "@admin:x", 6)
    assert await store.quota(A, 120) == 120


@pytest_twisted.ensureDeferred
async def test_r4_a_mark_waits_for_its_grace_and_a_full_mark_is_kept(db: SqliteRunner) -> None:
    store = UsageStore(db)
    await store.mark_dirty({A: True}, 100)
    await store.mark_dirty({A: False, B: False}, 200)  # an upload after a deactivation
    await store.mark_dirty({B: False}, 300)
    assert await store.dirty_users() == {A: True, B: False}
    await store.clear_dirty([A, B], 250)
    assert await store.dirty_users() == {B: False}


@pytest_twisted.ensureDeferred
async def test_r4_a_daily_job_is_claimed_once_a_day(db: SqliteRunner) -> None:
    store = UsageStore(db)
    assert await store.claim("job", 1000, 500)
    assert not await store.claim("job", 1400, 500)
    assert await store.claim("job", 1500, 500)
    assert await store.state("job") == 1500


def test_r4_reconciliation_sets_counters_to_the_ledgers(db: SqliteRunner) -> None:
    apply(db, ledger.add_media_txn, [StoredMedia("m1", A, 1, 100)])
    db.conn.execute("UPDATE lux_privacy_quota_usage SET media_bytes = 7, event_bytes = 3")
    db.conn.execute("INSERT INTO lux_privacy_quota_usage VALUES ('@gone:x', 5, 0)")
    fixes, checked = _fix_counters_txn(db.conn.cursor())
    assert checked == 2
    assert (fixes.media[A], fixes.events[A], fixes.media["@gone:x"]) == (93, -3, -5)
    assert db.query("SELECT user_id, media_bytes, event_bytes FROM lux_privacy_quota_usage") == [
        (A, 100, 0)
    ]


@pytest.mark.parametrize(
    ("server", "pattern"),
    [("lux.test", "%:lux.test"), ("a_b%c!d", "%:a!_b!%c!!d")],
)
def test_r6_local_senders_are_matched_by_their_server_name_only(server: str, pattern: str) -> None:
    assert local_sender_pattern(server) == pattern
