"""The quota rule's rounds on SQLite (R4, R7, R13): exactly the oldest prefix is chosen,
dry runs and real runs agree, held users and kept avatars never loop, sweeps end.

Synapse is mocked: the ledgers stand for what Synapse stores, and a "deletion" below
removes (or shrinks) ledger rows as Synapse's machinery and ``settle`` would.
Time: explicit timestamps.
"""

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from unittest.mock import AsyncMock, MagicMock

import pytest
import pytest_twisted

from synapse_lux_privacy.config import QuotaConfig
from synapse_lux_privacy.features.content.expunged import Expunger
from synapse_lux_privacy.features.quota import ledger, rule
from synapse_lux_privacy.features.quota.ledger import Changes
from synapse_lux_privacy.features.quota.policy import EVENTS, MEDIA
from synapse_lux_privacy.features.quota.rule import QuotaRule
from synapse_lux_privacy.features.quota.schema import QUOTA_MIGRATIONS
from synapse_lux_privacy.features.quota.usage_store import UsageStore
from synapse_lux_privacy.store.holds import HoldSet
from synapse_lux_privacy.store.schema import MIGRATIONS, apply_migrations
from synapse_lux_privacy.sweep.rule import Candidate, SweepContext
from synapse_lux_privacy.synapse_adapter import media as media_adapter
from synapse_lux_privacy.synapse_adapter.quota import Recheck, SentEvent, StoredMedia
from tests.unit.sqlite_runner import SqliteRunner

A, B, C = "@a:x", "@b:x", "@c:x"
BOTH = frozenset({"media", "events"})
NO_HOLDS = HoldSet()
Deleter = Callable[[Sequence[Candidate]], Awaitable[None]]


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SqliteRunner:
    runner = SqliteRunner(str(tmp_path / "lux.db"))
    apply_migrations(runner.conn.cursor(), "sqlite", {**MIGRATIONS, "quota": QUOTA_MIGRATIONS})
    monkeypatch.setattr(media_adapter, "avatars_in_use", AsyncMock(return_value=set()))
    monkeypatch.setattr(rule, "held_room_media", AsyncMock(return_value={}))
    return runner


def make_rule(
    db: SqliteRunner, default: int | None = 300, counts: frozenset[str] = BOTH
) -> QuotaRule:
    api = MagicMock()
    api.server_name = "x"
    config = QuotaConfig(default, counts)
    return QuotaRule(
        api, db, config, UsageStore(db), AsyncMock(), AsyncMock(), AsyncMock(), Expunger(api, db)
    )


def add(db: SqliteRunner, media: list[StoredMedia], events: Sequence[SentEvent] = ()) -> None:
    changes = Changes()
    cur = db.conn.cursor()
    ledger.add_media_txn(cur, media, changes)
    ledger.add_events_txn(cur, events, changes)
    ledger.apply_counters_txn(cur, changes)


def files(user: str, *sizes: int, start: int = 0) -> list[StoredMedia]:
    return [StoredMedia(f"{user[1]}{i}", user, start + i, s) for i, s in enumerate(sizes)]


async def sweep(
    quota: QuotaRule,
    dry_run: bool,
    batch: int,
    holds: HoldSet = NO_HOLDS,
    delete: Deleter | None = None,
) -> list[str]:
    """Drive the rule as the orchestrator does; the IDs of every candidate, in order."""
    ctx = SweepContext(as_of_ms=0, dry_run=dry_run, batch_size=batch)
    cursor, seen = None, []
    for _ in range(200):
        page = await quota.find_candidates(ctx, holds, cursor)
        seen += [c.item_id for c in page.items]
        eligible = [c for c in page.items if not holds.covers(c.user_id, c.room_id)]
        if eligible and not dry_run and delete is not None:
            await delete(eligible)
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor
    raise AssertionError("the sweep never ended")


def deleter(db: SqliteRunner, event_remnant: int = 0) -> Deleter:
    """Delete media rows; shrink events to ``event_remnant`` more than expected."""

    async def delete(items: Sequence[Candidate]) -> None:
        changes = Changes()
        cur = db.conn.cursor()
        for c in items:
            kind, item_id = c.item_id.split(":", 1)
            if kind == MEDIA:
                cur.execute(
                    "SELECT size FROM lux_privacy_quota_media WHERE media_id = ?", (item_id,)
                )
                (size,) = cur.fetchone() or (0,)
                ledger.apply_rechecks_txn(
                    cur, MEDIA, [Recheck(item_id, str(c.user_id), size, None)], changes
                )
            else:
                cur.execute(
                    "SELECT size, pruned_size FROM lux_privacy_quota_events WHERE event_id = ?",
                    (item_id,),
                )
                size, pruned = cur.fetchone()
                check = Recheck(item_id, str(c.user_id), size, pruned + event_remnant)
                ledger.apply_rechecks_txn(cur, EVENTS, [check], changes)
                ledger.mark_expunged_txn(cur, [item_id])
        ledger.apply_counters_txn(cur, changes)

    return delete


@pytest.mark.parametrize("batch", [1, 2, 500])
@pytest_twisted.ensureDeferred
async def test_r4_exactly_the_oldest_prefix_is_chosen_in_any_batch_size(
    db: SqliteRunner, batch: int
) -> None:
    # A: 400 bytes, 100 over: its two oldest go (60 + 30 < 100 <= 60 + 30 + 50)
    add(db, files(A, 60, 30, 50, 260), [SentEvent("$e", A, "!r", 100, 1, 0, 0)])
    add(db, files(B, 100, 100))  # B: under quota
    add(db, files(C, 200, 200))  # C: 100 over: one goes
    quota = make_rule(db)
    forecast = await sweep(quota, dry_run=True, batch=batch)
    assert forecast == ["media:a0", "media:a1", "media:a2", "media:c0"]
    done = await sweep(quota, dry_run=False, batch=batch, delete=deleter(db))
    assert done == forecast
    usage = {u: (await UsageStore(db).usage(u)).used(BOTH) for u in (A, B, C)}
    assert usage == {A: 260, B: 200, C: 200}
    assert await sweep(quota, dry_run=False, batch=batch, delete=deleter(db)) == []


@pytest_twisted.ensureDeferred
async def test_r4_a_message_that_frees_less_than_expected_starts_another_round(
    db: SqliteRunner,
) -> None:
    """Each message was expected to free 90 bytes but keeps 40 more: rounds go on with the
    next oldest until usage is under the quota, and stop there."""
    events = [SentEvent(f"$e{i}", A, "!r", i, i, 100, 10) for i in range(6)]
    add(db, files(A, 200, start=100), events)  # 800 bytes, quota 300: 500 over
    quota = make_rule(db)
    done = await sweep(quota, dry_run=False, batch=2, delete=deleter(db, event_remnant=40))
    # the six messages free 6 * 50 = 300; the upload (newest) must go as well
    assert done == [f"events:$e{i}" for i in range(6)] + ["media:a0"]
    assert (await UsageStore(db).usage(A)).used(BOTH) == 6 * 50


@pytest_twisted.ensureDeferred
async def test_r13_a_held_user_gets_one_round_of_held_candidates_and_the_sweep_ends(
    db: SqliteRunner,
) -> None:
    add(db, files(A, 200, 200, 200))
    add(db, files(B, 400))
    quota = make_rule(db)
    holds = HoldSet(user_ids=frozenset({A}))
    seen = await sweep(quota, dry_run=False, batch=1, holds=holds, delete=deleter(db))
    assert seen == ["media:a0", "media:a1", "media:b0"]
    assert (await UsageStore(db).usage(A)).media_bytes == 600
    assert not await quota.pending(holds)
    assert await quota.pending(HoldSet())


@pytest_twisted.ensureDeferred
async def test_r7_avatars_in_use_are_kept_and_the_next_oldest_goes(
    db: SqliteRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(db, files(A, 150, 100, 100, 100))  # 450, quota 300
    monkeypatch.setattr(media_adapter, "avatars_in_use", AsyncMock(return_value={"mxc://x/a0"}))
    quota = make_rule(db)
    assert await sweep(quota, dry_run=True, batch=1) == ["media:a1", "media:a2"]


@pytest_twisted.ensureDeferred
async def test_r4_only_counted_kinds_are_evicted_and_no_default_means_overrides_only(
    db: SqliteRunner,
) -> None:
    add(db, files(A, 100), [SentEvent("$big", A, "!r", 0, 0, 1000, 10)])
    assert await sweep(make_rule(db, 50, frozenset({"media"})), True, 10) == ["media:a0"]
    assert await sweep(make_rule(db, None), True, 10) == []
    await UsageStore(db).set_override(A, 500, "@admin:x", 1)
    assert await sweep(make_rule(db, None), True, 10) == ["media:a0", "events:$big"]


@pytest_twisted.ensureDeferred
async def test_r4_r13_items_in_held_rooms_are_passed_over(db: SqliteRunner) -> None:
    events = [
        SentEvent("$held", A, "!held", 0, 0, 300, 0),
        SentEvent("$free", A, "!r", 1, 1, 300, 0),
    ]
    add(db, [], events)  # 600, quota 300
    holds = HoldSet(room_ids=frozenset({"!held"}))
    seen = await sweep(make_rule(db), dry_run=False, batch=1, holds=holds, delete=deleter(db))
    assert seen == ["events:$free"]
    assert (await UsageStore(db).usage(A)).event_bytes == 300
