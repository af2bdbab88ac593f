"""Reads and writes of ``lux_privacy_exports`` and ``lux_privacy_erasures`` (R14).

Statuses: ``queued`` (waiting for the process that runs background tasks),
``running``, ``completed``, ``failed``; an export's archive then ``expired``
(deleted after ``exports.retention``); an erasure cut short by a restart is
``interrupted`` (once Synapse had deactivated the account, the next sweep's accounts
rule finishes the chain, R12; asking again is safe).
"""

from collections.abc import Sequence
from typing import Any

import attrs

from synapse_lux_privacy.db import Cursor, DbRunner, placeholders

QUEUED, RUNNING, COMPLETED, FAILED, EXPIRED, INTERRUPTED = (
    "queued",
    "running",
    "completed",
    "failed",
    "expired",
    "interrupted",
)


@attrs.frozen
class ExportRecord:
    export_id: str
    user_id: str
    requested_by: str
    requested_ts: int
    status: str
    files: int
    bytes: int
    finished_ts: int | None
    expires_ts: int | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class ErasureRecord:
    """An erasure and what it deleted: the figures a deletion certificate is made of."""

    erasure_id: str
    user_id: str
    requested_by: str
    requested_ts: int
    reason: str
    status: str
    media_deleted: int
    media_bytes: int
    provider_objects: int
    media_kept: int
    finished_ts: int | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


_EXPORT = (
    "export_id, user_id, requested_by, requested_ts, status, files, bytes, finished_ts,"
    " expires_ts, error"
)
_ERASURE = (
    "erasure_id, user_id, requested_by, requested_ts, reason, status, media_deleted,"
    " media_bytes, provider_objects, media_kept, finished_ts, error"
)


class RequestStore:
    def __init__(self, run: DbRunner) -> None:
        self._run = run

    # Exports

    async def add_export(self, export_id: str, user_id: str, by: str, now_ms: int) -> None:
        def txn(cur: Cursor) -> None:
            cur.execute(
                f"INSERT INTO lux_privacy_exports ({_EXPORT})"
                " VALUES (?, ?, ?, ?, ?, 0, 0, NULL, NULL, NULL)",
                (export_id, user_id, by, now_ms, QUEUED),
            )

        await self._run("lux_privacy_export_add", txn)

    async def get_export(self, export_id: str) -> ExportRecord | None:
        def txn(cur: Cursor) -> ExportRecord | None:
            cur.execute(
                f"SELECT {_EXPORT} FROM lux_privacy_exports WHERE export_id = ?", (export_id,)
            )
            row = cur.fetchone()
            return None if row is None else ExportRecord(*row)

        return await self._run("lux_privacy_export_get", txn)

    async def claim_export(self, export_id: str) -> bool:
        """Move a queued export to running; False if another pass took it."""
        return await self._claim("lux_privacy_exports", "export_id", export_id)

    async def export_progress(self, export_id: str, files: int, size: int) -> None:
        def txn(cur: Cursor) -> None:
            cur.execute(
                "UPDATE lux_privacy_exports SET files = ?, bytes = ? WHERE export_id = ?",
                (files, size, export_id),
            )

        await self._run("lux_privacy_export_progress", txn)

    async def finish_export(
        self,
        export_id: str,
        status: str,
        files: int,
        size: int,
        now_ms: int,
        expires_ts: int | None,
        error: str | None,
    ) -> None:
        def txn(cur: Cursor) -> None:
            cur.execute(
                "UPDATE lux_privacy_exports SET status = ?, files = ?, bytes = ?,"
                " finished_ts = ?, expires_ts = ?, error = ? WHERE export_id = ?",
                (status, files, size, now_ms, expires_ts, error, export_id),
            )

        await self._run("lux_privacy_export_finish", txn)

    async def expired_exports(self, now_ms: int) -> list[str]:
        """Completed exports whose archive is due for deletion."""

        def txn(cur: Cursor) -> list[str]:
            cur.execute(
                "SELECT export_id FROM lux_privacy_exports WHERE status = ? AND expires_ts <= ?",
                (COMPLETED, now_ms),
            )
            return [str(r[0]) for r in cur.fetchall()]

        return await self._run("lux_privacy_exports_expired", txn)

    async def set_export_status(self, export_ids: Sequence[str], status: str) -> None:
        def txn(cur: Cursor) -> None:
            for export_id in export_ids:
                cur.execute(
                    "UPDATE lux_privacy_exports SET status = ? WHERE export_id = ?",
                    (status, export_id),
                )

        await self._run("lux_privacy_exports_status", txn)

    # Erasures

    async def add_erasure(
        self, erasure_id: str, user_id: str, by: str, reason: str, now_ms: int
    ) -> None:
        def txn(cur: Cursor) -> None:
            cur.execute(
                f"INSERT INTO lux_privacy_erasures ({_ERASURE})"
                " VALUES (?, ?, ?, ?, ?, ?, 0, 0, 0, 0, NULL, NULL)",
                (erasure_id, user_id, by, now_ms, reason, QUEUED),
            )

        await self._run("lux_privacy_erasure_add", txn)

    async def get_erasure(self, erasure_id: str) -> ErasureRecord | None:
        def txn(cur: Cursor) -> ErasureRecord | None:
            cur.execute(
                f"SELECT {_ERASURE} FROM lux_privacy_erasures WHERE erasure_id = ?", (erasure_id,)
            )
            row = cur.fetchone()
            return None if row is None else ErasureRecord(*row)

        return await self._run("lux_privacy_erasure_get", txn)

    async def claim_erasure(self, erasure_id: str) -> bool:
        return await self._claim("lux_privacy_erasures", "erasure_id", erasure_id)

    async def finish_erasure(
        self,
        erasure_id: str,
        status: str,
        counts: tuple[int, int, int, int],
        now_ms: int,
        error: str | None,
    ) -> None:
        def txn(cur: Cursor) -> None:
            cur.execute(
                "UPDATE lux_privacy_erasures SET status = ?, media_deleted = ?, media_bytes = ?,"
                " provider_objects = ?, media_kept = ?, finished_ts = ?, error = ?"
                " WHERE erasure_id = ?",
                (status, *counts, now_ms, error, erasure_id),
            )

        await self._run("lux_privacy_erasure_finish", txn)

    # Both

    async def _claim(self, table: str, key: str, value: str) -> bool:
        def txn(cur: Cursor) -> bool:
            cur.execute(
                f"UPDATE {table} SET status = ? WHERE {key} = ? AND status = ?",
                (RUNNING, value, QUEUED),
            )
            return bool(cur.rowcount == 1)

        return await self._run("lux_privacy_request_claim", txn)

    async def queued(self) -> tuple[list[str], list[str]]:
        """The queued exports and erasures, oldest first."""

        def txn(cur: Cursor) -> tuple[list[str], list[str]]:
            found = []
            for table, key in (
                ("lux_privacy_exports", "export_id"),
                ("lux_privacy_erasures", "erasure_id"),
            ):
                cur.execute(
                    f"SELECT {key} FROM {table} WHERE status = ? ORDER BY requested_ts",
                    (QUEUED,),
                )
                found.append([str(r[0]) for r in cur.fetchall()])
            return found[0], found[1]

        return await self._run("lux_privacy_requests_queued", txn)

    async def interrupt_running(self, now_ms: int) -> tuple[list[str], list[str]]:
        """At start-up of the process that runs requests: nothing of its own is running,
        so a ``running`` row was cut short by a restart. An export is ``failed`` (its
        partial archive is deleted by the caller); an erasure ``interrupted``."""

        def txn(cur: Cursor) -> tuple[list[str], list[str]]:
            cur.execute("SELECT export_id FROM lux_privacy_exports WHERE status = ?", (RUNNING,))
            exports = [str(r[0]) for r in cur.fetchall()]
            cur.execute(
                "UPDATE lux_privacy_exports SET status = ?, finished_ts = ?,"
                " error = 'interrupted by a restart' WHERE status = ?",
                (FAILED, now_ms, RUNNING),
            )
            cur.execute("SELECT erasure_id FROM lux_privacy_erasures WHERE status = ?", (RUNNING,))
            erasures = [str(r[0]) for r in cur.fetchall()]
            cur.execute(
                "UPDATE lux_privacy_erasures SET status = ?, finished_ts = ? WHERE status = ?",
                (INTERRUPTED, now_ms, RUNNING),
            )
            return exports, erasures

        return await self._run("lux_privacy_requests_interrupt", txn)

    async def prune(self, before_ts: int) -> int:
        """Delete finished records older than ``before_ts`` (``audit.retention``): exports
        whose archive is gone, erasures that ended."""

        def txn(cur: Cursor) -> int:
            total = 0
            for table, done in (
                ("lux_privacy_exports", (FAILED, EXPIRED)),
                ("lux_privacy_erasures", (COMPLETED, FAILED, INTERRUPTED)),
            ):
                cur.execute(
                    f"DELETE FROM {table} WHERE requested_ts < ?"
                    f" AND status IN ({placeholders(done)})",
                    (before_ts, *done),
                )
                total += max(cur.rowcount, 0)
            return total

        return await self._run("lux_privacy_requests_prune", txn)
