"""The sweep engine with a real SQLite database and a test rule over a table of aged items.

Time: the clock is injected (a fixed "now"), items carry explicit ages; nothing sleeps
(the rests test's steps take 2 ms of real time each, so that the pace has a time to rest on).
"""

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest
import pytest_twisted

from synapse_lux_privacy.config import AdaptivePaceConfig
from synapse_lux_privacy.store.audit import AuditStore
from synapse_lux_privacy.store.holds import HoldSet, HoldStore
from synapse_lux_privacy.store.sweep_lock import SWEEP_LOCK, SweepLockStore
from synapse_lux_privacy.sweep.orchestrator import (
    LOCK_LEASE_MS,
    PROCESS_TOKEN,
    SweepAlreadyRunning,
    SweepOrchestrator,
)
from synapse_lux_privacy.sweep.probe import LoadProbe
from synapse_lux_privacy.sweep.rule import RULE_NAMES, Candidate, CandidatePage, SweepContext
from tests.unit.orchestrators import assert_balanced, build, never, spawn
from tests.unit.sqlite_runner import SqliteRunner, migrated_runner

DAY = 86_400_000
NOW = 1_800_000_000_000
LIFETIME = 30 * DAY


class AgedItemsRule:
    """Deletes rows of ``items`` older than LIFETIME as of the sweep's time."""

    def __init__(self, db: SqliteRunner, name: str = "messages") -> None:
        self.name = name
        self.db = db
        self.pages: list[int] = []
        self.as_of_seen: list[int] = []
        self.look_ahead_seen: list[bool] = []
        self.failing: set[str] = set()

    async def find_candidates(
        self, ctx: SweepContext, holds: HoldSet, cursor: str | None
    ) -> CandidatePage:
        self.as_of_seen.append(ctx.as_of_ms)
        self.look_ahead_seen.append(ctx.look_ahead)
        rows = self.db.query(
            "SELECT id, user_id, room_id, size FROM items WHERE ts <= ? AND id > ?"
            " ORDER BY id LIMIT ?",
            (ctx.as_of_ms - LIFETIME, cursor or "", ctx.batch_size),
        )
        items = [Candidate(r[0], r[1], r[2], r[3]) for r in rows]
        self.pages.append(len(items))
        return CandidatePage(items, rows[-1][0] if len(rows) == ctx.batch_size else None)

    async def delete(self, ctx: SweepContext, items: Sequence[Candidate]) -> Sequence[Candidate]:
        if any(item.item_id in self.failing for item in items):
            raise RuntimeError("storage unavailable")
        for item in items:
            self.db.conn.execute("DELETE FROM items WHERE id = ?", (item.item_id,))
        return items


# The table ``AgedItemsRule`` deletes from.
AGED_ITEMS_TABLE = (
    "CREATE TABLE items (id TEXT PRIMARY KEY, user_id TEXT, room_id TEXT, ts BIGINT, size INTEGER)"
)


def aged_items_db(path: Path) -> SqliteRunner:
    """The module's tables and ``AgedItemsRule``'s, in a SQLite file at ``path``."""
    runner = migrated_runner(path)
    runner.conn.execute(AGED_ITEMS_TABLE)
    return runner


@pytest.fixture
def db(tmp_path: Path) -> SqliteRunner:
    return aged_items_db(tmp_path / "lux.db")


def add_items(
    db: SqliteRunner, count: int, age_days: int, user: str, room: str, prefix: str
) -> None:
    for i in range(count):
        db.conn.execute(
            "INSERT INTO items VALUES (?, ?, ?, ?, ?)",
            (f"{prefix}{i:05d}", user, room, NOW - age_days * DAY, 10),
        )


def remaining(db: SqliteRunner, prefix: str) -> int:
    return int(db.query("SELECT COUNT(*) FROM items WHERE id LIKE ?", (prefix + "%",))[0][0])


def make(
    db: SqliteRunner, rule: AgedItemsRule, batch_size: int = 10, now: int = NOW
) -> SweepOrchestrator:
    return build(db, {rule.name: rule}, lambda: now, batch_size)


@pytest_twisted.ensureDeferred
async def test_r1_only_items_past_their_limit_are_deleted_in_bounded_batches(
    db: SqliteRunner,
) -> None:
    add_items(db, 25, 31, "@a:lux.test", "!r:lux.test", "old")
    add_items(db, 7, 29, "@a:lux.test", "!r:lux.test", "new")
    rule = AgedItemsRule(db)
    report = await make(db, rule).run(as_of_ms=None, dry_run=False)
    assert remaining(db, "old") == 0 and remaining(db, "new") == 7
    assert rule.pages == [10, 10, 5]
    assert_balanced(report)
    result = report.results["messages"]
    assert (result.candidates, result.deleted, result.held, result.errors) == (25, 25, 0, 0)
    assert result.bytes == 250


@pytest_twisted.ensureDeferred
async def test_dry_run_counts_exactly_and_deletes_nothing(db: SqliteRunner) -> None:
    add_items(db, 23, 40, "@a:lux.test", "!r:lux.test", "old")
    rule = AgedItemsRule(db)
    report = await make(db, rule).run(as_of_ms=None, dry_run=True)
    assert report.results["messages"].candidates == 23
    assert report.results["messages"].deleted == 0
    assert remaining(db, "old") == 23
    assert report.results["messages"].skipped_reasons == {"dry_run": 23}
    assert_balanced(report)
    assert db.query("SELECT COUNT(*) FROM lux_privacy_audit") == [(0,)]


@pytest_twisted.ensureDeferred
async def test_as_of_evaluates_the_rules_at_that_instant(db: SqliteRunner) -> None:
    add_items(db, 5, 20, "@a:lux.test", "!r:lux.test", "young")
    rule = AgedItemsRule(db)
    report = await make(db, rule).run(as_of_ms=NOW + 11 * DAY, dry_run=True)
    assert rule.as_of_seen == [NOW + 11 * DAY]
    assert report.as_of == NOW + 11 * DAY
    assert report.results["messages"].candidates == 5
    report = await make(db, rule).run(as_of_ms=NOW + 9 * DAY, dry_run=True)
    assert report.results["messages"].candidates == 0


@pytest_twisted.ensureDeferred
async def test_r13_held_user_and_held_room_are_never_deleted(db: SqliteRunner) -> None:
    add_items(db, 4, 90, "@held:lux.test", "!r:lux.test", "huser")
    add_items(db, 3, 90, "@b:lux.test", "!held:lux.test", "hroom")
    add_items(db, 5, 90, "@b:lux.test", "!r:lux.test", "free")
    holds = HoldStore(db)
    await holds.place("case-1", "@held:lux.test", None, "case 1", "@admin:lux.test", NOW)
    await holds.place("case-2", None, "!held:lux.test", "case 2", "@admin:lux.test", NOW)
    report = await make(db, AgedItemsRule(db), batch_size=5).run(as_of_ms=None, dry_run=False)
    assert remaining(db, "huser") == 4 and remaining(db, "hroom") == 3
    assert remaining(db, "free") == 0
    assert report.results["messages"].held == 7
    assert report.results["messages"].deleted == 5
    # Released holds no longer protect anything.
    await holds.release("case-1", "@admin:lux.test", NOW)
    await make(db, AgedItemsRule(db)).run(as_of_ms=None, dry_run=False)
    assert remaining(db, "huser") == 0 and remaining(db, "hroom") == 3


@pytest_twisted.ensureDeferred
async def test_audit_has_one_row_per_batch_and_user_room_with_counts(db: SqliteRunner) -> None:
    add_items(db, 3, 90, "@a:lux.test", "!r1:lux.test", "a")
    add_items(db, 2, 90, "@b:lux.test", "!r2:lux.test", "b")
    report = await make(db, AgedItemsRule(db), batch_size=10).run(as_of_ms=None, dry_run=False)
    rows = db.query(
        "SELECT sweep_id, rule, status, count, bytes, user_id, room_id FROM lux_privacy_audit"
        " ORDER BY user_id"
    )
    assert rows == [
        (report.sweep_id, "messages", "done", 3, 30, "@a:lux.test", "!r1:lux.test"),
        (report.sweep_id, "messages", "done", 2, 20, "@b:lux.test", "!r2:lux.test"),
    ]
    entries = await AuditStore(db).list_entries(since_ts=0, limit=1)
    assert len(entries) == 1


class ProviderObjectsRule(AgedItemsRule):
    """Deletes like AgedItemsRule and reports each item with its storage-provider
    objects (as the media rules do): one object per character of the item ID."""

    async def delete(self, ctx: SweepContext, items: Sequence[Candidate]) -> Sequence[Candidate]:
        done = await super().delete(ctx, items)
        return [attrs.evolve(c, provider_objects=len(c.item_id)) for c in done]


@pytest_twisted.ensureDeferred
async def test_r2_audit_rows_count_the_storage_provider_objects_deleted(db: SqliteRunner) -> None:
    add_items(db, 3, 90, "@a:lux.test", "!r1:lux.test", "a")  # IDs of six characters
    add_items(db, 2, 90, "@b:lux.test", "!r2:lux.test", "bb")  # seven
    await make(db, ProviderObjectsRule(db), batch_size=10).run(as_of_ms=None, dry_run=False)
    entries = await AuditStore(db).list_entries(since_ts=0, limit=10)
    assert sorted((e.user_id, e.count, e.provider_objects) for e in entries) == [
        ("@a:lux.test", 3, 18),
        ("@b:lux.test", 2, 14),
    ]
    assert all(e.to_json()["provider_objects"] == e.provider_objects for e in entries)


@pytest_twisted.ensureDeferred
async def test_only_one_sweep_at_a_time_and_a_dead_holders_lease_expires(db: SqliteRunner) -> None:
    lock = SweepLockStore(db)
    assert await lock.try_acquire(SWEEP_LOCK, "other-worker", NOW, LOCK_LEASE_MS)
    db.conn.execute(
        "INSERT INTO lux_privacy_sweeps (sweep_id, instance, started_ts, as_of_ts, dry_run,"
        " status) VALUES ('dead', 'w1', ?, ?, 0, 'running')",
        (NOW, NOW),
    )
    with pytest.raises(SweepAlreadyRunning):
        await make(db, AgedItemsRule(db)).run(as_of_ms=None, dry_run=True)
    # The holder was killed: once its lease runs out, the next sweep takes over.
    later = NOW + LOCK_LEASE_MS + 1
    await make(db, AgedItemsRule(db), now=later).run(as_of_ms=None, dry_run=True)
    assert db.query("SELECT status FROM lux_privacy_sweeps WHERE sweep_id = 'dead'") == [
        ("interrupted",)
    ]
    assert db.query("SELECT COUNT(*) FROM lux_privacy_lock") == [(0,)]


@pytest_twisted.ensureDeferred
async def test_rules_run_in_the_fixed_order_and_the_filter_is_honoured(db: SqliteRunner) -> None:
    report = await make(db, AgedItemsRule(db)).run(as_of_ms=None, dry_run=True)
    assert list(report.results) == list(RULE_NAMES)
    assert report.results["messages"].enforced is True
    assert report.results["quota"].enforced is False
    report = await make(db, AgedItemsRule(db)).run(
        as_of_ms=None, dry_run=True, rule_names=["ip_logs", "messages"]
    )
    assert list(report.results) == ["messages", "ip_logs"]


@pytest_twisted.ensureDeferred
async def test_a_killed_predecessor_of_this_instance_does_not_block_the_next_sweep(
    db: SqliteRunner,
) -> None:
    """After SIGKILL and restart, the same instance takes its dead lease over at once;
    a live lease of another instance, or of this very process, still blocks."""
    lock = SweepLockStore(db)
    assert await lock.try_acquire(SWEEP_LOCK, "test/deadbeef0000/s1", NOW, LOCK_LEASE_MS)
    report = await make(db, AgedItemsRule(db)).run(as_of_ms=None, dry_run=True)
    assert report.results["messages"].errors == 0

    assert await lock.try_acquire(SWEEP_LOCK, "worker-2/abc/s2", NOW, LOCK_LEASE_MS)
    with pytest.raises(SweepAlreadyRunning):
        await make(db, AgedItemsRule(db)).run(as_of_ms=None, dry_run=True)
    db.conn.execute("DELETE FROM lux_privacy_lock")

    assert await lock.try_acquire(SWEEP_LOCK, f"test/{PROCESS_TOKEN}/s3", NOW, LOCK_LEASE_MS)
    with pytest.raises(SweepAlreadyRunning):
        await make(db, AgedItemsRule(db)).run(as_of_ms=None, dry_run=True)


class FinishFailsRunner(SqliteRunner):
    """The database refuses the write that records a sweep's end (``finish``), once."""

    def __init__(self, db: SqliteRunner) -> None:
        self.conn = db.conn
        self.failures_left = 1

    async def __call__(self, desc: str, func: Callable[..., Any], *args: Any) -> Any:
        if desc == "lux_privacy_sweep_finish" and self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("database unavailable")
        return await super().__call__(desc, func, *args)


@pytest_twisted.ensureDeferred
async def test_the_lease_is_released_even_when_the_end_of_a_sweep_cannot_be_recorded(
    db: SqliteRunner,
) -> None:
    """A database error while recording the end must not leave the lease behind: the
    keeper has stopped renewing it, and every sweep would get 409 until it ran out
    (10 minutes). The next sweep runs at once and marks the unrecorded one interrupted."""
    add_items(db, 5, 31, "@a:lux.test", "!r:lux.test", "old")
    failing = FinishFailsRunner(db)
    orchestrator = build(failing, {"messages": AgedItemsRule(failing)}, lambda: NOW)
    with pytest.raises(RuntimeError, match="database unavailable"):
        await orchestrator.run(as_of_ms=None, dry_run=False)
    assert remaining(db, "old") == 0
    assert db.query("SELECT COUNT(*) FROM lux_privacy_lock") == [(0,)]

    report = await make(db, AgedItemsRule(db)).run(as_of_ms=None, dry_run=False)
    assert report.status == "completed"
    statuses = db.query("SELECT status FROM lux_privacy_sweeps ORDER BY status")
    assert statuses == [("completed",), ("interrupted",)]


class RememberingRule(AgedItemsRule):
    """An aged-items rule that records the passes the orchestrator says ran to their end."""

    def __init__(self, db: SqliteRunner) -> None:
        super().__init__(db)
        self.completed: list[int] = []

    async def pass_completed(self, ctx: SweepContext) -> None:
        self.completed.append(ctx.as_of_ms)


@pytest_twisted.ensureDeferred
async def test_r1_a_rule_is_told_only_when_a_real_pass_ran_to_its_end(db: SqliteRunner) -> None:
    """After the last batch of a real pass, once; never for a dry run, nor for a pass
    whose candidates could not be read (it did not reach its end)."""
    add_items(db, 25, 31, "@a:lux.test", "!r:lux.test", "old")
    rule = RememberingRule(db)
    await make(db, rule).run(as_of_ms=NOW, dry_run=True)
    assert rule.completed == []
    await make(db, rule).run(as_of_ms=NOW, dry_run=False)
    assert rule.completed == [NOW] and remaining(db, "old") == 0
    db.conn.execute("DROP TABLE items")  # the next pass cannot read its candidates
    report = await make(db, rule).run(as_of_ms=NOW + DAY, dry_run=False)
    assert report.results["messages"].rule_errors == 1
    assert rule.completed == [NOW]


@pytest_twisted.ensureDeferred
async def test_r1_r12_sweep_pace_pauses_after_each_batch_that_went_faster(
    db: SqliteRunner,
) -> None:
    """``sweep_pace`` 10 items/s, batches of 10: a pause of up to a second after each full
    batch, up to half a second after the last (5 items), less what the batch took; at
    4 items/s, batches of 4; a dry run deletes nothing and never pauses. The pauses are
    recorded, not slept (the lease keeper's own long waits never return)."""
    add_items(db, 25, 31, "@a:lux.test", "!r:lux.test", "old")
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        if seconds >= 60:  # the lease keeper's renewal timer
            await never(seconds)
        pauses.append(seconds)

    orchestrator = build(db, {"messages": AgedItemsRule(db)}, lambda: NOW, 10, sleep=sleep, pace=10)
    await orchestrator.run(as_of_ms=None, dry_run=True)
    assert pauses == []
    report = await orchestrator.run(as_of_ms=None, dry_run=False)
    assert report.results["messages"].deleted == 25
    assert len(pauses) == 3
    # A batch's own time counts towards its share: under load the pauses are shorter.
    assert all(0 < p <= 1.0 for p in pauses[:2]) and 0 < pauses[2] <= 0.5
    add_items(db, 12, 31, "@a:lux.test", "!r:lux.test", "more")
    rule = AgedItemsRule(db)
    slower = build(db, {"messages": rule}, lambda: NOW, 10, sleep=sleep, pace=4)
    await slower.run(as_of_ms=None, dry_run=False)
    assert rule.pages == [4, 4, 4, 0], "at most a second's worth per batch"


class ProbedDb:
    """The SQLite runner; the load probe's query is timed by a clock that a deletion
    makes slow (``slow`` seconds for the next probe) and is otherwise 1 ms."""

    def __init__(self, db: SqliteRunner, slow: float) -> None:
        self.db = db
        self.slow = slow
        self.now = 0.0
        self.deleted = False

    def clock(self) -> float:
        return self.now

    async def __call__(self, desc: str, func: Callable[..., Any], *args: Any) -> Any:
        self.now += self.slow if self.deleted else 0.001
        self.deleted = False
        return await self.db(desc, func, *args)


class DeletionSeenRule(AgedItemsRule):
    def __init__(self, db: SqliteRunner, probed: ProbedDb) -> None:
        super().__init__(db)
        self.probed = probed

    async def delete(self, ctx: SweepContext, items: Sequence[Candidate]) -> Sequence[Candidate]:
        self.probed.deleted = True
        return await super().delete(ctx, items)


@pytest.mark.parametrize(("slow", "pages"), [(0.05, [10, 5, 2, 1, 1, 1]), (0.0015, [10, 12, 8])])
@pytest_twisted.ensureDeferred
async def test_r1_r12_adaptive_pace_shrinks_batches_that_slow_the_database_and_deletes_all(
    db: SqliteRunner, slow: float, pages: list[int]
) -> None:
    """``sweep_adaptive_pace``: batches start at 10 items; when the probe taken while a
    batch is deleted is 50 times the idle one, each next batch is halved (down to one
    item) and the sweep pauses; when it stays within ``max_slowdown``, batches grow
    (capped by ``sweep_batch_size``, 30 here). Either way every due item goes. ``rest``
    is 0: the pauses here are the controller's own, not the rests after steps and
    batches. The probe's clock is a counter, the pauses are recorded, not slept."""
    add_items(db, 30, 31, "@a:lux.test", "!r:lux.test", "old")
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        if seconds >= 60:  # the lease keeper's renewal timer
            await never(seconds)
        pauses.append(seconds)

    probed = ProbedDb(db, slow)
    rule = DeletionSeenRule(db, probed)
    probe = LoadProbe(probed, spawn, sleep, probed.clock)
    config = AdaptivePaceConfig(enabled=True, max_slowdown=1.5, min_pace=1.0, rest=0.0)
    orchestrator = build(
        db, {"messages": rule}, lambda: NOW, 30, sleep=sleep, adaptive_pace=config, probe=probe
    )
    await orchestrator.run(as_of_ms=None, dry_run=True)
    assert rule.pages == [30, 0] and pauses == [], "a dry run is not paced"
    rule.pages.clear()
    report = await orchestrator.run(as_of_ms=None, dry_run=False)
    assert report.results["messages"].deleted == 30
    assert rule.pages[: len(pages)] == pages
    assert sum(rule.pages) == 30
    assert (len(pauses) > 0) == (slow > 0.01)


class SteppedRule(AgedItemsRule):
    """Deletes each item as one step of its batch (as the messages rule runs each room's
    purge), taking at least 2 ms of real time each."""

    async def delete(self, ctx: SweepContext, items: Sequence[Candidate]) -> Sequence[Candidate]:
        async def work() -> Sequence[Candidate]:
            time.sleep(0.002)
            return await super(SteppedRule, self).delete(ctx, items)

        return await ctx.step(len(items), work)


@pytest_twisted.ensureDeferred
async def test_r1_r12_the_adaptive_pace_rests_after_each_step_of_a_batch(db: SqliteRunner) -> None:
    """Issue 22: the sweep hands the rule its pacer's ``step``: with ``rest`` 4, each
    step (2 ms or more, real time) is followed by a rest of at least 8 ms, and the
    batch by a rest after what it did besides its steps (its finding, the audit); a dry run
    and a sweep with the adaptive pace off never rest; only the latter lets the rule find
    a page ahead (``SweepContext.look_ahead``). The rests are recorded, not
    slept; the probe's clock is a counter that never shows harm."""
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        if seconds >= 60:  # the lease keeper's renewal timer
            await never(seconds)
        pauses.append(seconds)

    probed = ProbedDb(db, 0.001)
    probe = LoadProbe(probed, spawn, sleep, probed.clock)
    for enabled, prefix in ((False, "off"), (True, "on")):
        add_items(db, 3, 31, "@a:lux.test", "!r:lux.test", prefix)
        config = AdaptivePaceConfig(enabled=enabled, min_pace=1.0, rest=4.0)
        rule = SteppedRule(db)
        orchestrator = build(
            db, {"messages": rule}, lambda: NOW, 30, sleep=sleep,
            adaptive_pace=config, probe=probe,
        )  # fmt: skip
        await orchestrator.run(as_of_ms=None, dry_run=True)
        assert pauses == [], "a dry run does not rest"
        rule.look_ahead_seen.clear()
        report = await orchestrator.run(as_of_ms=None, dry_run=False)
        # No page found ahead, beside a step, under the adaptive pace.
        assert set(rule.look_ahead_seen) == {not enabled}
        assert report.results["messages"].deleted == 3 and remaining(db, prefix) == 0
        # Three steps, each followed by a rest, then the rest after the batch's other work.
        assert (len(pauses), enabled) in ((0, False), (4, True)), pauses
    assert min(pauses) >= 4 * 0.002, pauses
