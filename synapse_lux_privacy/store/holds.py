"""Legal holds (R13): placing, releasing and reading them.

A hold binds once ``place`` and ``settle`` have returned: the sweep reads the holds
again in the transaction that marks each batch in flight, and ``settle`` waits for
any batch marked before the hold (``hold_fence.py``).
"""

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs

from synapse_lux_privacy.db import Cursor, DbRunner
from synapse_lux_privacy.store import hold_fence

# How often ``settle`` looks whether the batch it waits for is over.
SETTLE_POLL_S = 0.1


@attrs.frozen
class Hold:
    """One legal hold, on a user or on a room (R13)."""

    hold_id: str
    user_id: str | None
    room_id: str | None
    reason: str
    created_ts: int
    created_by: str
    released_ts: int | None = None
    released_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class HoldSet:
    """What the active holds cover, as the sweep checks it before every deletion."""

    user_ids: frozenset[str] = frozenset()
    room_ids: frozenset[str] = frozenset()

    def covers(self, user_id: str | None, room_id: str | None) -> bool:
        return (user_id is not None and user_id in self.user_ids) or (
            room_id is not None and room_id in self.room_ids
        )


class HoldConflict(Exception):
    """A hold ID already names another user or room."""


_COLUMNS = "hold_id, user_id, room_id, reason, created_ts, created_by, released_ts, released_by"


class HoldStore:
    """Reads and writes ``lux_privacy_holds`` and its history ``lux_privacy_hold_log``."""

    def __init__(self, run: DbRunner) -> None:
        self._run = run

    async def list_holds(self, include_released: bool) -> list[Hold]:
        where = "" if include_released else " WHERE released_ts IS NULL"
        sql = f"SELECT {_COLUMNS} FROM lux_privacy_holds{where} ORDER BY created_ts, hold_id"

        def txn(cur: Cursor) -> list[Hold]:
            cur.execute(sql, ())
            return [Hold(*row) for row in cur.fetchall()]

        return await self._run("lux_privacy_list_holds", txn)

    async def active_holds(self) -> HoldSet:
        return await self._run("lux_privacy_active_holds", _active_txn)

    async def mark_batch(self, holder: str, now_ms: int) -> HoldSet | None:
        """The holds a batch of the sweep ``holder`` is deleted under, read in the
        transaction that marks the batch in flight; None when ``holder`` has lost the
        sweep lease (nothing marked: the batch must not be deleted)."""

        def txn(cur: Cursor) -> HoldSet | None:
            return _active_txn(cur) if hold_fence.mark_txn(cur, holder, now_ms) else None

        return await self._run("lux_privacy_mark_batch", txn)

    async def clear_batch(self, holder: str) -> None:
        """The batch marked by ``mark_batch`` is over."""
        await self._run("lux_privacy_clear_batch", hold_fence.clear_txn, holder)

    async def settle(
        self, clock_ms: Callable[[], int], sleep: Callable[[float], Awaitable[None]]
    ) -> None:
        """Wait until no batch marked before the holds placed so far may still delete:
        after this, nothing they cover is deleted by any worker."""
        generation = await self._run("lux_privacy_hold_generation", hold_fence.generation_txn)
        while await self._run(
            "lux_privacy_batch_in_flight", hold_fence.in_flight_txn, generation, clock_ms()
        ):
            await sleep(SETTLE_POLL_S)

    async def place(
        self,
        hold_id: str,
        user_id: str | None,
        room_id: str | None,
        reason: str,
        actor: str,
        now_ms: int,
    ) -> tuple[Hold, bool]:
        """Place (or re-place, or update the reason of) a hold; return it and whether it is new.

        Raises HoldConflict when the ID already names a different user or room: the
        target of a hold never changes silently, so its history stays readable.
        """

        def txn(cur: Cursor) -> tuple[Hold, bool]:
            cur.execute(f"SELECT {_COLUMNS} FROM lux_privacy_holds WHERE hold_id = ?", (hold_id,))
            row = cur.fetchone()
            if row is None:
                cur.execute(
                    "INSERT INTO lux_privacy_holds (hold_id, user_id, room_id, reason,"
                    " created_ts, created_by) VALUES (?, ?, ?, ?, ?, ?)",
                    (hold_id, user_id, room_id, reason, now_ms, actor),
                )
                action, created = "placed", True
            else:
                old = Hold(*row)
                if (old.user_id, old.room_id) != (user_id, room_id):
                    target = old.user_id or old.room_id
                    raise HoldConflict(
                        f"hold {hold_id!r} already covers {target}; use another hold ID"
                    )
                created = old.released_ts is not None
                action = "placed" if created else "updated"
                cur.execute(
                    "UPDATE lux_privacy_holds SET reason = ?, released_ts = NULL,"
                    " released_by = NULL"
                    + (", created_ts = ?, created_by = ?" if created else "")
                    + " WHERE hold_id = ?",
                    (reason, now_ms, actor, hold_id) if created else (reason, hold_id),
                )
            _log(cur, now_ms, hold_id, action, user_id, room_id, reason, actor)
            hold_fence.bump_txn(cur)
            cur.execute(f"SELECT {_COLUMNS} FROM lux_privacy_holds WHERE hold_id = ?", (hold_id,))
            new_row = cur.fetchone()
            assert new_row is not None
            return Hold(*new_row), created

        return await self._run("lux_privacy_place_hold", txn)

    async def release(self, hold_id: str, actor: str, now_ms: int) -> Hold | None:
        """Release a hold; None when no such hold exists. Releasing twice is harmless."""

        def txn(cur: Cursor) -> Hold | None:
            cur.execute(f"SELECT {_COLUMNS} FROM lux_privacy_holds WHERE hold_id = ?", (hold_id,))
            row = cur.fetchone()
            if row is None:
                return None
            hold = Hold(*row)
            if hold.released_ts is not None:
                return hold
            cur.execute(
                "UPDATE lux_privacy_holds SET released_ts = ?, released_by = ? WHERE hold_id = ?",
                (now_ms, actor, hold_id),
            )
            _log(cur, now_ms, hold_id, "released", hold.user_id, hold.room_id, None, actor)
            return attrs.evolve(hold, released_ts=now_ms, released_by=actor)

        return await self._run("lux_privacy_release_hold", txn)

    async def history(self, hold_id: str) -> list[dict[str, Any]]:
        def txn(cur: Cursor) -> list[dict[str, Any]]:
            cur.execute(
                "SELECT ts, action, user_id, room_id, reason, actor FROM lux_privacy_hold_log"
                " WHERE hold_id = ? ORDER BY id",
                (hold_id,),
            )
            keys: Sequence[str] = ("ts", "action", "user_id", "room_id", "reason", "actor")
            return [dict(zip(keys, row, strict=True)) for row in cur.fetchall()]

        return await self._run("lux_privacy_hold_history", txn)


def _active_txn(cur: Cursor) -> HoldSet:
    cur.execute("SELECT user_id, room_id FROM lux_privacy_holds WHERE released_ts IS NULL", ())
    rows = cur.fetchall()
    return HoldSet(
        user_ids=frozenset(u for u, _ in rows if u is not None),
        room_ids=frozenset(r for _, r in rows if r is not None),
    )


def _log(
    cur: Cursor,
    ts: int,
    hold_id: str,
    action: str,
    user_id: str | None,
    room_id: str | None,
    reason: str | None,
    actor: str,
) -> None:
    cur.execute(
        "INSERT INTO lux_privacy_hold_log (ts, hold_id, action, user_id, room_id, reason, actor)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (ts, hold_id, action, user_id, room_id, reason, actor),
    )
