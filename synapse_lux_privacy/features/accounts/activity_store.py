"""The module's own activity record (R11, R12): reads and writes of its two tables only.

Everything that also reads Synapse's tables (devices, users, user_ips) lives in the
Synapse adapter; this store never touches them.
"""

from collections.abc import Iterable, Mapping

from synapse_lux_privacy.db import Cursor, DbRunner

# Keeps the later of the stored and the new time, so that writes from several
# workers (or a late flush) never move a user's last activity backwards.
_UPSERT_USER = (
    "INSERT INTO lux_privacy_user_activity (user_id, last_active_ts) VALUES (?, ?)"
    " ON CONFLICT (user_id) DO UPDATE SET last_active_ts = excluded.last_active_ts"
    " WHERE excluded.last_active_ts > lux_privacy_user_activity.last_active_ts"
)


class ActivityStore:
    """``lux_privacy_user_activity`` and ``lux_privacy_device_activity``."""

    def __init__(self, run: DbRunner) -> None:
        self._run = run

    async def record_users(self, activity: Mapping[str, int]) -> None:
        """Record that each user was active at the given time (never moves a time back)."""
        rows = sorted(activity.items())

        def txn(cur: Cursor) -> None:
            for user_id, ts in rows:
                cur.execute(_UPSERT_USER, (user_id, ts))

        if rows:
            await self._run("lux_privacy_record_activity", txn)

    async def user_last_active(self, user_id: str) -> int | None:
        def txn(cur: Cursor) -> int | None:
            cur.execute(
                "SELECT last_active_ts FROM lux_privacy_user_activity WHERE user_id = ?",
                (user_id,),
            )
            row = cur.fetchone()
            return None if row is None else int(row[0])

        return await self._run("lux_privacy_user_last_active", txn)

    async def forget_devices(self, user_id: str, device_ids: Iterable[str]) -> None:
        """Drop the rows of devices that no longer exist."""
        ids = list(device_ids)

        def txn(cur: Cursor) -> None:
            for device_id in ids:
                cur.execute(
                    "DELETE FROM lux_privacy_device_activity WHERE user_id = ? AND device_id = ?",
                    (user_id, device_id),
                )

        if ids:
            await self._run("lux_privacy_forget_devices", txn)

    async def forget_user(self, user_id: str) -> None:
        """Drop everything recorded about a deactivated user (R7, R12)."""

        def txn(cur: Cursor) -> None:
            cur.execute("DELETE FROM lux_privacy_device_activity WHERE user_id = ?", (user_id,))
            cur.execute("DELETE FROM lux_privacy_user_activity WHERE user_id = ?", (user_id,))
            cur.execute("DELETE FROM lux_privacy_account_warnings WHERE user_id = ?", (user_id,))

        await self._run("lux_privacy_forget_user", txn)
