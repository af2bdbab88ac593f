"""The attachments rule's scan marks (R2, R13): after a pass that ran to its end, later
passes read only the attachment events that may have changed, and still take each one
that became due, over a fake Synapse.

The adapter's query (``events.old_attachment_events``) is replaced by an in-memory model
of the events table that follows the query's definitions, and counts the rows the
database would read: every old attachment event on a full pass, only the changed ones
with ``changes``. Time: events carry explicit timestamps and each sweep an explicit
"as of"; no clock.
"""

from collections.abc import Sequence

import attrs
import pytest
import pytest_twisted

from synapse_lux_privacy.config import parse_config
from synapse_lux_privacy.features.content import ContentFeature, attachments, scan_marks
from synapse_lux_privacy.features.content.attachments import AttachmentsRule
from synapse_lux_privacy.features.content.expunged import Expunger, parse_item
from synapse_lux_privacy.features.content.policy import ContentPolicy
from synapse_lux_privacy.store.holds import HoldSet
from synapse_lux_privacy.store.schema import MIGRATIONS, apply_migrations
from synapse_lux_privacy.sweep.rule import Candidate, SweepContext
from synapse_lux_privacy.synapse_adapter.events import Changes, StoredEvent
from synapse_lux_privacy.units import DAY_MS, HOUR_MS, MONTH_MS
from tests.unit.sqlite_runner import SqliteRunner

OLD = 1_000_000_000_000
AS_OF = OLD + 12 * MONTH_MS + DAY_MS
FRESH = AS_OF - DAY_MS


class FakeSynapse:
    """Attachment events, and what the rule's one query over them reads."""

    def __init__(self) -> None:
        self.events: dict[str, StoredEvent] = {}
        self.expunged: set[str] = set()
        self.reads: list[tuple[Changes | None, int]] = []  # (changes, rows read) per query
        self._stream = 0

    def add(self, ts: int, received: int | None = None, sender: str = "@alice:x") -> str:
        self._stream += 1
        event_id = f"$image{self._stream}"
        age = ts if received is None else min(ts, received)
        self.events[event_id] = StoredEvent(
            event_id, "!room", sender, "m.room.message", "m.image", self._stream,
            self._stream, ts, 10, age,
        )  # fmt: skip
        return event_id

    def _changed(self, e: StoredEvent, changes: Changes) -> bool:
        return (
            any(low <= e.ts < high for low, high in changes.windows)
            or not changes.below_stream <= e.stream <= changes.above_stream
            or e.event_id in changes.event_ids
        )

    async def old_attachment_events(
        self, db: object, dialect: str, types: Sequence[str], before: int,
        after: tuple[int, int] | None, limit: int, changes: Changes | None = None,
    ) -> list[StoredEvent]:  # fmt: skip
        # What the database reads: every old one on a full pass (the index on
        # origin_server_ts walked to its end), only the changed ones otherwise.
        read = [e for e in self.events.values() if changes is None or self._changed(e, changes)]
        self.reads.append((changes, len(read)))
        rows = sorted(
            (e for e in read if e.age_ts < before and e.event_id not in self.expunged
             and (after is None or (e.ts, e.stream) > after)),
            key=lambda e: (e.ts, e.stream),
        )  # fmt: skip
        return rows[:limit]

    async def stream_bounds(self, api: object, db: object) -> tuple[int, int]:
        return 1, self._stream


class FakeExpunger(Expunger):
    """Synapse's expiry faked; the real ``expunge_each``."""

    def __init__(self, synapse: FakeSynapse) -> None:
        self.synapse = synapse

    async def expunge(self, rule: str, items: Sequence[Candidate]) -> list[Candidate]:
        self.synapse.expunged.update(parse_item(c)[1] for c in items)
        return list(items)


@pytest.fixture
def synapse(monkeypatch: pytest.MonkeyPatch) -> FakeSynapse:
    fake = FakeSynapse()
    monkeypatch.setattr(attachments.events, "old_attachment_events", fake.old_attachment_events)
    monkeypatch.setattr(scan_marks.events, "stream_bounds", fake.stream_bounds)

    async def no_media(*args: object) -> list[object]:
        return []

    async def no_held_media(*args: object) -> dict[str, str]:
        return {}

    async def no_avatars(*args: object) -> set[str]:
        return set()

    monkeypatch.setattr(attachments.media, "old_local_media", no_media)
    monkeypatch.setattr(attachments.media, "avatars_in_use", no_avatars)
    monkeypatch.setattr(attachments, "held_room_media", no_held_media)
    return fake


@attrs.define
class Sweeper:
    """What the orchestrator does for one rule: pages, hold filter, delete, then (a real
    pass having run to its end) ``pass_completed``."""

    synapse: FakeSynapse
    db: SqliteRunner
    rule: AttachmentsRule

    async def sweep(
        self, as_of: int, holds: HoldSet | None = None, dry_run: bool = False
    ) -> list[str]:
        """The events expunged (or, in a dry run, listed)."""
        holds = holds or HoldSet()
        self.synapse.reads.clear()
        ctx = SweepContext(as_of_ms=as_of, dry_run=dry_run, batch_size=3)
        taken: list[str] = []
        cursor = None
        while True:
            page = await self.rule.find_candidates(ctx, holds, cursor)
            eligible = [c for c in page.items if not holds.covers(c.user_id, c.room_id)]
            if dry_run:
                taken.extend(parse_item(c)[1] for c in eligible)
            elif eligible:
                deleted = (await self.rule.delete(ctx, eligible)).deleted
                taken.extend(parse_item(c)[1] for c in deleted)
            if page.next_cursor is None:
                if not dry_run:
                    await self.rule.pass_completed(ctx)
                return taken
            cursor = page.next_cursor

    @property
    def full_pass(self) -> bool:
        return any(changes is None for changes, _ in self.synapse.reads)

    @property
    def rows_read(self) -> int:
        return sum(read for _, read in self.synapse.reads)


@pytest.fixture
def sweeper(synapse: FakeSynapse) -> Sweeper:
    db = SqliteRunner(":memory:")
    apply_migrations(db.conn.cursor(), "sqlite", {**MIGRATIONS, **ContentFeature.migrations})
    policy = ContentPolicy(parse_config({}).retention)
    rule = AttachmentsRule(object(), db, "sqlite", policy, FakeExpunger(synapse))  # type: ignore[arg-type]
    return Sweeper(synapse, db, rule)


@pytest_twisted.ensureDeferred
async def test_r2_after_a_finished_pass_only_attachment_events_that_changed_are_read(
    synapse: FakeSynapse, sweeper: Sweeper
) -> None:
    """200 old attachment events expunged by a first (full) pass stay as rows; later
    passes read only what changed since the mark, and still take an event that became
    due with time alone (its time window) and an old one stored since (its stream)."""
    kept = [synapse.add(OLD) for _ in range(200)]
    later = synapse.add(OLD + DAY_MS + DAY_MS // 2)  # due half a day after AS_OF
    synapse.add(FRESH)

    assert sorted(await sweeper.sweep(AS_OF)) == sorted(kept)
    assert sweeper.full_pass and sweeper.rows_read >= 202

    assert await sweeper.sweep(AS_OF + DAY_MS // 2 + 1) == [later]
    assert not sweeper.full_pass and sweeper.rows_read == 1
    backfilled = synapse.add(OLD)  # stored after the mark, sent long before
    assert await sweeper.sweep(AS_OF + DAY_MS // 2 + 2) == [backfilled]
    assert not sweeper.full_pass and sweeper.rows_read == 1
    assert await sweeper.sweep(AS_OF + DAY_MS // 2 + 3) == []
    assert not sweeper.full_pass and sweeper.rows_read == 0


@pytest_twisted.ensureDeferred
async def test_r2_a_failed_event_is_read_again_by_the_next_pass(
    synapse: FakeSynapse, sweeper: Sweeper
) -> None:
    """An event the orchestrator recorded as failed (``lux_privacy_failures``) is named
    in the next pass's query, though nothing else about it changed."""
    synapse.add(OLD)
    failed = synapse.add(OLD)
    await sweeper.sweep(AS_OF)
    synapse.expunged.discard(failed)  # as if its expiry had failed
    sweeper.db.conn.execute(
        "INSERT INTO lux_privacy_failures (rule, item_id, user_id, room_id, first_ts,"
        " last_ts, attempts, error_class, next_retry_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ("attachments", f"expunge:{failed}", "@alice:x", "!room", AS_OF, AS_OF, 1, "E", AS_OF),
    )
    assert await sweeper.sweep(AS_OF + 1) == [failed]
    assert not sweeper.full_pass and sweeper.rows_read == 1


@pytest_twisted.ensureDeferred
async def test_r2_r13_other_holds_a_day_old_mark_or_a_dry_run_read_every_old_event(
    synapse: FakeSynapse, sweeper: Sweeper
) -> None:
    """The mark is trusted only for the same holds (R13: a released hold makes what it
    kept due), for a day after the last full pass however often sweeps run (an event
    dated after its arrival is aged by its arrival, which the time windows do not see:
    it goes at most a day late), and never in a dry run."""
    held = synapse.add(OLD)
    # Dated ten years ahead, received so that it is due from AS_OF + 3 on.
    future = synapse.add(AS_OF + 120 * MONTH_MS, received=OLD + DAY_MS + 3, sender="@bob:x")
    holds = HoldSet(user_ids=frozenset({"@alice:x"}))
    assert await sweeper.sweep(AS_OF, holds) == []
    assert sweeper.full_pass
    assert await sweeper.sweep(AS_OF + 1, holds) == [] and not sweeper.full_pass
    assert await sweeper.sweep(AS_OF + 2) == [held] and sweeper.full_pass

    assert await sweeper.sweep(AS_OF + 4, dry_run=True) == [future] and sweeper.full_pass
    # Sweeps every six hours: each leaves a mark, but the chain started from the full
    # pass at AS_OF + 2, and the first sweep more than a day after it is a full one.
    for hours in (0, 6, 12, 18, 23):
        assert await sweeper.sweep(AS_OF + 5 + hours * HOUR_MS) == []
        assert not sweeper.full_pass
    assert await sweeper.sweep(AS_OF + 2 + DAY_MS + 1) == [future] and sweeper.full_pass
