"""Every IP address and user agent Synapse stores, found by age and removed (R9).

The tables (every column named ip / user_agent in Synapse 1.163's schema):

- ``user_ips`` (ip, user_agent, last_seen). Synapse prunes it only through
  ``ClientIpWorkerStore._prune_old_user_ips``, which takes no age argument (it reads
  ``user_ips_max_age``): the module runs that same DELETE by ``last_seen``, per user so
  that a legal hold (R13) keeps a held user's rows.
- ``devices`` (ip, user_agent, last_seen). Synapse clears them only by deleting the
  device: the module sets both columns to NULL once ``last_seen`` is past the limit
  (``last_seen`` itself stays: it is the session's activity, not a log).
- ``user_daily_visits`` (user_agent, timestamp), Synapse's phone-home statistics, which
  read the last 60 days only and are never pruned: the module sets ``user_agent`` to
  NULL once the day is past the limit.
- ``ui_auth_sessions_ips`` (ip, user_agent), dated by ``ui_auth_sessions.creation_time``:
  removed with their sessions by Synapse's own ``delete_old_ui_auth_sessions`` (which
  Synapse also runs every 5 minutes for sessions older than 48 hours).

The three statements are the minimal ones Synapse itself would run; each runs in
one transaction and touches only rows already past the limit.
"""

from collections.abc import Sequence
from typing import Any

from synapse.module_api import ModuleApi

from synapse_lux_privacy.db import Cursor, DbRunner, placeholders

# The tables in the order the rule visits them.
SOURCES: tuple[str, ...] = ("user_ips", "devices", "user_daily_visits", "ui_auth_sessions")

# Per source: how to list the keys (user IDs, or UI-auth session IDs) with rows due.
_FIND: dict[str, tuple[str, str]] = {
    "user_ips": ("user_id", "SELECT DISTINCT user_id FROM user_ips WHERE last_seen <= ?"),
    "devices": (
        "user_id",
        "SELECT DISTINCT user_id FROM devices WHERE (ip IS NOT NULL OR user_agent IS NOT NULL)"
        " AND (last_seen IS NULL OR last_seen <= ?)",
    ),
    "user_daily_visits": (
        "user_id",
        "SELECT DISTINCT user_id FROM user_daily_visits WHERE user_agent IS NOT NULL"
        " AND timestamp <= ?",
    ),
    "ui_auth_sessions": (
        "session_id",
        "SELECT s.session_id FROM ui_auth_sessions AS s WHERE s.creation_time <= ?"
        " AND EXISTS (SELECT 1 FROM ui_auth_sessions_ips AS i"
        " WHERE i.session_id = s.session_id)",
    ),
}

# Per user-keyed source: the statement removing one user's rows past the limit.
_PURGE: dict[str, str] = {
    "user_ips": "DELETE FROM user_ips WHERE user_id = ? AND last_seen <= ?",
    "devices": (
        "UPDATE devices SET ip = NULL, user_agent = NULL WHERE user_id = ?"
        " AND (ip IS NOT NULL OR user_agent IS NOT NULL)"
        " AND (last_seen IS NULL OR last_seen <= ?)"
    ),
    "user_daily_visits": (
        "UPDATE user_daily_visits SET user_agent = NULL WHERE user_id = ?"
        " AND user_agent IS NOT NULL AND timestamp <= ?"
    ),
}


def is_per_user(source: str) -> bool:
    """Whether the source's keys are user IDs (else UI-auth session IDs)."""
    return source in _PURGE


async def find_due(
    run: DbRunner, source: str, cutoff_ms: int, after: str | None, limit: int
) -> list[str]:
    """Up to ``limit`` keys after ``after`` with an IP or user agent recorded by ``cutoff_ms``."""
    column, sql = _FIND[source]
    args: list[Any] = [cutoff_ms]
    if after is not None:
        sql += f" AND {column} > ?"
        args.append(after)
    sql += f" ORDER BY {column} LIMIT ?"
    args.append(limit)

    def txn(cur: Cursor) -> list[str]:
        cur.execute(sql, args)
        return [str(row[0]) for row in cur.fetchall()]

    return await run(f"lux_privacy_find_ip_logs_{source}", txn)


async def purge_user(run: DbRunner, source: str, user_id: str, cutoff_ms: int) -> int:
    """Remove one user's IPs / user agents recorded by ``cutoff_ms`` from a user-keyed table."""
    sql = _PURGE[source]

    def txn(cur: Cursor) -> int:
        cur.execute(sql, (user_id, cutoff_ms))
        return max(cur.rowcount, 0)

    return await run(f"lux_privacy_purge_ip_logs_{source}", txn)


async def purge_ui_auth_sessions(
    api: ModuleApi, run: DbRunner, session_ids: Sequence[str]
) -> list[str]:
    """Remove these UI-auth sessions (and older ones) with their IPs, through Synapse.

    Calls ``UIAuthWorkerStore.delete_old_ui_auth_sessions`` with the newest creation
    time among them; returns those that are gone afterwards.
    """
    if not session_ids:
        return []

    def newest(cur: Cursor) -> int | None:
        cur.execute(
            "SELECT MAX(creation_time) FROM ui_auth_sessions"
            f" WHERE session_id IN ({placeholders(session_ids)})",
            session_ids,
        )
        row = cur.fetchone()
        return None if row is None or row[0] is None else int(row[0])

    expiration = await run("lux_privacy_ui_auth_newest", newest)
    if expiration is not None:
        await api._hs.get_datastores().main.delete_old_ui_auth_sessions(expiration)

    def remaining(cur: Cursor) -> set[str]:
        cur.execute(
            "SELECT session_id FROM ui_auth_sessions"
            f" WHERE session_id IN ({placeholders(session_ids)})",
            session_ids,
        )
        return {str(row[0]) for row in cur.fetchall()}

    left = await run("lux_privacy_ui_auth_remaining", remaining)
    return [s for s in session_ids if s not in left]
