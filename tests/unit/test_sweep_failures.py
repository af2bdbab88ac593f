"""Per-item failures, the accounting invariant, cancellation, the lease timer and
record retention in the real orchestrator over SQLite (issue #11; R1-R13 via every rule).

Time: the clock is injected (``Clock.now``, moved by the tests); the lease test alone
waits for real, about 2.5 s, with a lease shortened to 1.5 s.
"""

from collections.abc import Sequence
from pathlib import Path

import pytest
import pytest_twisted
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer, reactor, task

from synapse_lux_privacy.store.failures import HOUR_MS, FailureStore
from synapse_lux_privacy.store.holds import HoldSet, HoldStore
from synapse_lux_privacy.store.schema import apply_migrations
from synapse_lux_privacy.store.sweeps import SweepRunStore
from synapse_lux_privacy.sweep import orchestrator
from synapse_lux_privacy.sweep.orchestrator import SweepAlreadyRunning
from synapse_lux_privacy.sweep.rule import Candidate, CandidatePage, DeleteOutcome, SweepContext
from tests.unit.orchestrators import MONTH, assert_balanced, build, drive, twisted_sleep
from tests.unit.sqlite_runner import SqliteRunner

NOW = 1_800_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        return self.now


class ItemsRule:
    """Items ``i000``.. of a table; behaviours per item: fail, skip (with a reason), gone."""

    name = "attachments"

    def __init__(self, db: SqliteRunner, isolates: bool = False) -> None:
        self.db = db
        self.failing: set[str] = set()
        self.skipping: dict[str, str] = {}
        self.calls: list[int] = []
        self.page_delay_s = 0.0
        self.on_page: list[object] = []
        if isolates:
            self.isolates_failures = True

    async def find_candidates(
        self, ctx: SweepContext, holds: HoldSet, cursor: str | None
    ) -> CandidatePage:
        if self.page_delay_s:
            await task.deferLater(reactor, self.page_delay_s)  # type: ignore[arg-type]
        rows = self.db.query(
            "SELECT id, user_id FROM items WHERE id > ? ORDER BY id LIMIT ?",
            (cursor or "", ctx.batch_size),
        )
        for hook in self.on_page:
            await hook  # type: ignore[misc]
        self.on_page.clear()
        items = [Candidate(r[0], r[1], "!r:lux.test", 10) for r in rows]
        return CandidatePage(items, rows[-1][0] if len(rows) == ctx.batch_size else None)

    async def delete(self, ctx: SweepContext, items: Sequence[Candidate]) -> DeleteOutcome:
        self.calls.append(len(items))
        failed = {c.item_id: "OSError" for c in items if c.item_id in self.failing}
        if failed and not hasattr(self, "isolates_failures"):
            raise OSError("media store unavailable")
        deleted = []
        for c in items:
            if c.item_id in failed or c.item_id in self.skipping:
                continue
            if self.db.conn.execute("DELETE FROM items WHERE id = ?", (c.item_id,)).rowcount:
                deleted.append(c)
        return DeleteOutcome(
            deleted=deleted,
            skipped={k: v for k, v in self.skipping.items() if k in {c.item_id for c in items}},
            failed=failed,
        )


@pytest.fixture
def db(tmp_path: Path) -> SqliteRunner:
    runner = SqliteRunner(str(tmp_path / "lux.db"))
    apply_migrations(runner.conn.cursor(), "sqlite")
    runner.conn.execute("CREATE TABLE items (id TEXT PRIMARY KEY, user_id TEXT)")
    return runner


def add(db: SqliteRunner, count: int, user: str = "@a:lux.test") -> list[str]:
    ids = [f"i{i:03d}" for i in range(count)]
    db.conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, user) for i in ids])
    return ids


def left(db: SqliteRunner) -> list[str]:
    return [r[0] for r in db.query("SELECT id FROM items ORDER BY id")]


@pytest_twisted.ensureDeferred
async def test_r2_a_failing_item_is_an_error_and_the_items_after_it_still_go(
    db: SqliteRunner,
) -> None:
    """One undeletable item: the rest of its batch and the batches after it go; the item
    is recorded, retried at the next sweep, then waits out its backoff; once the fault is
    gone it goes and its failure row with it."""
    add(db, 25)
    rule = ItemsRule(db)
    rule.failing = {"i003"}
    clock = Clock()
    sweep = build(db, {rule.name: rule}, clock)
    report = await sweep.run(None, dry_run=False)
    result = report.results["attachments"]
    assert left(db) == ["i003"]
    assert (result.candidates, result.deleted, result.errors) == (25, 24, 1)
    assert report.status == "completed_with_errors"
    assert_balanced(report)
    failures = await FailureStore(db).list_failures(10)
    assert [(f.item_id, f.attempts, f.error_class) for f in failures] == [("i003", 1, "OSError")]
    assert failures[0].user_id == "@a:lux.test"
    # The audit counts what was really deleted: 24, not 25 and not 0.
    assert db.query("SELECT SUM(count), MIN(status), MAX(status) FROM lux_privacy_audit") == [
        (24, "done", "done")
    ]

    clock.now += 60_000  # the next sweep retries at once, fails again: backoff one hour
    report = await sweep.run(None, dry_run=False)
    assert report.results["attachments"].errors == 1
    (failure,) = await FailureStore(db).list_failures(10)
    assert failure.attempts == 2 and failure.next_retry_ts == clock.now + HOUR_MS

    clock.now += 60_000  # within the backoff: skipped, not tried
    rule.calls.clear()
    report = await sweep.run(None, dry_run=False)
    assert report.results["attachments"].skipped_reasons == {"retry_backoff": 1}
    assert rule.calls == []
    assert_balanced(report)

    rule.failing.clear()
    clock.now += HOUR_MS
    report = await sweep.run(None, dry_run=False)
    assert report.results["attachments"].deleted == 1 and left(db) == []
    assert await FailureStore(db).list_failures(10) == []
    # No audit row says "nothing done".
    assert db.query("SELECT COUNT(*) FROM lux_privacy_audit WHERE count = 0") == [(0,)]


@pytest_twisted.ensureDeferred
async def test_r1_a_rule_that_deletes_whole_batches_reports_its_failures_and_reasons(
    db: SqliteRunner,
) -> None:
    add(db, 12)
    rule = ItemsRule(db, isolates=True)
    rule.failing = {"i001"}
    rule.skipping = {"i002": "newest_event", "i004": "avatar_in_use"}
    db.conn.execute("DELETE FROM items WHERE id = 'i005'")  # gone between pages: not a candidate
    report = await build(db, {rule.name: rule}, Clock(), batch_size=5).run(None, dry_run=False)
    result = report.results["attachments"]
    assert rule.calls == [5, 5, 1]
    assert result.errors == 1 and result.deleted == 8
    assert result.skipped_reasons == {"newest_event": 1, "avatar_in_use": 1}
    assert_balanced(report)


@pytest_twisted.ensureDeferred
async def test_r13_a_cancelled_sweep_stops_after_its_batch(db: SqliteRunner) -> None:
    """DELETE /sweeps/{id} from anywhere sets the flag; the sweep stops after the batch."""
    add(db, 30)
    rule = ItemsRule(db)
    sweep = build(db, {rule.name: rule}, Clock())
    started = await sweep.start(None, dry_run=False)
    rule.on_page.append(SweepRunStore(db).request_cancel(started.sweep_id, NOW))
    report = await sweep.execute(started)
    assert report.status == "cancelled"
    assert len(left(db)) == 20
    record = await SweepRunStore(db).get(started.sweep_id, NOW)
    assert record is not None and record.status == "cancelled"
    assert record.report is not None
    assert record.report["results"]["attachments"]["deleted"] == 10
    assert db.query("SELECT COUNT(*) FROM lux_privacy_lock") == [(0,)]


class CancelledMidBatch(ItemsRule):
    """Each item deletion asks for the sweep's cancellation once three items are gone."""

    def __init__(self, db: SqliteRunner, sweep_id: str) -> None:
        super().__init__(db)
        self.sweep_id = sweep_id

    async def delete(self, ctx: SweepContext, items: Sequence[Candidate]) -> DeleteOutcome:
        outcome = await super().delete(ctx, items)
        if len(left(self.db)) == 27:
            await SweepRunStore(self.db).request_cancel(self.sweep_id, NOW)
        return outcome


@pytest_twisted.ensureDeferred
async def test_r13_a_cancellation_stops_a_batch_of_slow_items_half_way(
    db: SqliteRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rule deleted item by item (accounts: about a second each) looks for a cancellation
    between items (every ``STOP_CHECK_S``, here at every item): the rest of the batch is
    left untried and counted as skipped ``sweep_stopped``, their failure records kept."""
    monkeypatch.setattr(orchestrator, "STOP_CHECK_S", 0.0)
    add(db, 30)
    placeholder = ItemsRule(db)
    sweep = build(db, {placeholder.name: placeholder}, Clock())
    started = await sweep.start(None, dry_run=False)
    rule = CancelledMidBatch(db, started.sweep_id)
    sweep.register({rule.name: rule})
    report = await sweep.execute(started)
    result = report.results["attachments"]
    assert report.status == "cancelled"
    assert len(left(db)) == 27
    assert (result.candidates, result.deleted) == (10, 3)
    assert result.skipped_reasons == {"sweep_stopped": 7}
    assert_balanced(report)
    assert db.query("SELECT SUM(count) FROM lux_privacy_audit WHERE rule = 'attachments'") == [(3,)]


@pytest_twisted.ensureDeferred
async def test_the_lease_is_renewed_while_one_page_takes_longer_than_the_lease(
    db: SqliteRunner,
) -> None:
    """A 1.5 s lease and a page that takes 2.5 s: the keeper renews it on its timer (every
    0.5 s), so a second process asking for the lock during that page is refused, and the
    sweep still deletes after the page (real waits; the lease is long enough that a
    renewal late by a few hundred milliseconds on a busy machine stays within the third
    of the lease a sweep keeps in reserve: ``lease.py``)."""
    add(db, 5)
    rule = ItemsRule(db)
    rule.page_delay_s = 2.5
    real_clock = lambda: int(reactor.seconds() * 1000)  # noqa: E731
    first = build(db, {rule.name: rule}, real_clock, lease_ms=1500, sleep=twisted_sleep)
    other = build(db, {rule.name: rule}, real_clock, instance="worker2", lease_ms=1500)
    started = await first.start(None, dry_run=False)
    done = defer.ensureDeferred(first.execute(started))
    await task.deferLater(reactor, 1.8)  # type: ignore[arg-type]
    with pytest.raises(SweepAlreadyRunning):
        await other.start(None, dry_run=True)
    report = await done
    assert started.keeper.renewals >= 2
    assert report.status == "completed" and left(db) == []


@pytest_twisted.ensureDeferred
async def test_accountability_records_go_after_audit_retention(db: SqliteRunner) -> None:
    """Audit, failure and sweep rows backdated past ``audit.retention`` go at the next full
    real sweep; younger ones, and everything on a dry run, stay."""
    old, young = NOW - 25 * MONTH, NOW - 23 * MONTH
    for ts in (old, young):
        db.conn.execute(
            "INSERT INTO lux_privacy_audit (ts, rule, status, count, bytes, user_id)"
            " VALUES (?, 'messages', 'done', 1, 0, '@a:lux.test')",
            (ts,),
        )
        db.conn.execute(
            "INSERT INTO lux_privacy_failures VALUES ('messages', ?, NULL, NULL, ?, ?, 1, 'E', ?)",
            (f"x{ts}", ts, ts, ts),
        )
        db.conn.execute(
            "INSERT INTO lux_privacy_sweeps (sweep_id, instance, started_ts, as_of_ts, dry_run,"
            " status) VALUES (?, 'test', ?, ?, FALSE, 'completed')",
            (f"s{ts}", ts, ts),
        )
    rule = ItemsRule(db)
    sweep = build(db, {rule.name: rule}, Clock())
    await sweep.run(None, dry_run=True)
    await sweep.run(None, dry_run=False, rule_names=["attachments"])
    assert db.query("SELECT COUNT(*) FROM lux_privacy_audit WHERE ts < ?", (young,)) == [(1,)]
    report = await sweep.run(None, dry_run=False)
    for table, column in (
        ("lux_privacy_audit", "ts"),
        ("lux_privacy_failures", "last_ts"),
        ("lux_privacy_sweeps", "started_ts"),
    ):
        assert db.query(f"SELECT {column} FROM {table} WHERE {column} < ?", (NOW - HOUR_MS,)) == [
            (young,)
        ], table
    assert db.query(
        "SELECT count FROM lux_privacy_audit WHERE rule = 'audit' AND sweep_id = ?",
        (report.sweep_id,),
    ) == [(3,)]


@pytest_twisted.ensureDeferred
async def test_a_killed_sweeps_started_audit_rows_become_interrupted(db: SqliteRunner) -> None:
    db.conn.execute(
        "INSERT INTO lux_privacy_audit (ts, sweep_id, rule, status, count, bytes)"
        " VALUES (?, 'dead', 'accounts', 'started', 1, 0)",
        (NOW,),
    )
    await build(db, {}, Clock()).run(None, dry_run=True)
    assert db.query("SELECT status, count FROM lux_privacy_audit") == [("interrupted", 1)]


behaviours = st.sampled_from(["ok", "fail", "skip", "gone", "held"])


@settings(max_examples=50, deadline=None)
@given(
    plan=st.lists(behaviours, min_size=0, max_size=40),
    batch=st.integers(min_value=1, max_value=12),
    isolates=st.booleans(),
    dry_run=st.booleans(),
)
def test_every_candidate_is_accounted_for_whatever_the_items_do(
    plan: list[str],
    batch: int,
    isolates: bool,
    dry_run: bool,
) -> None:
    """Property: candidates == deleted + held + errors + skipped for any mix of items that
    delete, fail, are skipped, vanish or are held, in any batch size, dry or real."""
    runner = SqliteRunner(":memory:")
    apply_migrations(runner.conn.cursor(), "sqlite")
    runner.conn.execute("CREATE TABLE items (id TEXT PRIMARY KEY, user_id TEXT)")
    ids = [f"i{i:03d}" for i in range(len(plan))]
    runner.conn.executemany(
        "INSERT INTO items VALUES (?, ?)",
        [
            (i, "@held:lux.test" if b == "held" else "@a:lux.test")
            for i, b in zip(ids, plan, strict=True)
        ],
    )
    rule = ItemsRule(runner, isolates=isolates)
    rule.failing = {i for i, b in zip(ids, plan, strict=True) if b == "fail"}
    rule.skipping = {i: "avatar_in_use" for i, b in zip(ids, plan, strict=True) if b == "skip"}
    gone = {i for i, b in zip(ids, plan, strict=True) if b == "gone"}

    original = rule.delete

    async def delete_after_vanishing(
        ctx: SweepContext, items: Sequence[Candidate]
    ) -> DeleteOutcome:
        for c in items:
            if c.item_id in gone:
                runner.conn.execute("DELETE FROM items WHERE id = ?", (c.item_id,))
        return await original(ctx, items)

    rule.delete = delete_after_vanishing  # type: ignore[method-assign]
    holds = HoldStore(runner)
    drive(holds.place("h", "@held:lux.test", None, "case", "@admin:lux.test", NOW))
    report = drive(build(runner, {rule.name: rule}, Clock(), batch).run(None, dry_run))
    assert_balanced(report)
    result = report.results["attachments"]
    assert result.candidates == len(plan)
    assert result.held == plan.count("held")
    if not dry_run:
        assert result.errors == plan.count("fail")
        assert result.deleted == plan.count("ok")
        assert result.skipped_reasons.get("already_gone", 0) == plan.count("gone")
    runner.conn.close()
