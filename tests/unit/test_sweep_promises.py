"""The sweep engine's promises under races (issue 25), in the real orchestrator over SQLite.

- R13: a hold placed between a batch's listing and its deletion protects; placing a
  hold waits for a batch marked under the older holds (``store/hold_fence.py``);
- one sweep at a time even when lease renewals fail or stall (``sweep/lease.py``);
- true counts: a sweep whose record pruning fails is not ``completed``; a sweep whose
  process died reads ``interrupted`` once its lease is gone.

Time: the clock is injected (``FakeTime``: a clock and the sleeps of the lease keeper
and of ``HoldStore.settle``, which wake when a test moves the clock); nothing sleeps.
"""

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer

from synapse_lux_privacy.store.holds import HoldSet, HoldStore
from synapse_lux_privacy.store.record_retention import RecordRetention
from synapse_lux_privacy.store.schema import apply_migrations
from synapse_lux_privacy.store.sweep_lock import SWEEP_LOCK, SweepLockStore
from synapse_lux_privacy.store.sweeps import SweepRunStore
from synapse_lux_privacy.sweep import orchestrator
from synapse_lux_privacy.sweep.orchestrator import LOCK_LEASE_MS, SweepAlreadyRunning
from synapse_lux_privacy.sweep.rule import Candidate, CandidatePage, DeleteOutcome, SweepContext
from tests.unit.orchestrators import assert_balanced, build
from tests.unit.sqlite_runner import SqliteRunner

NOW = 1_800_000_000_000
MINUTE = 60_000
ADMIN = "@admin:lux.test"
HELD = "@held:lux.test"


class FakeTime:
    """A clock, and sleeps that end when the clock is moved past them."""

    def __init__(self) -> None:
        self.now = NOW
        self._sleepers: list[tuple[int, defer.Deferred[None]]] = []

    def __call__(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        woken: defer.Deferred[None] = defer.Deferred()
        self._sleepers.append((self.now + int(seconds * 1000), woken))
        await woken

    def advance(self, ms: int) -> None:
        self.now += ms
        due = [s for s in self._sleepers if s[0] <= self.now]
        self._sleepers = [s for s in self._sleepers if s[0] > self.now]
        for _, woken in sorted(due, key=lambda s: s[0]):
            woken.callback(None)


@pytest.fixture
def db(tmp_path: Path) -> SqliteRunner:
    runner = SqliteRunner(str(tmp_path / "lux.db"))
    apply_migrations(runner.conn.cursor(), "sqlite")
    runner.conn.execute("CREATE TABLE items (id TEXT PRIMARY KEY, user_id TEXT)")
    return runner


def add(db: SqliteRunner, ids: Sequence[str], user: str) -> None:
    db.conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, user) for i in ids])


def left(db: SqliteRunner) -> list[str]:
    return [r[0] for r in db.query("SELECT id FROM items ORDER BY id")]


class TableRule:
    """Items of the ``items`` table, deleted one at a time (the orchestrator's default)
    or, with ``isolates``, a batch at once; ``after_listing`` and ``on_delete`` run at
    those moments (a hold placed, the clock moved, another sweep started)."""

    name = "sessions"

    def __init__(self, db: SqliteRunner, label: str = "", isolates: bool = False) -> None:
        self.db = db
        self.label = label
        self.after_listing: list[Callable[[], object]] = []
        self.on_delete: Callable[[Candidate], object] | None = None
        self.deletions: list[tuple[str, str]] = []  # (label, item) per delete call
        if isolates:
            self.isolates_failures = True

    async def find_candidates(
        self, ctx: SweepContext, holds: HoldSet, cursor: str | None
    ) -> CandidatePage:
        rows = self.db.query(
            "SELECT id, user_id FROM items WHERE id > ? ORDER BY id LIMIT ?",
            (cursor or "", ctx.batch_size),
        )
        items = [Candidate(r[0], r[1], "!r:lux.test") for r in rows]
        for hook in self.after_listing:
            await hook()  # type: ignore[misc]
        self.after_listing.clear()
        return CandidatePage(items, rows[-1][0] if len(rows) == ctx.batch_size else None)

    async def delete(self, ctx: SweepContext, items: Sequence[Candidate]) -> DeleteOutcome:
        deleted = []
        for item in items:
            self.deletions.append((self.label, item.item_id))
            if self.on_delete is not None:
                await self.on_delete(item)  # type: ignore[misc]
            if self.db.conn.execute("DELETE FROM items WHERE id = ?", (item.item_id,)).rowcount:
                deleted.append(item)
        return DeleteOutcome(deleted=deleted)


# -- R13: a hold binds the moment it is placed -----------------------------------------------


@pytest.mark.parametrize("isolates", [False, True], ids=["item_by_item", "whole_batch"])
@pytest_twisted.ensureDeferred
async def test_r13_a_hold_placed_between_listing_and_deletion_protects(
    db: SqliteRunner, isolates: bool
) -> None:
    """The probe of issue 25: a hold placed while the rule lists its page (after the
    orchestrator read the holds for the listing) keeps the held user's items; the old
    engine deleted them (``deleted=1, held=0``)."""
    add(db, ["a1", "a2"], "@a:lux.test")
    add(db, ["h1"], HELD)
    rule = TableRule(db, isolates=isolates)
    holds = HoldStore(db)
    rule.after_listing.append(lambda: holds.place("case", HELD, None, "c", ADMIN, NOW))
    report = await build(db, {rule.name: rule}, FakeTime()).run(None, dry_run=False)
    result = report.results[rule.name]
    assert left(db) == ["h1"]
    assert (result.deleted, result.held) == (2, 1)
    assert_balanced(report)


@pytest_twisted.ensureDeferred
async def test_r13_placing_a_hold_waits_for_the_batch_marked_before_it(
    db: SqliteRunner,
) -> None:
    """A hold placed while a batch (marked under the older holds) deletes: ``settle``
    returns only once that batch is over, so nothing is deleted after the answer."""
    add(db, ["a1", "a2", "a3"], "@a:lux.test")
    time = FakeTime()
    rule = TableRule(db, isolates=True)
    holds = HoldStore(db)
    settled: list[defer.Deferred[None]] = []

    async def place_during_deletion(item: Candidate) -> None:
        if not settled:
            await holds.place("case", "@a:lux.test", None, "c", ADMIN, NOW)
            settled.append(defer.ensureDeferred(holds.settle(time, time.sleep)))

    rule.on_delete = place_during_deletion
    sweep = build(db, {rule.name: rule}, time)
    report = await sweep.run(None, dry_run=False)
    assert report.results[rule.name].deleted == 3  # the batch began before the hold
    assert not settled[0].called  # still waiting: its poll has not come round yet
    time.advance(1_000)
    assert settled[0].called
    # Placed with nothing in flight, a hold returns at once.
    done = defer.ensureDeferred(holds.settle(time, time.sleep))
    assert done.called


@pytest_twisted.ensureDeferred
async def test_r13_a_batch_deleted_item_by_item_reads_the_holds_again_between_items(
    db: SqliteRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hold placed while a batch of slow items (accounts) is deleted one by one: the
    items it covers that were not deleted yet are held (the batch reads the holds again
    every ``STOP_CHECK_S``, here at every item), and ``settle`` returns then, not at the
    end of the batch."""
    monkeypatch.setattr(orchestrator, "STOP_CHECK_S", 0.0)
    add(db, ["a1", "a2"], "@a:lux.test")
    add(db, ["h1", "h2"], HELD)
    time = FakeTime()
    rule = TableRule(db)
    holds = HoldStore(db)
    settled: list[defer.Deferred[None]] = []

    async def place_at_first_item(item: Candidate) -> None:
        if item.item_id == "a1":
            await holds.place("case", HELD, None, "c", ADMIN, NOW)
            settled.append(defer.ensureDeferred(holds.settle(time, time.sleep)))
        if item.item_id == "a2":
            time.advance(1_000)  # the poll after the batch was marked again
            assert settled[0].called

    rule.on_delete = place_at_first_item
    report = await build(db, {rule.name: rule}, time).run(None, dry_run=False)
    assert left(db) == ["h1", "h2"]
    assert (report.results[rule.name].deleted, report.results[rule.name].held) == (2, 2)
    assert_balanced(report)


# -- One sweep at a time, even under lease trouble ---------------------------------------------


class StalledLock(SweepLockStore):
    """A lock store whose renewals never answer, or fail, while ``trouble`` is set."""

    def __init__(self, db: SqliteRunner, how: str) -> None:
        super().__init__(db)
        self.how = how
        self.attempts = 0

    async def renew(self, name: str, holder: str, now_ms: int, lease_ms: int) -> bool:
        self.attempts += 1
        if self.how == "stall":
            await defer.Deferred()  # never answers
        raise ConnectionError("database unreachable")


@pytest.mark.parametrize("how", ["stall", "fail"])
@pytest_twisted.ensureDeferred
async def test_no_two_sweeps_delete_at_once_when_lease_renewals_stall_or_fail(
    db: SqliteRunner, how: str
) -> None:
    """Sweep A's renewals stall (or fail) while it deletes slow items (a minute each);
    from another worker, sweep B tries to start at every item and, once it can, deletes.
    A stops deleting while a third of its lease is left, so every deletion of A comes
    before A's lease can expire and before any deletion of B."""
    add(db, [f"i{i:02d}" for i in range(20)], "@a:lux.test")
    time = FakeTime()
    rule_a, rule_b = TableRule(db, "A"), TableRule(db, "B")
    lock = StalledLock(db, how)
    first = build(db, {rule_a.name: rule_a}, time, batch_size=20, sleep=time.sleep, lock=lock)
    other = build(db, {rule_b.name: rule_b}, time, instance="worker2", sleep=time.sleep)
    b_started: list[defer.Deferred[object]] = []

    async def slow_item(item: Candidate) -> None:
        time.advance(MINUTE)
        if not b_started:
            try:
                started = await other.start(None, dry_run=False)
            except SweepAlreadyRunning:
                return
            b_started.append(defer.ensureDeferred(other.execute(started)))

    rule_a.on_delete = slow_item
    acquired = time.now
    report = await first.run(None, dry_run=False)
    assert lock.attempts >= 1
    assert report.status == "interrupted"
    assert report.results[rule_a.name].skipped_reasons.get("sweep_stopped", 0) > 0
    assert_balanced(report)
    if not b_started:  # A stopped and released the lease before B tried: B starts now
        b_started.append(defer.ensureDeferred(other.run(None, dry_run=False)))
    await b_started[0]
    a_times = [i for label, i in rule_a.deletions if label == "A"]
    order = [label for label, _ in rule_a.deletions + rule_b.deletions]
    assert a_times and "B" in order
    assert order == sorted(order), "A deleted after B began"  # every A before every B
    # A's last deletion began while more than a third of its lease was left.
    assert len(a_times) * MINUTE <= LOCK_LEASE_MS - LOCK_LEASE_MS // 3 + MINUTE
    assert time.now - acquired < 20 * MINUTE


# -- True counts -----------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_sweep_whose_record_pruning_fails_is_not_completed(
    db: SqliteRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 25: the status was set before the pruning ran, so a failed pruning was
    stored ``completed``; it is ``completed_with_errors`` and not the last successful
    sweep."""

    async def broken(self: RecordRetention, before_ms: int) -> int:
        raise ConnectionError("database unreachable")

    monkeypatch.setattr(RecordRetention, "prune", broken)
    add(db, ["a1"], "@a:lux.test")
    rule = TableRule(db)
    report = await build(db, {rule.name: rule}, FakeTime()).run(None, dry_run=False)
    assert report.status == "completed_with_errors"
    assert left(db) == []
    assert await SweepRunStore(db).last_finished_ts() is None


@pytest_twisted.ensureDeferred
async def test_a_sweep_whose_process_died_reads_interrupted_once_its_lease_is_gone(
    db: SqliteRunner,
) -> None:
    """A sweep started and never finished (its process was killed): every reader sees it
    ``running`` while its lease lasts and ``interrupted`` from its expiry on, or at once
    when the lease is gone, without waiting for the next sweep to start."""
    time = FakeTime()
    rule = TableRule(db)
    started = await build(db, {rule.name: rule}, time).start(None, dry_run=False)
    runs = SweepRunStore(db)
    before = await runs.get(started.sweep_id, time.now + LOCK_LEASE_MS - 1)
    assert before is not None and before.status == "running"
    expired = await runs.get(started.sweep_id, time.now + LOCK_LEASE_MS + 1)
    assert expired is not None and expired.status == "interrupted"
    listed = await runs.latest(5, time.now + LOCK_LEASE_MS + 1)
    assert [r.status for r in listed] == ["interrupted"]
    await SweepLockStore(db).release(SWEEP_LOCK, started.holder)
    gone = await runs.get(started.sweep_id, time.now)
    assert gone is not None and gone.status == "interrupted"
