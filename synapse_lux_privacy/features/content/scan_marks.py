"""What the messages rule already judged (R1, R3), so that a sweep with nothing due costs
the same however much history is kept.

A pass of the messages rule judges every room with an old event; most of what it
leaves must stay (current state, a room's newest event, events under a longer
lifetime), and a later pass would read it all again. Instead, each real pass that
runs to its end leaves a *mark*: the time it judged as of, the stream orderings
stored when it started (highest and lowest: backfilled events go below zero) and a
fingerprint of what it judged with (the lifetimes and the holds). The next pass then
only visits rooms where something may have changed since (``ScanMark.windows``):

- an event that has become due since: sent in ``[sent_before(mark), sent_before(now))``
  for one of the lifetimes;
- an event stored since (new messages, state changes that make old state no longer
  current, new events behind an expunged newest one, backfill);
- an item that failed (``lux_privacy_failures``: retried at later sweeps).

Anything else (other lifetimes or holds, a time before the mark, no mark yet, a mark
more than a day old) makes the pass judge every room again. Dry runs judge every room
and leave no mark.

Why a daily full pass: an event's age counts from the earlier of its claimed time and
its arrival (``events.age_ts_sql``), and Synapse has no index on the arrival time. A
remote event dated after its arrival becomes due by its arrival, which the time
windows (on ``origin_server_ts``) do not see; the daily full pass finds it, at most a
day after its limit.
"""

import hashlib
import json
from collections.abc import Sequence

import attrs

from synapse_lux_privacy.db import Cursor, DbRunner
from synapse_lux_privacy.features.content.policy import ContentPolicy, sent_before
from synapse_lux_privacy.store.holds import HoldSet
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
)

FINISHED, RUNNING = "done", "pass"


@attrs.frozen
class ScanMark:
    as_of: int
    max_stream: int
    min_stream: int
    fingerprint: str


def fingerprint(policy: ContentPolicy, holds: HoldSet) -> str:
    """What a pass judged with: the lifetimes and the holds (R13)."""
    text = json.dumps(
        [repr(policy.retention), sorted(holds.user_ids), sorted(holds.room_ids)],
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()


def windows(policy: ContentPolicy, since: int, as_of: int) -> list[tuple[int, int]]:
    """The send-time ranges of events that have become due between two times, one per
    row lifetime (R1, R3): ``ts`` in ``[low, high)``."""
    lifetimes = sorted(
        {policy.retention.messages_ms, *(r.lifetime_ms for r in policy.retention.rules)}
    )
    return [(sent_before(since, life), sent_before(as_of, life)) for life in lifetimes]


class ScanMarks:
    """Reads and writes ``lux_privacy_scan_marks`` for one rule."""

    def __init__(self, db: DbRunner, rule: str) -> None:
        self._db = db
        self._rule = rule

    async def begin(self, start: ScanMark | None) -> tuple[ScanMark | None, set[str]]:
        """In one transaction: record the start of a real pass (``start``; None on later
        pages and in dry runs), and read the last finished pass's mark (if any) and the
        rooms of this rule's items that failed and wait for a retry."""

        def txn(cur: Cursor) -> tuple[ScanMark | None, set[str]]:
            if start is not None:
                cur.execute(
                    "DELETE FROM lux_privacy_scan_marks WHERE rule = ? AND kind = ?",
                    (self._rule, RUNNING),
                )
                cur.execute(
                    "INSERT INTO lux_privacy_scan_marks (rule, kind, as_of, max_stream,"
                    " min_stream, fingerprint) VALUES (?, ?, ?, ?, ?, ?)",
                    (self._rule, RUNNING, start.as_of, start.max_stream, start.min_stream,
                     start.fingerprint),
                )  # fmt: skip
            cur.execute(
                "SELECT as_of, max_stream, min_stream, fingerprint FROM lux_privacy_scan_marks"
                " WHERE rule = ? AND kind = ?",
                (self._rule, FINISHED),
            )
            row = cur.fetchone()
            mark = None if row is None else ScanMark(int(row[0]), int(row[1]), int(row[2]), row[3])
            cur.execute(
                "SELECT DISTINCT room_id FROM lux_privacy_failures WHERE rule = ?"
                " AND room_id IS NOT NULL",
                (self._rule,),
            )
            return mark, {str(r[0]) for r in cur.fetchall()}

        return await self._db("lux_privacy_scan_mark_begin", txn)

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
