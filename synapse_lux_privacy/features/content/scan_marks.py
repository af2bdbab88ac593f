"""What the messages and attachments rules already judged (R1, R2, R3), so that a sweep
with nothing due costs the same however much history is kept.

A pass of the messages rule judges every room with an old event; most of what it
leaves must stay (current state, a room's newest event, events under a longer
lifetime), and a later pass would read it all again. A pass of the attachments rule
likewise reads every old attachment event, expunged ones and held ones included, to
find those not expunged yet. Instead, each real pass that
runs to its end leaves a *mark*: the time it judged as of, the stream orderings
stored when it started (highest and lowest: backfilled events go below zero) and a
fingerprint of what it judged with (the lifetimes and the holds). The next pass then
only visits rooms (messages) or events (attachments) where something may have changed
since (``changes``):

- an event that has become due since: sent in ``[sent_before(mark), sent_before(now))``
  for one of the lifetimes;
- an event stored since (new messages, state changes that make old state no longer
  current, new events behind an expunged newest one, backfill);
- an item that failed (``lux_privacy_failures``: retried at later sweeps).

Anything else (other lifetimes or holds, a time before the mark, no mark yet, a last
full pass more than a day old) makes the pass judge everything again. Dry runs judge
everything and leave no mark. A mark remembers the time of the full pass its chain
started from, so that sweeps more frequent than daily (the default ``sweep_interval``
is an hour) still make a full pass each day.

Why a daily full pass: an event's age counts from the earlier of its claimed time and
its arrival (``events.age_ts_sql``), and Synapse has no index on the arrival time. A
remote event dated after its arrival becomes due by its arrival, which the time
windows (on ``origin_server_ts``) do not see; the daily full pass finds it, at most a
day after its limit.
"""

import hashlib
import json
from collections.abc import Iterable, Sequence

import attrs
from synapse.module_api import ModuleApi

from synapse_lux_privacy.db import Cursor, DbRunner
from synapse_lux_privacy.features.content.policy import ContentPolicy, sent_before
from synapse_lux_privacy.store.holds import HoldSet
from synapse_lux_privacy.sweep.rule import SweepContext
from synapse_lux_privacy.synapse_adapter import events
from synapse_lux_privacy.units import DAY_MS

# A mark older than this (in the sweeps' own "as of" time) is not trusted: the pass
# judges every room again (see the module docstring).
FULL_PASS_AFTER_MS = DAY_MS

MIGRATIONS: Sequence[str] = (
    # One row per (rule, kind): kind 'done' is the last pass that ran to its end,
    # 'pass' the one running (promoted to 'done' when it ends).
    """
    CREATE TABLE IF NOT EXISTS lux_privacy_scan_marks (
        rule TEXT NOT NULL,
        kind TEXT NOT NULL,
        as_of BIGINT NOT NULL,
        max_stream BIGINT NOT NULL,
        min_stream BIGINT NOT NULL,
        fingerprint TEXT NOT NULL,
        PRIMARY KEY (rule, kind)
    )
    """,
    # The last full pass's time, so that passes more frequent than daily still make a
    # full one each day.
    "ALTER TABLE lux_privacy_scan_marks ADD COLUMN full_as_of BIGINT",
)

FINISHED, RUNNING = "done", "pass"


@attrs.frozen
class ScanMark:
    as_of: int
    max_stream: int
    min_stream: int
    fingerprint: str
    # The "as of" time of the last full pass this mark's chain of passes started from
    # (None on marks left before the column existed: the next pass is a full one).
    full_as_of: int | None


def fingerprint(policy: ContentPolicy, holds: HoldSet) -> str:
    """What a pass judged with: the lifetimes and the holds (R13)."""
    text = json.dumps(
        [repr(policy.retention), sorted(holds.user_ids), sorted(holds.room_ids)],
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()


def changes(
    mark: ScanMark, lifetimes: Iterable[int], as_of: int, event_ids: Iterable[str] = ()
) -> events.Changes:
    """What may have changed since the mark's pass (R1, R2, R3): events sent in the time
    ranges of those that have become due since, one per lifetime (``ts`` in
    ``[low, high)``), events stored since, and the ``event_ids`` given (failed items)."""
    windows = [
        (sent_before(mark.as_of, life), sent_before(as_of, life)) for life in sorted(lifetimes)
    ]
    return events.Changes(windows, mark.max_stream, mark.min_stream, frozenset(event_ids))


@attrs.frozen
class Failing:
    """A rule's items that failed and wait for a retry (``lux_privacy_failures``)."""

    rooms: frozenset[str]
    item_ids: frozenset[str]


class ScanMarks:
    """Reads and writes ``lux_privacy_scan_marks`` for one rule."""

    def __init__(self, api: ModuleApi, db: DbRunner, rule: str) -> None:
        self._api = api
        self._db = db
        self._rule = rule

    async def open(
        self, ctx: SweepContext, judged: str, first_page: bool
    ) -> tuple[ScanMark | None, Failing]:
        """The mark a page of a pass may start from, or None for a full pass; and the
        items waiting for a retry.

        A full pass: a dry run, no mark, other lifetimes or holds than ``judged``, a
        mark later than the sweep's time, or a last full pass more than a day before
        it (however often passes ran since). The first page of a real pass records the
        pass's own start."""
        mark, failing = await self._db("lux_privacy_scan_mark_read", self._read_txn)
        if (
            ctx.dry_run
            or mark is None
            or mark.fingerprint != judged
            or mark.as_of > ctx.as_of_ms
            or mark.full_as_of is None
            or ctx.as_of_ms - mark.full_as_of > FULL_PASS_AFTER_MS
        ):
            mark = None
        if first_page and not ctx.dry_run:
            bottom, top = await events.stream_bounds(self._api, self._db)
            full_as_of = ctx.as_of_ms if mark is None else mark.full_as_of
            start = ScanMark(ctx.as_of_ms, top, bottom, judged, full_as_of)
            await self._db("lux_privacy_scan_mark_start", self._start_txn, start)
        return mark, failing

    def _read_txn(self, cur: Cursor) -> tuple[ScanMark | None, Failing]:
        """The last finished pass's mark (if any), and this rule's failed items."""
        cur.execute(
            "SELECT as_of, max_stream, min_stream, fingerprint, full_as_of"
            " FROM lux_privacy_scan_marks WHERE rule = ? AND kind = ?",
            (self._rule, FINISHED),
        )
        row = cur.fetchone()
        mark = None
        if row is not None:
            full_as_of = None if row[4] is None else int(row[4])
            mark = ScanMark(int(row[0]), int(row[1]), int(row[2]), row[3], full_as_of)
        cur.execute(
            "SELECT item_id, room_id FROM lux_privacy_failures WHERE rule = ?", (self._rule,)
        )
        rows = cur.fetchall()
        rooms = frozenset(str(r[1]) for r in rows if r[1] is not None)
        return mark, Failing(rooms, frozenset(str(r[0]) for r in rows))

    def _start_txn(self, cur: Cursor, start: ScanMark) -> None:
        """Record the start of a real pass (the mark it leaves if it runs to its end)."""
        cur.execute(
            "DELETE FROM lux_privacy_scan_marks WHERE rule = ? AND kind = ?", (self._rule, RUNNING)
        )
        cur.execute(
            "INSERT INTO lux_privacy_scan_marks (rule, kind, as_of, max_stream, min_stream,"
            " fingerprint, full_as_of) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (self._rule, RUNNING, start.as_of, start.max_stream, start.min_stream,
             start.fingerprint, start.full_as_of),
        )  # fmt: skip

    async def finish_pass(self) -> None:
        """The running pass ran to its end: it becomes the mark later passes start from."""

        def txn(cur: Cursor) -> None:
            cur.execute(
                "SELECT 1 FROM lux_privacy_scan_marks WHERE rule = ? AND kind = ?",
                (self._rule, RUNNING),
            )
            if cur.fetchone() is None:
                return
            cur.execute(
                "DELETE FROM lux_privacy_scan_marks WHERE rule = ? AND kind = ?",
                (self._rule, FINISHED),
            )
            cur.execute(
                "UPDATE lux_privacy_scan_marks SET kind = ? WHERE rule = ? AND kind = ?",
                (FINISHED, self._rule, RUNNING),
            )

        await self._db("lux_privacy_scan_mark_finish", txn)
