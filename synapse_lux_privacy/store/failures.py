"""Items whose deletion failed (issue #11): retried at later sweeps with backoff.

One row per (rule, item): when it first and last failed, how many attempts, the
class of the last error. Never content: item IDs are the rules' own identifiers
(event IDs, media IDs, user IDs). A row goes when its item is deleted or no longer
a candidate at all (``forget``), and after ``audit.retention`` like the audit rows.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from synapse_lux_privacy.db import Cursor, DbRunner, chunks, placeholders
from synapse_lux_privacy.sweep.rule import Candidate

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

# Wait after the n-th failed attempt before the next one: the first retry comes with
# the next sweep, then less and less often, at least once a day.
BACKOFF_MS: tuple[int, ...] = (0, HOUR_MS, 4 * HOUR_MS, 12 * HOUR_MS, DAY_MS)


def next_retry(last_ts: int, attempts: int) -> int:
    """When an item that failed ``attempts`` times in a row may be tried again."""
    return last_ts + BACKOFF_MS[min(attempts, len(BACKOFF_MS)) - 1]


@attrs.frozen
class Failure:
    rule: str
    item_id: str
    user_id: str | None
    room_id: str | None
    first_ts: int
    last_ts: int
    attempts: int
    error_class: str
    next_retry_ts: int

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


class FailureStore:
    """Reads and writes ``lux_privacy_failures``."""

    def __init__(self, run: DbRunner) -> None:
        self._run = run

    async def waiting(self, rule: str, item_ids: Sequence[str], now_ms: int) -> set[str]:
        """Those of ``item_ids`` still in their backoff after a failure."""

        def txn(cur: Cursor) -> set[str]:
            found: set[str] = set()
            for part in chunks(item_ids):
                cur.execute(
                    "SELECT item_id FROM lux_privacy_failures WHERE rule = ? AND next_retry_ts > ?"
                    f" AND item_id IN ({placeholders(part)})",
                    (rule, now_ms, *part),
                )
                found.update(row[0] for row in cur.fetchall())
            return found

        return await self._run("lux_privacy_failures_waiting", txn) if item_ids else set()

    async def record(self, rule: str, failed: Mapping[Candidate, str], now_ms: int) -> None:
        """Record one more failed attempt for each item (item -> error class)."""

        def txn(cur: Cursor) -> None:
            for item, error_class in failed.items():
                cur.execute(
                    "SELECT attempts FROM lux_privacy_failures WHERE rule = ? AND item_id = ?",
                    (rule, item.item_id),
                )
                row = cur.fetchone()
                attempts = 1 if row is None else int(row[0]) + 1
                cur.execute(
                    "INSERT INTO lux_privacy_failures (rule, item_id, user_id, room_id, first_ts,"
                    " last_ts, attempts, error_class, next_retry_ts)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (rule, item_id) DO UPDATE"
                    " SET last_ts = excluded.last_ts, attempts = excluded.attempts,"
                    " error_class = excluded.error_class, next_retry_ts = excluded.next_retry_ts",
                    (
                        rule,
                        item.item_id,
                        item.user_id,
                        item.room_id,
                        now_ms,
                        now_ms,
                        attempts,
                        error_class,
                        next_retry(now_ms, attempts),
                    ),
                )

        if failed:
            await self._run("lux_privacy_failures_record", txn)

    async def forget(self, rule: str, item_ids: Sequence[str]) -> None:
        """Drop the rows of items that are gone or no longer fail."""

        def txn(cur: Cursor) -> None:
            for part in chunks(item_ids):
                cur.execute(
                    f"DELETE FROM lux_privacy_failures WHERE rule = ?"
                    f" AND item_id IN ({placeholders(part)})",
                    (rule, *part),
                )

        if item_ids:
            await self._run("lux_privacy_failures_forget", txn)

    async def list_failures(self, limit: int, rule: str | None = None) -> list[Failure]:
        """The failing items, the longest-failing first."""

        def txn(cur: Cursor) -> list[Failure]:
            where, args = ("WHERE rule = ?", (rule,)) if rule is not None else ("", ())
            cur.execute(
                "SELECT rule, item_id, user_id, room_id, first_ts, last_ts, attempts,"
                f" error_class, next_retry_ts FROM lux_privacy_failures {where}"
                " ORDER BY first_ts, rule, item_id LIMIT ?",
                (*args, limit),
            )
            return [Failure(*row) for row in cur.fetchall()]

        return await self._run("lux_privacy_failures_list", txn)

    async def count_failing_since(self, before_ts: int) -> int:
        """How many items have been failing since before ``before_ts``."""

        def txn(cur: Cursor) -> int:
            cur.execute(
                "SELECT COUNT(*) FROM lux_privacy_failures WHERE first_ts < ?", (before_ts,)
            )
            row = cur.fetchone()
            return 0 if row is None else int(row[0])

        return await self._run("lux_privacy_failures_count", txn)
