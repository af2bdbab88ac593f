"""The audit trail: what each sweep deleted, as identifiers and counts, never content.

A batch is written as ``started`` before the rule deletes anything and marked
``done`` with the count actually deleted (and the storage-provider objects deleted
with it, R2) afterwards, so a sweep killed half-way
leaves an honest ``started`` row rather than no trace at all (the next sweep marks
it ``interrupted``). A group of which nothing was deleted loses its row: no audit
row says "nothing done". Rows older than ``audit.retention`` are deleted
(``prune``): they name users, so they are personal data too.

A row is chained (``audit_chain``) in the transaction that gives it its final state:
``finish_batch`` and ``record`` here, ``SweepRunStore.start`` for ``interrupted`` rows.
Each of them locks the chain's head before it touches an audit row.
"""

from collections.abc import Sequence
from typing import Any

import attrs

from synapse_lux_privacy.db import Cursor, DbRunner
from synapse_lux_privacy.store import audit_chain


@attrs.frozen
class AuditGroup:
    """The part of a batch that concerns one user in one room."""

    user_id: str | None
    room_id: str | None
    count: int
    bytes: int
    provider_objects: int = 0  # storage-provider objects and files deleted (R2)


@attrs.frozen
class AuditEntry:
    """A row as ``GET /audit`` lists it: every hashed field and its link in the chain
    (``seq``, ``prev_hash``, ``hash``; None while ``started``), so that an export of the
    audit can be checked against a certificate's chain head offline."""

    id: int
    ts: int
    rule: str
    status: str
    count: int
    bytes: int
    user_id: str | None
    room_id: str | None
    sweep_id: str | None
    provider_objects: int
    seq: int | None
    prev_hash: str | None
    hash: str | None

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


class AuditStore:
    """Reads and writes ``lux_privacy_audit``.

    ``chain_run`` runs the transactions that append to the chain (READ COMMITTED on
    PostgreSQL: ``ModuleDatabase.read_committed``); ``run`` by default.
    """

    def __init__(self, run: DbRunner, chain_run: DbRunner | None = None) -> None:
        self._run = run
        self._chain_run = chain_run or run

    async def start_batch(
        self, sweep_id: str, rule: str, ts: int, groups: Sequence[AuditGroup]
    ) -> list[int]:
        """Record a batch about to be deleted; return the row IDs, one per group."""

        def txn(cur: Cursor) -> list[int]:
            ids = []
            for group in groups:
                cur.execute(
                    "INSERT INTO lux_privacy_audit (ts, sweep_id, rule, status, count, bytes,"
                    " user_id, room_id) VALUES (?, ?, ?, 'started', ?, ?, ?, ?) RETURNING id",
                    (ts, sweep_id, rule, group.count, group.bytes, group.user_id, group.room_id),
                )
                row = cur.fetchone()
                assert row is not None
                ids.append(int(row[0]))
            return ids

        return await self._run("lux_privacy_audit_start", txn)

    async def finish_batch(
        self, row_ids: Sequence[int], outcome: Sequence[AuditGroup | None], ts: int
    ) -> None:
        """Mark a batch ``done`` with what was really deleted, group by group.

        ``outcome[i]`` is what was deleted of the group recorded as ``row_ids[i]``
        (None: nothing, and the row goes).
        """

        def txn(cur: Cursor) -> None:
            head = audit_chain.lock(cur)
            done: dict[int, dict[str, Any]] = {}
            for row_id, group in zip(row_ids, outcome, strict=True):
                if group is None or group.count == 0:
                    cur.execute("DELETE FROM lux_privacy_audit WHERE id = ?", (row_id,))
                    continue
                done[row_id] = {
                    "status": "done",
                    "ts": ts,
                    "count": group.count,
                    "bytes": group.bytes,
                    "provider_objects": group.provider_objects,
                }
            # The completion and the link in one UPDATE per row.
            audit_chain.append(cur, head, list(done), done)

        await self._chain_run("lux_privacy_audit_finish", txn)

    async def record(self, sweep_id: str, rule: str, ts: int, count: int) -> None:
        """One ``done`` row for work that is not a batch of candidates (housekeeping)."""

        def txn(cur: Cursor) -> None:
            head = audit_chain.lock(cur)
            cur.execute(
                "INSERT INTO lux_privacy_audit (ts, sweep_id, rule, status, count, bytes)"
                " VALUES (?, ?, ?, 'done', ?, 0) RETURNING id",
                (ts, sweep_id, rule, count),
            )
            row = cur.fetchone()
            assert row is not None
            audit_chain.append(cur, head, [int(row[0])])

        if count:
            await self._chain_run("lux_privacy_audit_record", txn)

    async def list_entries(self, since_ts: int, limit: int) -> list[AuditEntry]:
        """Entries at or after ``since_ts``, newest first."""

        def txn(cur: Cursor) -> list[AuditEntry]:
            cur.execute(
                "SELECT id, ts, rule, status, count, bytes, user_id, room_id, sweep_id,"
                " provider_objects, chain_seq, prev_hash, row_hash FROM lux_privacy_audit"
                " WHERE ts >= ?"
                " ORDER BY ts DESC, id DESC LIMIT ?",
                (since_ts, limit),
            )
            return [AuditEntry(*row) for row in cur.fetchall()]

        return await self._run("lux_privacy_audit_list", txn)
