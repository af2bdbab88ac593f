"""Usage counters, per-user quotas, watermarks and the users to re-read (R4).

Reading a user's usage or quota is one primary-key lookup: the upload path and the
admin API never scan a table.
"""

from collections.abc import Collection, Mapping

import attrs

from synapse_lux_privacy.db import Cursor, DbRunner
from synapse_lux_privacy.features.quota.policy import EVENTS, MEDIA, effective_quota, used_bytes


@attrs.frozen
class Usage:
    media_bytes: int = 0
    event_bytes: int = 0

    def used(self, counts: Collection[str]) -> int:
        return used_bytes(counts, self.media_bytes, self.event_bytes)


@attrs.frozen
class OverQuota:
    user_id: str
    used: int
    quota: int


def _used_sql(counts: Collection[str]) -> str:
    parts = [c for k, c in ((MEDIA, "u.media_bytes"), (EVENTS, "u.event_bytes")) if k in counts]
    return " + ".join(parts) or "0"


class UsageStore:
    def __init__(self, db: DbRunner) -> None:
        self._db = db

    async def usage(self, user_id: str) -> Usage:
        def txn(cur: Cursor) -> Usage:
            cur.execute(
                "SELECT media_bytes, event_bytes FROM lux_privacy_quota_usage WHERE user_id = ?",
                (user_id,),
            )
            row = cur.fetchone()
            return Usage(int(row[0]), int(row[1])) if row else Usage()

        return await self._db("lux_privacy_quota_usage", txn)

    async def override(self, user_id: str) -> int | None:
        def txn(cur: Cursor) -> int | None:
            cur.execute(
                "SELECT quota_bytes FROM lux_privacy_quota_overrides WHERE user_id = ?", (user_id,)
            )
            row = cur.fetchone()
            return int(row[0]) if row else None

        return await self._db("lux_privacy_quota_override", txn)

    async def quota(self, user_id: str, default_bytes: int | None) -> int | None:
        """The quota that applies to a user (None: no quota)."""
        return effective_quota(default_bytes, await self.override(user_id))

    async def set_override(
        self, user_id: str, quota_bytes: int | None, actor: str, now_ms: int
    ) -> None:
        """Set a user's quota; None goes back to ``quota.default_bytes``."""

        def txn(cur: Cursor) -> None:
            if quota_bytes is None:
                cur.execute("DELETE FROM lux_privacy_quota_overrides WHERE user_id = ?", (user_id,))
                return
            cur.execute(
                "INSERT INTO lux_privacy_quota_overrides (user_id, quota_bytes, updated_ts,"
                " updated_by) VALUES (?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
                " quota_bytes = excluded.quota_bytes, updated_ts = excluded.updated_ts,"
                " updated_by = excluded.updated_by",
                (user_id, quota_bytes, now_ms, actor),
            )

        await self._db("lux_privacy_quota_set_override", txn)

    async def over_quota(
        self, counts: Collection[str], default_bytes: int | None, after: str | None, limit: int
    ) -> list[OverQuota]:
        """Users whose usage is above their quota, in user ID order after ``after``."""
        used = _used_sql(counts)

        def txn(cur: Cursor) -> list[OverQuota]:
            cur.execute(
                f"SELECT u.user_id, {used}, COALESCE(o.quota_bytes, ?)"
                " FROM lux_privacy_quota_usage AS u"
                " LEFT JOIN lux_privacy_quota_overrides AS o ON o.user_id = u.user_id"
                f" WHERE u.user_id > ? AND {used} > COALESCE(o.quota_bytes, ?)"
                " ORDER BY u.user_id LIMIT ?",
                (default_bytes, after or "", default_bytes, limit),
            )
            return [OverQuota(str(r[0]), int(r[1]), int(r[2])) for r in cur.fetchall()]

        return await self._db("lux_privacy_quota_over", txn)

    async def count_over_quota(self, counts: Collection[str], default_bytes: int | None) -> int:
        used = _used_sql(counts)

        def txn(cur: Cursor) -> int:
            cur.execute(
                "SELECT COUNT(*) FROM lux_privacy_quota_usage AS u"
                " LEFT JOIN lux_privacy_quota_overrides AS o ON o.user_id = u.user_id"
                f" WHERE {used} > COALESCE(o.quota_bytes, ?)",
                (default_bytes,),
            )
            row = cur.fetchone()
            return int(row[0]) if row else 0

        return await self._db("lux_privacy_quota_count_over", txn)

    # -- users whose data changed outside the module's sight ----------------------------

    async def mark_dirty(self, marks: Mapping[str, bool], now_ms: int) -> None:
        """Re-read these users' uploads (and, if True, sent events) soon."""

        def txn(cur: Cursor) -> None:
            for user_id, full_resync in sorted(marks.items()):
                cur.execute(
                    "INSERT INTO lux_privacy_quota_dirty (user_id, marked_ts, full_resync)"
                    " VALUES (?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
                    " marked_ts = excluded.marked_ts, full_resync = CASE WHEN"
                    " lux_privacy_quota_dirty.full_resync = 1 THEN 1"
                    " ELSE excluded.full_resync END",
                    (user_id, now_ms, 1 if full_resync else 0),
                )

        await self._db("lux_privacy_quota_mark_dirty", txn)

    async def dirty_users(self) -> dict[str, bool]:
        """User -> whether the sent events need re-reading too."""

        def txn(cur: Cursor) -> dict[str, bool]:
            cur.execute("SELECT user_id, full_resync FROM lux_privacy_quota_dirty", ())
            return {str(r[0]): bool(r[1]) for r in cur.fetchall()}

        return await self._db("lux_privacy_quota_dirty_users", txn)

    async def clear_dirty(self, user_ids: Collection[str], marked_before: int) -> None:
        """Forget users marked before ``marked_before`` (later marks wait for the next pass)."""

        def txn(cur: Cursor) -> None:
            for user_id in user_ids:
                cur.execute(
                    "DELETE FROM lux_privacy_quota_dirty WHERE user_id = ? AND marked_ts < ?",
                    (user_id, marked_before),
                )

        await self._db("lux_privacy_quota_clear_dirty", txn)

    # -- watermarks and timestamps ------------------------------------------------------

    async def state(self, name: str) -> int | None:
        def txn(cur: Cursor) -> int | None:
            return state_txn(cur, name)

        return await self._db("lux_privacy_quota_state", txn)

    async def claim(self, name: str, now_ms: int, every_ms: int) -> bool:
        """Set ``name`` to now if it is unset or at least ``every_ms`` old; True if this did."""

        def txn(cur: Cursor) -> bool:
            last = state_txn(cur, name)
            if last is not None and last > now_ms - every_ms:
                return False
            set_state_txn(cur, name, now_ms)
            return True

        return await self._db("lux_privacy_quota_claim", txn)


def state_txn(cur: Cursor, name: str) -> int | None:
    cur.execute("SELECT value FROM lux_privacy_quota_state WHERE name = ?", (name,))
    row = cur.fetchone()
    return int(row[0]) if row else None


def set_state_txn(cur: Cursor, name: str, value: int) -> None:
    cur.execute(
        "INSERT INTO lux_privacy_quota_state (name, value) VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (name, value),
    )


def totals_txn(cur: Cursor) -> Mapping[str, Usage]:
    """Every user's sums, recomputed from the ledgers (reconciliation)."""
    sums: dict[str, list[int]] = {}
    for index, table in enumerate(("lux_privacy_quota_media", "lux_privacy_quota_events")):
        cur.execute(f"SELECT user_id, SUM(size) FROM {table} GROUP BY user_id", ())
        for user_id, total in cur.fetchall():
            sums.setdefault(str(user_id), [0, 0])[index] = int(total or 0)
    return {user: Usage(media, events) for user, (media, events) in sums.items()}


def counters_txn(cur: Cursor) -> Mapping[str, Usage]:
    cur.execute("SELECT user_id, media_bytes, event_bytes FROM lux_privacy_quota_usage", ())
    return {str(r[0]): Usage(int(r[1]), int(r[2])) for r in cur.fetchall()}
