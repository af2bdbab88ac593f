"""The durable outbox of changes for the national directory (R10): ``lux_privacy_directory_outbox``.

A change is written in the same transaction as the consent change that causes it,
so none is lost. Each user has at most one change waiting: a new change replaces the
waiting one (both PUT and DELETE carry the whole final state), except that a removal
already waiting is kept, so that its age, which the removal deadline watches, is not
reset. A change leaves the table when the service has acknowledged it (or refused it
for good), or when a newer change of the same user replaces it.
"""

from collections.abc import Sequence
from typing import Any

import attrs

from synapse_lux_privacy.db import Cursor, DbRunner
from synapse_lux_privacy.features.directory.policy import Action

_COLUMNS = "id, user_id, action, display_name, created_ts, attempts, next_attempt_ts, last_error"
_MAX_ERROR_LENGTH = 500


@attrs.frozen
class OutboxEntry:
    """One change waiting for the national directory."""

    id: int
    user_id: str
    action: Action
    display_name: str | None
    created_ts: int
    attempts: int
    next_attempt_ts: int
    last_error: str | None

    def to_json(self) -> dict[str, Any]:
        """As the per-user report shows it (R14)."""
        return {
            "action": self.action,
            "display_name": self.display_name,
            "queued_ts": self.created_ts,
            "attempts": self.attempts,
            "next_attempt_ts": self.next_attempt_ts,
            "last_error": self.last_error,
        }


@attrs.frozen
class Backlog:
    """What is waiting: every change, and the removals (R10 removal deadline)."""

    pending: int
    removals: int
    oldest_removal_ts: int | None


def _entry(row: Sequence[Any]) -> OutboxEntry:
    return OutboxEntry(
        int(row[0]), row[1], row[2], row[3], int(row[4]), int(row[5]), int(row[6]), row[7]
    )


def has_pending_txn(cur: Cursor, user_id: str) -> bool:
    cur.execute("SELECT 1 FROM lux_privacy_directory_outbox WHERE user_id = ? LIMIT 1", (user_id,))
    return cur.fetchone() is not None


def enqueue_txn(
    cur: Cursor, user_id: str, action: Action, display_name: str | None, now_ms: int
) -> bool:
    """Queue a change inside the caller's transaction; False when a waiting one covers it."""
    cur.execute(
        "SELECT action FROM lux_privacy_directory_outbox WHERE user_id = ? ORDER BY id DESC"
        " LIMIT 1",
        (user_id,),
    )
    last = cur.fetchone()
    if action == "delete" and last is not None and last[0] == "delete":
        return False
    cur.execute("DELETE FROM lux_privacy_directory_outbox WHERE user_id = ?", (user_id,))
    cur.execute(
        "INSERT INTO lux_privacy_directory_outbox (user_id, action, display_name, created_ts,"
        " attempts, next_attempt_ts, last_error) VALUES (?, ?, ?, ?, 0, ?, NULL)",
        (user_id, action, display_name if action == "put" else None, now_ms, now_ms),
    )
    return True


class OutboxStore:
    """Reads and updates ``lux_privacy_directory_outbox``."""

    def __init__(self, run: DbRunner) -> None:
        self._run = run

    async def due_heads(self, as_of_ms: int, after_id: int, limit: int) -> list[OutboxEntry]:
        """Up to ``limit`` changes due as of ``as_of_ms`` with an id above ``after_id``, by id.

        Only the oldest change of each user is returned (in-order delivery per user).
        """
        return await self._due("o.id > ?", "o.id", (after_id,), as_of_ms, limit)

    async def next_due(self, now_ms: int, limit: int) -> list[OutboxEntry]:
        """Up to ``limit`` changes due now, those due the longest first.

        A change that keeps failing is pushed back by its backoff, so it never holds up
        the changes of other users.
        """
        return await self._due("1 = 1", "o.next_attempt_ts, o.id", (), now_ms, limit)

    async def _due(
        self, where: str, order: str, args: tuple[int, ...], as_of_ms: int, limit: int
    ) -> list[OutboxEntry]:
        sql = (
            f"SELECT {_COLUMNS} FROM lux_privacy_directory_outbox o"
            f" WHERE {where} AND o.next_attempt_ts <= ? AND NOT EXISTS ("
            "  SELECT 1 FROM lux_privacy_directory_outbox e"
            "  WHERE e.user_id = o.user_id AND e.id < o.id)"
            f" ORDER BY {order} LIMIT ?"
        )

        def txn(cur: Cursor) -> list[OutboxEntry]:
            cur.execute(sql, (*args, as_of_ms, limit))
            return [_entry(row) for row in cur.fetchall()]

        return await self._run("lux_privacy_directory_due", txn)

    async def get(self, entry_id: int) -> OutboxEntry | None:
        def txn(cur: Cursor) -> OutboxEntry | None:
            cur.execute(
                f"SELECT {_COLUMNS} FROM lux_privacy_directory_outbox WHERE id = ?", (entry_id,)
            )
            row = cur.fetchone()
            return None if row is None else _entry(row)

        return await self._run("lux_privacy_directory_get", txn)

    async def for_user(self, user_id: str) -> list[OutboxEntry]:
        def txn(cur: Cursor) -> list[OutboxEntry]:
            cur.execute(
                f"SELECT {_COLUMNS} FROM lux_privacy_directory_outbox WHERE user_id = ?"
                " ORDER BY id",
                (user_id,),
            )
            return [_entry(row) for row in cur.fetchall()]

        return await self._run("lux_privacy_directory_for_user", txn)

    async def remove(self, entry_id: int) -> None:
        """The change reached the service (or was refused for good): it leaves the outbox."""

        def txn(cur: Cursor) -> None:
            cur.execute("DELETE FROM lux_privacy_directory_outbox WHERE id = ?", (entry_id,))

        await self._run("lux_privacy_directory_remove", txn)

    async def reschedule(
        self, entry_id: int, attempts: int, next_attempt_ts: int, error: str
    ) -> None:
        """Record a failed attempt; the change is tried again from ``next_attempt_ts``."""

        def txn(cur: Cursor) -> None:
            cur.execute(
                "UPDATE lux_privacy_directory_outbox SET attempts = ?, next_attempt_ts = ?,"
                " last_error = ? WHERE id = ?",
                (attempts, next_attempt_ts, error[:_MAX_ERROR_LENGTH], entry_id),
            )

        await self._run("lux_privacy_directory_reschedule", txn)

    async def backlog(self) -> Backlog:
        def txn(cur: Cursor) -> Backlog:
            cur.execute(
                "SELECT COUNT(*), SUM(CASE WHEN action = 'delete' THEN 1 ELSE 0 END),"
                " MIN(CASE WHEN action = 'delete' THEN created_ts END)"
                " FROM lux_privacy_directory_outbox",
                (),
            )
            row = cur.fetchone()
            assert row is not None
            oldest = None if row[2] is None else int(row[2])
            return Backlog(int(row[0]), int(row[1] or 0), oldest)

        return await self._run("lux_privacy_directory_backlog", txn)
