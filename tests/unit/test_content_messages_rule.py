"""The messages rule's paging, purge points and hold checks (R1, R3, R13) over a fake Synapse.

The adapter (``synapse_adapter.events``) is replaced by an in-memory model of the
events table that follows the same definitions (what a purge below a depth removes,
which events are state, current, expunged). Time: events carry explicit timestamps
and the sweep an explicit "as of"; no clock.
"""

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import attrs
import pytest
import pytest_twisted

from synapse_lux_privacy.config import parse_config
from synapse_lux_privacy.features.content import ContentFeature, messages
from synapse_lux_privacy.features.content.expunged import Expunger, item_id, parse_item
from synapse_lux_privacy.features.content.messages import MessagesRule
from synapse_lux_privacy.features.content.policy import ContentPolicy
from synapse_lux_privacy.store.failures import FailureStore
from synapse_lux_privacy.store.holds import HoldSet
from synapse_lux_privacy.store.schema import MIGRATIONS, apply_migrations
from synapse_lux_privacy.sweep.rule import PURGE_BLOCKED, Candidate, SweepContext
from synapse_lux_privacy.synapse_adapter.events import Changes, PurgeBounds, StoredEvent
from synapse_lux_privacy.units import DAY_MS, HOUR_MS, MONTH_MS
from tests.unit.orchestrators import assert_balanced, build
from tests.unit.sqlite_runner import SqliteRunner

T = TypeVar("T")
OLD = 1_000_000_000_000
AS_OF = OLD + 24 * MONTH_MS + DAY_MS
FRESH = AS_OF - DAY_MS


@attrs.define
class Row:
    event: StoredEvent
    state: bool = False
    current: bool = False


class FakeSynapse:
    """The events table and the three operations the rule asks of Synapse."""

    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}
        self.expunged: set[str] = set()
        self.purges: list[tuple[str, int, int]] = []  # (room, point, events removed)
        self._stream = 0

    def add(
        self, room: str, sender: str, depth: int, ts: int = OLD, state: bool = False,
        current: bool = False,
    ) -> str:  # fmt: skip
        self._stream += 1
        event_id = f"${room}-{self._stream}"
        event = StoredEvent(event_id, room, sender, "m.room.message", "m.text", depth,
                            self._stream, ts, 10, ts)  # fmt: skip
        self.rows[event_id] = Row(event, state, current)
        return event_id

    def _room(self, room: str) -> list[Row]:
        return sorted(
            (r for r in self.rows.values() if r.event.room_id == room),
            key=lambda r: r.event.position,
        )

    def extremity(self, room: str) -> int | None:
        depths = [r.event.depth for r in self._room(room)]
        return max(depths) if depths else None

    # -- the adapter's functions -----------------------------------------------------

    async def rooms_with_pending_events(
        self, db: object, before: int, after_room: str, limit: int
    ) -> list[str]:
        rooms = {
            r.event.room_id
            for r in self.rows.values()
            if r.event.age_ts < before and not r.current and r.event.room_id > after_room
            and (r.event.event_id not in self.expunged
                 or (not r.state and r.event.depth < (self.extremity(r.event.room_id) or 0)))
        }  # fmt: skip
        return sorted(rooms)[:limit]

    async def rooms_changed_since(
        self, db: object, changes: Changes, after_room: str, limit: int
    ) -> list[str]:
        rooms = {
            r.event.room_id
            for r in self.rows.values()
            if r.event.room_id > after_room
            and (any(low <= r.event.ts < high for low, high in changes.windows)
                 or not changes.below_stream <= r.event.stream <= changes.above_stream
                 or r.event.event_id in changes.event_ids)
        }  # fmt: skip
        return sorted(rooms)[:limit]

    async def stream_bounds(self, api: object, db: object) -> tuple[int, int]:
        return 1, self._stream

    def max_extremity_depth_txn(self, cur: object, room: str) -> int | None:
        return self.extremity(room)

    def oldest_non_state_events_txn(
        self, cur: object, dialect: str, room: str, after: tuple[int, int] | None, limit: int
    ) -> list[StoredEvent]:
        rows = [r.event for r in self._room(room) if not r.state]
        return [e for e in rows if after is None or e.position > after][:limit]

    def old_room_events_txn(
        self, cur: object, dialect: str, room: str, state: bool, before: int,
        min_depth: int | None, after: tuple[int, int] | None, limit: int,
    ) -> list[StoredEvent]:  # fmt: skip
        rows = [
            r.event for r in self._room(room)
            if r.state == state and not r.current and r.event.age_ts < before
            and r.event.event_id not in self.expunged
            and (state or min_depth is None or r.event.depth >= min_depth)
            and (after is None or r.event.position > after)
        ]  # fmt: skip
        return rows[:limit]

    def positions_txn(self, cur: object, ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        return {i: self.rows[i].event.position for i in ids if i in self.rows}

    async def purge_bounds(self, db: object, room: str, ids: Sequence[str]) -> PurgeBounds:
        positions = self.positions_txn(db, ids)
        extremity = self.extremity(room)
        if not positions or extremity is None:
            return PurgeBounds(positions, extremity, {})
        depth = max(d for d, _ in positions.values()) + 1
        below = {r.event.event_id: r.event.depth
                 for r in self._room(room) if not r.state and r.event.depth < depth}  # fmt: skip
        return PurgeBounds(positions, extremity, below)

    async def purge_history(self, api: object, room: str, depth: int, stream: int) -> None:
        assert depth <= (self.extremity(room) or 0), "Synapse refuses to purge past the extremity"
        gone = [i for i, r in self.rows.items()
                if r.event.room_id == room and not r.state and r.event.depth < depth]  # fmt: skip
        for event_id in gone:
            del self.rows[event_id]
        self.purges.append((room, depth, len(gone)))


class FakeExpunger(Expunger):
    """Synapse's expiry faked; the real ``expunge_each`` (batch, then one at a time)."""

    def __init__(self, synapse: FakeSynapse) -> None:
        self.synapse = synapse

    async def expunge(self, rule: str, items: Sequence[Candidate]) -> list[Candidate]:
        done = [c for c in items if parse_item(c)[1] in self.synapse.rows]
        self.synapse.expunged.update(parse_item(c)[1] for c in done)
        return done


@pytest.fixture
def synapse(monkeypatch: pytest.MonkeyPatch) -> FakeSynapse:
    fake = FakeSynapse()
    for name in (
        "rooms_with_pending_events",
        "max_extremity_depth_txn",
        "oldest_non_state_events_txn",
        "old_room_events_txn",
        "positions_txn",
        "purge_bounds",
        "purge_history",
        "rooms_changed_since",
        "stream_bounds",
    ):
        monkeypatch.setattr(messages.events, name, getattr(fake, name))  # fmt: skip
    return fake


def module_db() -> SqliteRunner:
    """The module's own tables (scan marks, failures) in memory."""
    runner = SqliteRunner(":memory:")
    apply_migrations(runner.conn.cursor(), "sqlite", {**MIGRATIONS, **ContentFeature.migrations})
    return runner


def rule(synapse: FakeSynapse, db: SqliteRunner | None = None) -> MessagesRule:
    policy = ContentPolicy(parse_config({}).retention)
    return MessagesRule(object(), db or module_db(), "sqlite", policy, FakeExpunger(synapse))  # type: ignore[arg-type]


async def run(
    synapse: FakeSynapse,
    holds: HoldSet,
    dry_run: bool,
    batch: int = 3,
    r: MessagesRule | None = None,
    as_of: int = AS_OF,
    whole_room: int = 0,
) -> tuple[list[Candidate], list[Candidate]]:
    """What the orchestrator does: pages, hold filter, delete, then (a real pass having
    run to its end) ``pass_completed``; (candidates, deleted)."""
    r = r or rule(synapse)
    ctx = SweepContext(
        as_of_ms=as_of, dry_run=dry_run, batch_size=batch, whole_room_size=whole_room
    )
    seen: list[Candidate] = []
    deleted: list[Candidate] = []
    cursor = None
    while True:
        page = await r.find_candidates(ctx, holds, cursor)
        assert len(page.items) <= max(batch, whole_room)
        seen.extend(page.items)
        eligible = [c for c in page.items if not holds.covers(c.user_id, c.room_id)]
        if not dry_run and eligible:
            deleted.extend((await r.delete(ctx, eligible)).deleted)
        if page.next_cursor is None:
            if not dry_run:
                await r.pass_completed(ctx)
            return seen, deleted
        cursor = page.next_cursor


def world(synapse: FakeSynapse) -> dict[str, list[str]]:
    """Room A: 7 old messages, a held user's, 2 more, a fresh one. Room B (to be held): 3 old,
    1 fresh. Room C: an old replaced name (state), the current one, a fresh message."""
    a = [synapse.add("A", "@alice:x", d) for d in range(1, 8)]
    bob = [synapse.add("A", "@bob:x", 8)]
    a_after = [synapse.add("A", "@alice:x", d) for d in (9, 10)]
    synapse.add("A", "@alice:x", 11, ts=FRESH)
    b = [synapse.add("B", "@alice:x", d) for d in (1, 2, 3)]
    synapse.add("B", "@alice:x", 4, ts=FRESH)
    old_name = [synapse.add("C", "@alice:x", 1, state=True)]
    synapse.add("C", "@alice:x", 2, state=True, current=True)
    synapse.add("C", "@alice:x", 3, ts=FRESH)
    return {"purge": a, "bob": bob, "after": a_after, "held_room": b, "old_name": old_name}


HOLDS = HoldSet(user_ids=frozenset({"@bob:x"}), room_ids=frozenset({"B"}))


def ids(candidates: list[Candidate], kind: str | None = None) -> list[str]:
    return [parse_item(c)[1] for c in candidates if kind is None or parse_item(c)[0] == kind]


@pytest_twisted.ensureDeferred
async def test_r1_r13_a_dry_run_lists_each_due_event_once_in_bounded_pages(
    synapse: FakeSynapse,
) -> None:
    w = world(synapse)
    seen, deleted = await run(synapse, HOLDS, dry_run=True)
    assert deleted == [] and synapse.purges == [] and synapse.expunged == set()
    assert len(ids(seen)) == len(set(ids(seen)))
    assert ids(seen, "purge") == w["purge"]
    assert sorted(ids(seen, "expunge")) == sorted(w["bob"] + w["after"] + w["held_room"]
                                                  + w["old_name"])  # fmt: skip


@pytest_twisted.ensureDeferred
async def test_r13_a_real_sweep_deletes_what_the_dry_run_counted_and_nothing_held(
    synapse: FakeSynapse,
) -> None:
    w = world(synapse)
    forecast, _ = await run(synapse, HOLDS, dry_run=True)
    seen, deleted = await run(synapse, HOLDS, dry_run=False)
    assert ids(seen) == ids(forecast)
    eligible = [c for c in forecast if not HOLDS.covers(c.user_id, c.room_id)]
    assert sorted(ids(deleted)) == sorted(ids(eligible))
    # Purged in batches of at most 3, never past bob's event (depth 8).
    assert [n for _, _, n in synapse.purges] == [3, 3, 1]
    assert all(point <= 8 for room, point, _ in synapse.purges if room == "A")
    for event_id in w["bob"] + w["held_room"]:
        assert event_id in synapse.rows and event_id not in synapse.expunged
    assert set(w["after"] + w["old_name"]) <= synapse.expunged
    again, _ = await run(synapse, HOLDS, dry_run=True)
    eligible_again = [c for c in again if not HOLDS.covers(c.user_id, c.room_id)]
    assert eligible_again == []


@pytest_twisted.ensureDeferred
async def test_r1_once_the_hold_is_released_the_rest_of_the_history_goes(
    synapse: FakeSynapse,
) -> None:
    w = world(synapse)
    await run(synapse, HOLDS, dry_run=False)
    await run(synapse, HoldSet(), dry_run=False)
    for event_id in w["purge"] + w["bob"] + w["after"] + w["held_room"]:
        assert event_id not in synapse.rows
    assert w["old_name"][0] in synapse.expunged  # state stays, as an empty shell


@pytest_twisted.ensureDeferred
async def test_r1_a_room_is_purged_once_when_it_does_not_fit_what_is_left_of_a_batch(
    synapse: FakeSynapse,
) -> None:
    """Issue 22: rooms X and Y with 2 due events each, batches of 3: Y does not fit in
    what X left and waits, whole, for the next batch; each room is purged once."""
    for room in ("X", "Y"):
        for depth in (1, 2):
            synapse.add(room, "@alice:x", depth)
        synapse.add(room, "@alice:x", 3, ts=FRESH)
    _, deleted = await run(synapse, HoldSet(), dry_run=False)
    assert len(deleted) == 4
    assert [(room, n) for room, _, n in synapse.purges] == [("X", 2), ("Y", 2)]


@pytest_twisted.ensureDeferred
async def test_r1_the_pace_s_smaller_batches_never_split_a_room_s_purge(
    synapse: FakeSynapse,
) -> None:
    """Issue 22: with the adaptive pace's batch of 3 and ``sweep_batch_size`` 10, a room
    with 7 due events is purged in one purge, as its batch's first room (without the
    allowance, ``whole_room_size`` 0, it takes three: the test above)."""
    for depth in range(1, 8):
        synapse.add("A", "@alice:x", depth)
    synapse.add("A", "@alice:x", 8, ts=FRESH)
    _, deleted = await run(synapse, HoldSet(), dry_run=False, batch=3, whole_room=10)
    assert len(deleted) == 7
    assert [(room, n) for room, _, n in synapse.purges] == [("A", 7)]


@pytest_twisted.ensureDeferred
async def test_a_purge_never_removes_an_event_outside_its_batch(synapse: FakeSynapse) -> None:
    """An old event that arrives between planning and deleting (a backfill, say) lowers the
    purge point instead of being purged unseen."""
    planned = [synapse.add("A", "@alice:x", d) for d in (5, 6, 7)]
    synapse.add("A", "@alice:x", 9, ts=FRESH)
    r = rule(synapse)
    ctx = SweepContext(as_of_ms=AS_OF, dry_run=False, batch_size=10)
    page = await r.find_candidates(ctx, HoldSet(), None)
    assert ids(page.items, "purge") == planned
    late = synapse.add("A", "@carol:x", 6)
    outcome = await r.delete(ctx, page.items)
    assert ids(outcome.deleted) == planned[:1]
    assert late in synapse.rows and planned[1] in synapse.rows
    # What the purge did not reach is skipped with its reason, not left "already gone".
    blocked = {c.item_id for c in page.items if parse_item(c)[1] in planned[1:]}
    assert outcome.skipped == dict.fromkeys(blocked, PURGE_BLOCKED)


@pytest_twisted.ensureDeferred
async def test_r1_a_batch_whose_purge_cannot_run_is_skipped_purge_blocked_not_already_gone(
    synapse: FakeSynapse,
) -> None:
    """Issue 25, through the real orchestrator: the room's oldest event waits out a retry
    backoff, so it is left out of the batch and the purge of the events above it cannot
    run. They are skipped ``purge_blocked`` and keep their failure records; the engine
    used to book them ``already_gone`` (0 deleted, 0 failed, items still stored) and
    forget their failures. Time: the orchestrator's clock is the sweep's "as of"; the
    oldest event failed twice just now, another one once a day earlier (its retry due)."""
    oldest = synapse.add("A", "@alice:x", 1)
    rest = [synapse.add("A", "@alice:x", d) for d in (2, 3, 4)]
    synapse.add("A", "@alice:x", 5, ts=FRESH)
    db = module_db()
    failures = FailureStore(db)

    def candidate(event_id: str) -> Candidate:
        return Candidate(item_id(messages.PURGE, event_id), "@alice:x", "A")

    for _ in range(2):  # two failures in a row: an hour's backoff
        await failures.record("messages", {candidate(oldest): "OperationalError"}, AS_OF)
    await failures.record("messages", {candidate(rest[0]): "OperationalError"}, AS_OF - DAY_MS)
    sweep = build(db, {"messages": rule(synapse, db)}, lambda: AS_OF, batch_size=10)
    report = await sweep.run(AS_OF, dry_run=False, rule_names=["messages"])
    result = report.results["messages"]
    assert (result.deleted, result.errors) == (0, 0)
    assert result.skipped_reasons == {"retry_backoff": 1, PURGE_BLOCKED: 3}
    assert_balanced(report)
    assert {oldest, *rest} <= set(synapse.rows) and synapse.purges == []
    kept = {f.item_id for f in await failures.list_failures(10)}
    assert kept == {candidate(oldest).item_id, candidate(rest[0]).item_id}


@pytest_twisted.ensureDeferred
async def test_r1_an_event_that_cannot_be_expunged_fails_alone(synapse: FakeSynapse) -> None:
    """Expunges go in one transaction per batch; when it fails, the batch is retried one
    event at a time, so that only the faulty event is reported failed (and retried later)."""
    kept = [synapse.add("A", f"@u{i}:x", 1) for i in range(3)]  # a fork: no purge, expunges
    bad = kept[1]
    r = rule(synapse)
    calls: list[int] = []
    original = r._expunger.expunge

    async def failing(rule_name: str, items: Sequence[Candidate]) -> list[Candidate]:
        calls.append(len(items))
        if any(parse_item(c)[1] == bad for c in items):
            raise RuntimeError("cannot prune")
        return await original(rule_name, items)

    r._expunger.expunge = failing  # type: ignore[method-assign]
    ctx = SweepContext(as_of_ms=AS_OF, dry_run=False, batch_size=10)
    page = await r.find_candidates(ctx, HoldSet(), None)
    assert sorted(ids(page.items, "expunge")) == sorted(kept)
    outcome = await r.delete(ctx, page.items)
    assert calls == [3, 1, 1, 1]
    assert sorted(ids(list(outcome.deleted))) == sorted(set(kept) - {bad})
    assert list(outcome.failed) == [f"expunge:{bad}"]
    assert synapse.expunged == set(kept) - {bad}


def pages_found(r: MessagesRule, monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The cursors of the pages the rule finds from now on, in order (its ``_page``)."""
    found: list[str | None] = []
    original = r._page

    async def counting(ctx: SweepContext, holds: HoldSet, cursor: str | None) -> object:
        found.append(cursor)
        return await original(ctx, holds, cursor)

    monkeypatch.setattr(r, "_page", counting)
    return found


@pytest_twisted.ensureDeferred
async def test_r1_a_batch_s_expunges_go_in_steps_each_followed_by_the_pace_s_rest(
    synapse: FakeSynapse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 22: a batch's expunges run ``EXPUNGE_STEP`` at a time, each a step of the
    pace (``ctx.step``, which rests after it), before the purges: no step holds the
    database for all of a batch's expunges at once."""
    kept = [synapse.add("A", f"@u{i}:x", 1) for i in range(5)]  # a fork: no purge, expunges
    for depth in (1, 2):
        synapse.add("B", "@alice:x", depth)
    synapse.add("B", "@alice:x", 3, ts=FRESH)
    monkeypatch.setattr(messages, "EXPUNGE_STEP", 2)
    steps: list[int] = []

    async def step(items: int, work: Callable[[], Awaitable[T]]) -> T:
        steps.append(items)
        return await work()

    ctx = SweepContext(as_of_ms=AS_OF, dry_run=False, batch_size=10, step=step)
    r = rule(synapse)
    page = await r.find_candidates(ctx, HoldSet(), None)
    outcome = await r.delete(ctx, page.items)
    assert steps == [2, 2, 1, 2]  # the expunges in three steps, then B's purge
    assert synapse.expunged == set(kept) and len(outcome.deleted) == 7


@pytest_twisted.ensureDeferred
async def test_r1_without_look_ahead_only_the_page_asked_for_is_found(
    synapse: FakeSynapse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 22: when the sweep's steps rest (``ctx.look_ahead`` false), the next page is
    not found beside the deletion of this one (it would add to what users' requests
    meet during a step); it is found when asked for."""
    for room in ("A", "B"):
        for depth in (1, 2):
            synapse.add(room, "@alice:x", depth)
        synapse.add(room, "@alice:x", 3, ts=FRESH)
    r = rule(synapse)
    found = pages_found(r, monkeypatch)
    ctx = SweepContext(as_of_ms=AS_OF, dry_run=False, batch_size=2, look_ahead=False)
    page = await r.find_candidates(ctx, HoldSet(), None)
    assert page.next_cursor is not None and found == [None]
    following = await r.find_candidates(ctx, HoldSet(), page.next_cursor)
    assert found == [None, page.next_cursor] and ids(following.items, "purge")


@pytest_twisted.ensureDeferred
async def test_r1_a_fork_reached_late_in_a_batch_is_purged_in_the_next_one(
    synapse: FakeSynapse,
) -> None:
    """A room whose oldest depth (a fork of three concurrent sends) does not fit in what an
    earlier room left of the batch starts the next batch: its rows are purged in this sweep,
    not only expunged until the next one."""
    old_a = [synapse.add("A", "@alice:x", d) for d in (1, 2)]
    newest_a = synapse.add("A", "@alice:x", 3)
    fork = [synapse.add("B", f"@u{i}:x", 1) for i in range(3)]
    synapse.add("B", "@alice:x", 2, ts=FRESH)
    _, deleted = await run(synapse, HoldSet(), dry_run=False, batch=4)
    assert ids(deleted, "expunge") == [newest_a]
    assert ids(deleted, "purge") == old_a + fork
    assert [(room, n) for room, _, n in synapse.purges] == [("A", 2), ("B", 3)]
    assert not set(fork) & set(synapse.rows)


@pytest_twisted.ensureDeferred
async def test_r1_a_page_reads_a_bounded_number_of_rows_that_are_not_due(
    synapse: FakeSynapse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """200 old state rows under a longer lifetime than the shortest one: each page reads
    at most SCAN_ROWS_PER_PAGE batches of them and hands back a cursor, instead of one
    call reading the room's whole history (issue #11: bounded find_candidates)."""
    for depth in range(200):
        synapse.add("A", "@alice:x", depth, ts=AS_OF - 12 * MONTH_MS, state=True)
    synapse.add("A", "@alice:x", 300, ts=FRESH, current=True)
    read: list[int] = []
    original = synapse.old_room_events_txn

    def counting(*args: object) -> list[StoredEvent]:
        rows = original(*args)  # type: ignore[arg-type]
        read[-1] += len(rows)
        return rows

    monkeypatch.setattr(messages.events, "old_room_events_txn", counting)
    config = parse_config(
        {"retention": {"rules": [{"match": {"msgtype": "m.video"}, "lifetime": "6M"}]}}
    )
    r = MessagesRule(
        object(),  # type: ignore[arg-type]
        module_db(),
        "sqlite",
        ContentPolicy(config.retention),
        FakeExpunger(synapse),  # type: ignore[arg-type]
    )
    ctx = SweepContext(as_of_ms=AS_OF, dry_run=True, batch_size=3)
    cursor, pages = None, 0
    while True:
        read.append(0)
        page = await r.find_candidates(ctx, HoldSet(), cursor)
        pages += 1
        assert page.items == []
        assert read[-1] <= messages.SCAN_ROWS_PER_PAGE * 3 + 3
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sum(read) >= 200 and pages >= 200 // (messages.SCAN_ROWS_PER_PAGE * 3)


@pytest_twisted.ensureDeferred
async def test_r1_after_a_finished_pass_only_rooms_that_changed_are_judged(
    synapse: FakeSynapse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass that ran to its end leaves a mark: the next passes visit only rooms with an
    event that became due since (time window) or was stored since, and still take what
    became due; other holds, or a last full pass more than a day old (however often
    sweeps ran since), make the next pass judge every room again."""
    for room in ("!a", "!b", "!c"):
        synapse.add(room, "@u", 1, state=True, current=True)  # old current state: stays
    synapse.add("!a", "@u", 2)
    synapse.add("!a", "@u", 3, ts=FRESH)
    later = synapse.add("!b", "@u", 2, ts=OLD + DAY_MS + DAY_MS // 2)  # due half a day on
    synapse.add("!b", "@u", 3, ts=FRESH)
    visited: list[str] = []
    full: list[int] = []
    original, listing = synapse.max_extremity_depth_txn, synapse.rooms_with_pending_events

    def visiting(cur: object, room: str) -> int | None:
        visited.append(room)
        return original(cur, room)

    async def listing_all(db: object, before: int, after_room: str, limit: int) -> list[str]:
        full.append(before)
        return await listing(db, before, after_room, limit)

    monkeypatch.setattr(messages.events, "max_extremity_depth_txn", visiting)
    monkeypatch.setattr(messages.events, "rooms_with_pending_events", listing_all)
    r = rule(synapse)

    async def sweep(as_of: int, holds: HoldSet | None = None) -> list[str]:
        visited.clear()
        full.clear()
        _, deleted = await run(synapse, holds or HoldSet(), dry_run=False, r=r, as_of=as_of)
        return [parse_item(c)[1] for c in deleted]

    assert len(await sweep(AS_OF)) == 1 and set(visited) == {"!a"} and full
    assert await sweep(AS_OF + DAY_MS) == [later]
    assert set(visited) == {"!b"} and not full
    synapse.add("!c", "@u", 2, ts=AS_OF)
    assert await sweep(AS_OF + DAY_MS) == [] and set(visited) == {"!c"} and not full
    assert await sweep(AS_OF + DAY_MS) == [] and visited == [] and not full
    await sweep(AS_OF + DAY_MS, HoldSet(user_ids=frozenset({"@held"})))
    assert full
    await sweep(AS_OF + DAY_MS)
    assert full  # the holds changed back: a full pass, which leaves a new mark
    await sweep(AS_OF + 2 * DAY_MS)
    assert not full
    await sweep(AS_OF + 3 * DAY_MS + 1)
    assert full  # the mark is more than a day old
    for hours in (6, 12, 18, 23):  # sweeps more often than daily: each leaves a mark
        await sweep(AS_OF + 3 * DAY_MS + 1 + hours * HOUR_MS)
        assert not full
    await sweep(AS_OF + 4 * DAY_MS + 2)
    assert full  # the last full pass is more than a day old


@pytest_twisted.ensureDeferred
async def test_r1_r13_each_page_is_found_ahead_while_the_last_one_is_deleted(
    synapse: FakeSynapse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real sweep finds each page once, right after handing over the previous one (before
    it is deleted), and deletes exactly what a dry run counts; a page asked for with other
    holds than it was found with is found again."""
    w = world(synapse)
    forecast, _ = await run(synapse, HOLDS, dry_run=True)
    r = rule(synapse)
    found = pages_found(r, monkeypatch)
    seen, deleted = await run(synapse, HOLDS, dry_run=False, r=r)
    assert ids(seen) == ids(forecast)
    # One page more than the batches: the last batch ends at the end of a full list of
    # rooms, whose end a page past it finds (the list is kept from page to page).
    assert len(found) == len(set(found)) == len(seen) // 3 + 2
    eligible = [c for c in forecast if not HOLDS.covers(c.user_id, c.room_id)]
    assert sorted(ids(deleted)) == sorted(ids(eligible))
    assert not set(w["purge"]) & set(synapse.rows)

    ctx = SweepContext(as_of_ms=AS_OF, dry_run=False, batch_size=1)
    for depth in (20, 21, 22):
        synapse.add("A", "@alice:x", depth)
    found.clear()
    page = await r.find_candidates(ctx, HoldSet(), None)
    assert ids(page.items, "purge") and found == [None, page.next_cursor]  # the next, ahead
    held = HoldSet(user_ids=frozenset({"@alice:x", "@bob:x"}))
    again = await r.find_candidates(ctx, held, page.next_cursor)
    assert found[:3] == [None, page.next_cursor, page.next_cursor]  # found again
    assert not ids(again.items, "purge")


@pytest_twisted.ensureDeferred
async def test_r1_r13_a_pass_lists_each_room_once_and_still_takes_all_that_is_due(
    synapse: FakeSynapse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 22: a page takes a few of the ``batch_size`` rooms listed; the next pages
    take the rest of that list instead of listing again, so the rooms are listed once
    per ``batch_size`` rooms, not once per page, each listing starting where the last
    one ended; a dry run and the real pass still find every due event (a held room's as
    expunges, which the hold keeps); a pass with other holds lists afresh."""
    due: dict[str, list[str]] = {}
    for n in range(30):
        room = f"!r{n:02}"
        due[room] = [synapse.add(room, "@u:x", d) for d in (1, 2, 3)]
        synapse.add(room, "@u:x", 4, ts=FRESH)
    listed_after: list[str] = []
    listing = synapse.rooms_with_pending_events

    async def counting(db: object, before: int, after_room: str, limit: int) -> list[str]:
        listed_after.append(after_room)
        return await listing(db, before, after_room, limit)

    monkeypatch.setattr(messages.events, "rooms_with_pending_events", counting)
    held = HoldSet(room_ids=frozenset({"!r07"}))
    forecast, _ = await run(synapse, held, dry_run=True, batch=10)
    forecast_listings = list(listed_after)
    r = rule(synapse)
    found = pages_found(r, monkeypatch)
    listed_after.clear()
    seen, deleted = await run(synapse, held, dry_run=False, batch=10, r=r)
    assert ids(seen) == ids(forecast) and len(ids(seen)) == 90
    assert listed_after == forecast_listings == ["", "!r09", "!r19", "!r29"]
    assert len(found) > 2 * len(listed_after)  # without the list kept: one per page
    assert ids(deleted, "purge") == [i for room, e in due.items() if room != "!r07" for i in e]
    assert not ids(deleted, "expunge") and set(due["!r07"]) <= set(synapse.rows)
    listed_after.clear()
    other = HoldSet(room_ids=frozenset({"!r07", "!r08"}))
    await run(synapse, other, dry_run=True, batch=10)
    assert listed_after[0] == ""  # a new pass lists from the first room
