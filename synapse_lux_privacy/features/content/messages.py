"""The messages rule (R1, R3, R6, R13): events go from the database at the end of their life.

Room by room (in room ID order), in batches of at most ``sweep_batch_size`` events:

1. *purge*: the room's oldest non-state events, as long as each one is due, was
   not sent by a user on legal hold and lies below the room's newest forward
   extremity (``planning.plan_prefix``), are removed with Synapse's purge history.
   With ``retention.purge_window`` (0 by default), a purge that takes an event that
   is due also takes those that fall due within the window ("at the latest", R1):
   an active room is then purged once per window rather than once per sweep.
   Their rows, JSON, edges, relations, search entries, push actions and
   redactions go. A held room is never purged (R13);
2. *expunge*: what is due but must stay as a row (the room's newest events, events
   above a held user's oldest one, events above one not due yet) loses its content
   through Synapse's event expiry;
3. *expunge* old state: state events that are no longer part of the room's current
   state (old names, topics, display names in memberships) lose their content the
   same way. Synapse's purge keeps every state event; the current state stays
   untouched, since the room needs it to work.

A pass that runs to its end leaves a mark (``scan_marks.py``): the next pass only
visits the rooms where something may have changed since, so that a sweep with nothing
due costs the same however much history is kept.

Each room's scan is one transaction, and the next page is found while the last one is
deleted (``lookahead.py``): the sweep's round trips to the database overlap. The rooms
a page lists are kept for the next pages of the pass (``_RoomList``), which take a few
rooms each: the rooms are listed once per ``batch_size`` rooms, not once per page.

Local and remote senders are treated alike (R6). Candidates carry the sender and
the room, so the orchestrator drops what a hold covers, with the holds it reads as
the batch is marked in flight (R13); a purge is planned again against the batch it
was given (``_purge``), so it never removes an event outside it: an event of a user
held after the page was listed stays, and so does everything above it. The items of
the batch that the purge does not reach are reported skipped (``purge_blocked``),
those it should have removed and did not, failed (``NotPurged``).
"""

import bisect
import functools
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence

import attrs
from synapse.module_api import ModuleApi

from synapse_lux_privacy.db import Cursor, DbRunner, Dialect
from synapse_lux_privacy.features.content import cursor, scan_marks
from synapse_lux_privacy.features.content.expunged import (
    EXPUNGE,
    Expunger,
    forget_txn,
    item_id,
    parse_item,
)
from synapse_lux_privacy.features.content.lookahead import Lookahead
from synapse_lux_privacy.features.content.planning import PrefixPlan, plan_prefix
from synapse_lux_privacy.features.content.policy import ContentPolicy, sent_before
from synapse_lux_privacy.store.holds import HoldSet
from synapse_lux_privacy.sweep.rule import (
    PURGE_BLOCKED,
    Candidate,
    CandidatePage,
    DeleteOutcome,
    SweepContext,
)
from synapse_lux_privacy.synapse_adapter import events
from synapse_lux_privacy.synapse_adapter.events import StoredEvent

logger = logging.getLogger(__name__)

PURGE = "purge"
# The error class of an item a purge that ran should have removed and did not.
NOT_PURGED = "NotPurged"

# Rooms of one batch purged at the same time: one. Ten at once (as Synapse's own
# retention jobs start every room at once) kept the database pool busy and the sweep
# fast, but made users' slowest requests ten times slower on this 2-core machine; one
# at a time took about as long and cost them 2.5 times (issue 22, benchmarks/README.md,
# "Invisible by default"), and leaves room for the pace's rest between purges.
PURGE_CONCURRENCY = 1

# Rows one page may read past without finding them due (old state that must stay,
# events under another lifetime), in batches: a page's cost stays bounded however much
# history is kept; the cursor resumes the scan where the page stopped.
SCAN_ROWS_PER_PAGE = 10

# Events expunged in one step (one transaction, then the pace's rest): about a purge's
# time, so that no step of a batch holds the database much longer than another
# (issue 22: a batch's expunges in one transaction took up to 0.12 s at 12.5k events).
EXPUNGE_STEP = 50

# The steps of one room's scan, in order.
WALK, NON_STATE, OLD_STATE, DONE = "walk", "non_state", "old_state", "done"


@attrs.frozen
class RoomScan:
    """Where a scan stands in a room: the step, the purge floor, the last event seen."""

    room_id: str
    step: str
    floor: int | None = None
    after: tuple[int, int] | None = None

    def encode(self) -> str:
        depth, stream = self.after if self.after is not None else (None, None)
        return cursor.encode(self.room_id, self.step, self.floor, depth, stream)

    @staticmethod
    def decode(value: str | None) -> "RoomScan | None":
        parts = cursor.decode(value)
        if parts is None:
            return None
        room_id, step, floor, depth, stream = parts
        return RoomScan(room_id, step, floor, None if depth is None else (depth, stream))


@attrs.frozen
class _RoomList:
    """Rooms to judge, listed in ID order after ``start`` for a pass (``key``: its time,
    dry run or not, holds); ``last``: no room after them is to be judged."""

    key: tuple[int, bool, HoldSet]
    start: str
    room_ids: list[str]
    last: bool

    def after(self, room_id: str) -> "_RoomList | None":
        """What is left of the list after ``room_id``, or None if it does not cover
        the rooms that follow ``room_id`` (listed from further on)."""
        if room_id < self.start:
            return None
        left = self.room_ids[bisect.bisect_right(self.room_ids, room_id) :]
        return _RoomList(self.key, room_id, left, self.last)


@attrs.define
class _Budget:
    """What is left of one page's allowance of rows read."""

    rows_left: int


def event_candidate(kind: str, event: StoredEvent) -> Candidate:
    return Candidate(item_id(kind, event.event_id), event.sender, event.room_id, event.size)


class MessagesRule:
    name = "messages"
    # A purge takes a room's whole batch at once: the rule reports a room it cannot
    # purge, or an event it cannot expunge, as failed items (``DeleteOutcome.failed``).
    isolates_failures = True

    def __init__(
        self,
        api: ModuleApi,
        db: DbRunner,
        dialect: Dialect,
        policy: ContentPolicy,
        expunger: Expunger,
    ) -> None:
        self._api = api
        self._db = db
        self._dialect = dialect
        self._policy = policy
        self._expunger = expunger
        self._marks = scan_marks.ScanMarks(api, db, self.name)
        self._ahead: Lookahead[tuple[SweepContext, HoldSet, str], CandidatePage] = Lookahead()
        self._listed: _RoomList | None = None

    async def find_candidates(
        self, ctx: SweepContext, holds: HoldSet, cursor: str | None
    ) -> CandidatePage:
        """The page after ``cursor``; in a real sweep whose steps do not rest
        (``ctx.look_ahead``), the next one is started at once (``lookahead.py``), so
        that it is found while the orchestrator deletes this one.

        The next page lies after this page's cursor: rooms after it, or the rest of its
        last room past the last event taken, which deleting this page leaves as it was.
        Taken only for the same sweep context, holds and cursor."""
        if cursor is None:
            self._ahead.drop()
            page = await self._page(ctx, holds, cursor)
        else:
            page = await self._ahead.take(
                (ctx, holds, cursor), lambda: self._page(ctx, holds, cursor)
            )
        following = page.next_cursor
        if following is not None and not ctx.dry_run and ctx.look_ahead:
            self._ahead.start((ctx, holds, following), lambda: self._page(ctx, holds, following))
        return page

    async def _page(self, ctx: SweepContext, holds: HoldSet, cursor: str | None) -> CandidatePage:
        items: list[Candidate] = []
        budget = _Budget(SCAN_ROWS_PER_PAGE * ctx.batch_size)
        scan = RoomScan.decode(cursor)
        if scan is not None and scan.step != DONE:
            scan = await self._scan_room(ctx, holds, scan, items, budget)
            if scan.step != DONE:
                return CandidatePage(items, scan.encode())
        rooms = await self._listed_rooms(
            ctx, holds, cursor is None, "" if scan is None else scan.room_id
        )
        for room_id in rooms.room_ids:
            scan = await self._scan_room(ctx, holds, RoomScan(room_id, WALK), items, budget)
            if scan.step != DONE or len(items) >= ctx.batch_size:
                return CandidatePage(items, scan.encode())
        if rooms.last or not rooms.room_ids:
            return CandidatePage(items, None)
        return CandidatePage(items, RoomScan(rooms.room_ids[-1], DONE).encode())

    async def _listed_rooms(
        self, ctx: SweepContext, holds: HoldSet, first_page: bool, after_room: str
    ) -> "_RoomList":
        """The rooms after ``after_room`` to judge (``_rooms``), from the list an earlier
        page of the same pass fetched while it lasts: a page of ``batch_size`` items
        takes a few rooms of the ``batch_size`` listed, and listing them again for each
        page cost the 1M dataset's sweep one query of about 0.3 s per page (issue 22,
        ``sweep_latency.py --sample``). A pass's first page always lists afresh."""
        listed = self._listed
        key = (ctx.as_of_ms, ctx.dry_run, holds)
        if not first_page and listed is not None and listed.key == key:
            left = listed.after(after_room)
            if left is not None and (left.room_ids or left.last):
                return left
        room_ids = await self._rooms(ctx, holds, first_page, after_room)
        self._listed = _RoomList(key, after_room, room_ids, len(room_ids) < ctx.batch_size)
        return self._listed

    async def _rooms(
        self, ctx: SweepContext, holds: HoldSet, first_page: bool, after_room: str
    ) -> list[str]:
        """The next rooms to judge: every room with an old event, or, after a pass that
        ran to its end with the same lifetimes and holds less than a day before, those
        changed since. A dry run judges every room, so that its forecast counts what is
        held too."""
        judged = scan_marks.fingerprint(self._policy, holds)
        mark, failing = await self._marks.open(ctx, judged, first_page)
        if mark is None:
            return await events.rooms_with_pending_events(
                self._db,
                sent_before(ctx.as_of_ms, self._policy.shortest_row_lifetime()),
                after_room,
                ctx.batch_size,
            )
        changed = await events.rooms_changed_since(
            self._db,
            scan_marks.changes(mark, self._policy.row_lifetimes(), ctx.as_of_ms),
            after_room,
            ctx.batch_size,
        )
        rooms = set(changed) | {r for r in failing.rooms if r > after_room}
        return sorted(rooms)[: ctx.batch_size]

    async def pass_completed(self, ctx: SweepContext) -> None:
        """The orchestrator's call after a real pass's last batch: leave the mark."""
        self._listed = None
        await self._marks.finish_pass()

    async def _scan_room(
        self,
        ctx: SweepContext,
        holds: HoldSet,
        scan: RoomScan,
        items: list[Candidate],
        budget: "_Budget",
    ) -> RoomScan:
        """Add the room's candidates to ``items`` until the batch is full or the page's
        budget of rows is spent; where it stopped.

        The room's steps run in one transaction: one round trip per room, whatever the
        number of queries (the page's scan is sequential, so round trips add up)."""
        scan, found, rows_read = await self._db(
            "lux_privacy_scan_room",
            self._scan_room_txn,
            ctx,
            holds,
            scan,
            ctx.batch_size - len(items),
            not items,
            budget.rows_left,
        )
        items.extend(found)
        budget.rows_left -= rows_read
        return scan

    def _scan_room_txn(
        self,
        cur: Cursor,
        ctx: SweepContext,
        holds: HoldSet,
        scan: RoomScan,
        room_left: int,
        whole_batch: bool,
        rows_left: int,
    ) -> tuple[RoomScan, list[Candidate], int]:
        """``_scan_room`` in a transaction: (where it stopped, the room's candidates, rows
        read). Pure apart from its reads, so a retried transaction does the same."""
        items: list[Candidate] = []
        budget = _Budget(rows_left)
        if scan.step == WALK:
            scan = self._walk(cur, ctx, holds, scan, items, room_left, whole_batch)
        while (
            scan.step in (NON_STATE, OLD_STATE) and len(items) < room_left and budget.rows_left > 0
        ):
            scan = self._old_events(cur, ctx, scan, items, room_left, budget)
        return scan, items, rows_left - budget.rows_left

    def _walk(
        self,
        cur: Cursor,
        ctx: SweepContext,
        holds: HoldSet,
        scan: RoomScan,
        items: list[Candidate],
        cap: int,
        whole_batch: bool,
    ) -> RoomScan:
        """Step 1: the purgeable prefix of the room's history. A batch's first room may
        take up to ``whole_room_size`` events, beyond the pace's smaller batch: a purge
        costs about as much for 2 events as for 200 (issue 22), so the pace's back-off
        never splits a room's purge in two."""
        if whole_batch:
            cap = max(cap, ctx.whole_room_size)
        extremity = events.max_extremity_depth_txn(cur, scan.room_id)
        if scan.room_id in holds.room_ids or extremity is None:
            return RoomScan(scan.room_id, NON_STATE)
        oldest = events.oldest_non_state_events_txn(
            cur, self._dialect, scan.room_id, scan.after, cap + 1
        )

        def planned(may_go: Callable[[StoredEvent], bool]) -> PrefixPlan[StoredEvent]:
            return plan_prefix(
                oldest,
                cap,
                extremity,
                lambda e: e.sender in holds.user_ids or not may_go(e),
                whole_batch=whole_batch,
            )

        plan = planned(lambda e: self._row_purgeable(e, ctx))
        if (
            scan.after is None
            and plan.prefix
            and not any(self._row_due(e, ctx) for e in plan.prefix)
        ):
            # Nothing due in what the purge window would take: nothing goes early for a
            # purge that takes nothing due (R1); the plan is the one without a window,
            # which takes nothing either, and stops at the first event that is not due.
            plan = planned(lambda e: self._row_due(e, ctx))
        items.extend(event_candidate(PURGE, e) for e in plan.prefix)
        if plan.floor is None:
            # A full batch: the walk goes on after it, or (nothing fitted in what other
            # rooms left) starts here in the next batch.
            return scan if not plan.prefix else attrs.evolve(scan, after=plan.prefix[-1].position)
        return RoomScan(scan.room_id, NON_STATE, plan.floor)

    def _old_events(
        self,
        cur: Cursor,
        ctx: SweepContext,
        scan: RoomScan,
        items: list[Candidate],
        cap: int,
        budget: "_Budget",
    ) -> RoomScan:
        """Steps 2 and 3: due events the purge keeps, to expunge."""
        state = scan.step == OLD_STATE
        while True:
            rows = events.old_room_events_txn(
                cur,
                self._dialect,
                scan.room_id,
                state,
                sent_before(ctx.as_of_ms, self._policy.shortest_row_lifetime()),
                None if state else scan.floor,
                scan.after,
                ctx.batch_size,
            )
            for event in rows:
                if self._row_due(event, ctx):
                    items.append(event_candidate(EXPUNGE, event))
                    if len(items) >= cap:
                        return attrs.evolve(scan, after=event.position)
            budget.rows_left -= len(rows)
            if len(rows) < ctx.batch_size:
                return RoomScan(scan.room_id, DONE if state else OLD_STATE, scan.floor)
            scan = attrs.evolve(scan, after=rows[-1].position)
            if budget.rows_left <= 0:
                return scan

    def _row_due(self, event: StoredEvent, ctx: SweepContext) -> bool:
        return self._policy.row_due(event.type, event.msgtype, event.age_ts, ctx.as_of_ms)

    def _row_purgeable(self, event: StoredEvent, ctx: SweepContext) -> bool:
        return self._policy.row_purgeable(event.type, event.msgtype, event.age_ts, ctx.as_of_ms)

    async def delete(self, ctx: SweepContext, items: Sequence[Candidate]) -> DeleteOutcome:
        purges: dict[str, list[Candidate]] = defaultdict(list)
        expunges: list[Candidate] = []
        for item in items:
            kind, _ = parse_item(item)
            if kind == PURGE and item.room_id is not None:
                purges[item.room_id].append(item)
            else:
                expunges.append(item)
        deleted: list[Candidate] = []
        failed: dict[str, str] = {}
        skipped: dict[str, str] = {}
        purged: list[Candidate] = []  # of the rooms Synapse purged: checked afterwards

        async def purge(room_id: str) -> None:
            batch = purges[room_id]
            try:
                reached, blocked = await ctx.step(
                    len(batch), functools.partial(self._purge, room_id, batch)
                )
                purged.extend(reached)
                skipped.update((c.item_id, PURGE_BLOCKED) for c in blocked)
            except Exception as error:
                # One room Synapse cannot purge must not hold up every other room: its
                # items are failures, retried at a later sweep.
                logger.exception("lux_privacy: purge of %s failed; continuing", room_id)
                failed.update((c.item_id, type(error).__name__) for c in batch)

        async def expunge(part: Sequence[Candidate]) -> None:
            done, errors = await ctx.step(
                len(part), functools.partial(self._expunger.expunge_each, self.name, part)
            )
            deleted.extend(done)
            failed.update(errors)

        # The expunges touch only rows the purges keep (events at or above each room's
        # purge floor, old state): they go first, EXPUNGE_STEP at a time, then the
        # purges; each step is followed by the pace's rest.
        for start in range(0, len(expunges), EXPUNGE_STEP):
            await expunge(expunges[start : start + EXPUNGE_STEP])
        await events.concurrently(purge, sorted(purges), PURGE_CONCURRENCY)
        if purged:
            by_event = {parse_item(c)[1]: c for c in purged}
            gone = set(await self._db("lux_privacy_purged", _purged_txn, list(by_event)))
            deleted.extend(c for event_id, c in by_event.items() if event_id in gone)
            failed.update((c.item_id, NOT_PURGED) for e, c in by_event.items() if e not in gone)
        return DeleteOutcome(deleted=deleted, failed=failed, skipped=skipped)

    async def _purge(
        self, room_id: str, batch: Sequence[Candidate]
    ) -> tuple[list[Candidate], list[Candidate]]:
        """Purge the room up to this batch, never past an event outside it: the items of
        the batch still stored that the purge was run for (the caller checks, for the
        whole batch in one transaction, that they are gone), and those it did not reach
        (an older event that must stay lies below them, or no purge ran at all). Items
        no longer stored are in neither: they were already gone.

        Raises when Synapse's purge fails; what it did purge before failing is
        still reported by the next sweep's candidates (those events are gone)."""
        by_event = {parse_item(c)[1]: c for c in batch}
        bounds = await events.purge_bounds(self._db, room_id, list(by_event))
        before, extremity = bounds.positions, bounds.extremity
        stored = [by_event[event_id] for event_id in before]
        if not before or extremity is None:
            return [], stored
        point = max(depth for depth, _ in before.values()) + 1
        outside = [depth for event_id, depth in bounds.below.items() if event_id not in by_event]
        point = min([point, extremity, *outside])
        reached = [by_event[event_id] for event_id, (depth, _) in before.items() if depth < point]
        if not reached:
            return [], stored
        stream = max(stream for _, stream in before.values())
        await events.purge_history(self._api, room_id, point, stream)
        # One line per purge: how often each room is purged can be read from the log.
        logger.info("lux_privacy: purged %s below depth %d", room_id, point)
        tried = {c.item_id for c in reached}
        return reached, [c for c in stored if c.item_id not in tried]


def _purged_txn(cur: Cursor, event_ids: Sequence[str]) -> list[str]:
    """Which of these events are gone after a purge; the records of those that had been
    expunged go with them (one transaction)."""
    stored = events.positions_txn(cur, event_ids)
    gone = [event_id for event_id in event_ids if event_id not in stored]
    if gone:
        forget_txn(cur, gone)
    return gone
