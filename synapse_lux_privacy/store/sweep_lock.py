"""The sweep lock: a lease in the database, so two sweeps never run at once on any worker.

The holder renews the lease while it works. A holder killed with SIGKILL never
releases it; the lease then expires and the next sweep takes over.
"""

from synapse_lux_privacy.db import Cursor, DbRunner

SWEEP_LOCK = "sweep"


class SweepLockStore:
    """Reads and writes ``lux_privacy_lock``."""

    def __init__(self, run: DbRunner) -> None:
        self._run = run

    async def try_acquire(
        self,
        name: str,
        holder: str,
        now_ms: int,
        lease_ms: int,
        reclaim_prefix: str | None = None,
    ) -> bool:
        """Take the lock unless another holder's lease is still running.

        ``reclaim_prefix``: a lease whose holder starts with it, but is not in the
        same process as ``holder`` (same text up to the second '/'), belonged to a
        process of this instance that was killed; it is taken over at once rather
        than after its lease runs out.
        """
        own_process = "/".join(holder.split("/")[:2]) + "/"
        reclaim = reclaim_prefix is not None and own_process.startswith(reclaim_prefix)

        def txn(cur: Cursor) -> bool:
            cur.execute(
                "INSERT INTO lux_privacy_lock (name, holder, expires_ts) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
                " expires_ts = excluded.expires_ts"
                " WHERE lux_privacy_lock.expires_ts < ?"
                " OR (? AND substr(lux_privacy_lock.holder, 1, ?) = ?"
                " AND substr(lux_privacy_lock.holder, 1, ?) <> ?)",
                (
                    name,
                    holder,
                    now_ms + lease_ms,
                    now_ms,
                    reclaim,
                    len(reclaim_prefix or ""),
                    reclaim_prefix or "",
                    len(own_process),
                    own_process,
                ),
            )
            cur.execute("SELECT holder FROM lux_privacy_lock WHERE name = ?", (name,))
            row = cur.fetchone()
            return row is not None and row[0] == holder

        return await self._run("lux_privacy_lock_acquire", txn)

    async def renew(self, name: str, holder: str, now_ms: int, lease_ms: int) -> bool:
        """Extend the lease; False when it was lost (expired and taken by someone else)."""

        def txn(cur: Cursor) -> bool:
            cur.execute(
                "UPDATE lux_privacy_lock SET expires_ts = ? WHERE name = ? AND holder = ?",
                (now_ms + lease_ms, name, holder),
            )
            return cur.rowcount == 1

        return await self._run("lux_privacy_lock_renew", txn)

    async def release_predecessors(self, name: str, instance_prefix: str, own_process: str) -> int:
        """Drop a lease held under this instance's name (``instance_prefix``) by another
        process than ``own_process``: a predecessor that was killed (instance names are
        unique in a deployment). Its sweep then reads ``interrupted`` at once (the sweep
        store); how many leases went (0 or 1)."""

        def txn(cur: Cursor) -> int:
            cur.execute(
                "DELETE FROM lux_privacy_lock WHERE name = ? AND substr(holder, 1, ?) = ?"
                " AND substr(holder, 1, ?) <> ?",
                (name, len(instance_prefix), instance_prefix, len(own_process), own_process),
            )
            return int(cur.rowcount)

        return await self._run("lux_privacy_lock_release_predecessors", txn)

    async def release(self, name: str, holder: str) -> None:
        def txn(cur: Cursor) -> None:
            cur.execute(
                "DELETE FROM lux_privacy_lock WHERE name = ? AND holder = ?", (name, holder)
            )

        await self._run("lux_privacy_lock_release", txn)
