"""Synapse's devices, read for the activity record and deleted through its device handler (R11).

Reads Synapse's ``devices`` and ``users`` tables with SELECT only, together with the
module's own ``lux_privacy_device_activity`` / ``lux_privacy_user_activity``. The only
deletion goes through ``DeviceHandler.delete_devices``, which removes the device's
access tokens, end-to-end keys, pushers and to-device messages: the client is logged out.
"""

from collections.abc import Sequence
from typing import Any

from synapse.module_api import ModuleApi

from synapse_lux_privacy.db import Cursor, DbRunner, Dialect, placeholders

# Larger than any time: a device the module has not recorded yet is never due.
_NOT_YET_SEEN = 2**62

# A device as the report sees it: device_id, Synapse's last_seen, the module's
# copy of it, and when the module first saw the device.
DeviceRow = tuple[str, int | None, int | None, int | None]


def greatest(dialect: Dialect, *expressions: str) -> str:
    """The SQL for the largest of non-null expressions (SQLite's scalar MAX, PostgreSQL's
    GREATEST)."""
    return ("GREATEST" if dialect == "postgres" else "MAX") + f"({', '.join(expressions)})"


def device_activity_sql(dialect: Dialect) -> str:
    """A device's last request (0 if none), from ``devices AS d`` and ``activity AS a``."""
    return greatest(dialect, "COALESCE(d.last_seen, 0)", "COALESCE(a.last_seen_ts, 0)")


def logout_basis_sql(dialect: Dialect) -> str:
    """What R11 counts from: last request, or when the module first saw the device."""
    return greatest(
        dialect,
        "COALESCE(d.last_seen, 0)",
        "COALESCE(a.last_seen_ts, 0)",
        f"COALESCE(a.first_seen_ts, {_NOT_YET_SEEN})",
    )


DEVICE_JOIN = (
    "LEFT JOIN lux_privacy_device_activity AS a"
    " ON a.user_id = d.user_id AND a.device_id = d.device_id"
)


async def sync_device_activity(run: DbRunner, now_ms: int, user_id: str | None = None) -> None:
    """Copy Synapse's device activity into the module's record, before R9 and R11 remove it.

    In one transaction (for every local user, or one): a device not recorded yet is
    recorded as first seen ``now_ms``; a newer ``devices.last_seen`` is copied; each
    user's last activity takes their devices' latest; rows of deleted devices go.
    """
    only = "" if user_id is None else " AND d.user_id = ?"
    only_a = "" if user_id is None else " AND user_id = ?"
    extra: tuple[Any, ...] = () if user_id is None else (user_id,)

    def txn(cur: Cursor) -> None:
        cur.execute(
            "INSERT INTO lux_privacy_device_activity"
            " (user_id, device_id, first_seen_ts, last_seen_ts)"
            " SELECT d.user_id, d.device_id, ?, d.last_seen FROM devices AS d"
            f" WHERE d.hidden = ?{only} AND NOT EXISTS (SELECT 1 FROM"
            " lux_privacy_device_activity AS a WHERE a.user_id = d.user_id"
            " AND a.device_id = d.device_id) ON CONFLICT (user_id, device_id) DO NOTHING",
            (now_ms, False, *extra),
        )
        same_device = (
            "d.user_id = lux_privacy_device_activity.user_id"
            " AND d.device_id = lux_privacy_device_activity.device_id"
        )
        cur.execute(
            "UPDATE lux_privacy_device_activity SET last_seen_ts ="
            f" (SELECT d.last_seen FROM devices AS d WHERE {same_device})"
            f" WHERE EXISTS (SELECT 1 FROM devices AS d WHERE {same_device}"
            f" AND d.last_seen > COALESCE(lux_privacy_device_activity.last_seen_ts, 0)){only_a}",
            extra,
        )
        latest = (
            "(SELECT MAX(a.last_seen_ts) FROM lux_privacy_device_activity AS a"
            " WHERE a.user_id = lux_privacy_user_activity.user_id)"
        )
        cur.execute(
            f"UPDATE lux_privacy_user_activity SET last_active_ts = {latest}"
            f" WHERE {latest} > last_active_ts{only_a}",
            extra,
        )
        cur.execute(
            "DELETE FROM lux_privacy_device_activity WHERE NOT EXISTS (SELECT 1 FROM devices"
            f" AS d WHERE {same_device} AND d.hidden = ?){only_a}",
            (False, *extra),
        )

    await run("lux_privacy_sync_device_activity", txn)


async def find_idle_devices(
    run: DbRunner,
    dialect: Dialect,
    cutoff_ms: int,
    after: tuple[str, str] | None,
    limit: int | None,
    user_ids: Sequence[str] | None = None,
) -> list[tuple[str, str]]:
    """Devices of active (not deactivated, not appservice) users not seen since ``cutoff_ms``.

    Ordered by (user_id, device_id), after ``after``; ``user_ids`` restricts to these users.
    """
    where = [
        "d.hidden = ?",
        "u.deactivated = 0",
        "u.appservice_id IS NULL",
        f"{logout_basis_sql(dialect)} <= ?",
    ]
    args: list[Any] = [False, cutoff_ms]
    if after is not None:
        where.append("(d.user_id > ? OR (d.user_id = ? AND d.device_id > ?))")
        args += [after[0], after[0], after[1]]
    if user_ids is not None:
        if not user_ids:
            return []
        where.append(f"d.user_id IN ({placeholders(user_ids)})")
        args += user_ids
    sql = (
        "SELECT d.user_id, d.device_id FROM devices AS d JOIN users AS u ON u.name = d.user_id"
        f" {DEVICE_JOIN} WHERE {' AND '.join(where)} ORDER BY d.user_id, d.device_id"
    )
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)

    def txn(cur: Cursor) -> list[tuple[str, str]]:
        cur.execute(sql, args)
        return [(str(u), str(d)) for u, d in cur.fetchall()]

    return await run("lux_privacy_find_idle_devices", txn)


async def list_devices(run: DbRunner, user_id: str) -> list[DeviceRow]:
    """A user's sessions (devices that are not hidden cross-signing keys), for the report."""

    def txn(cur: Cursor) -> list[DeviceRow]:
        cur.execute(
            "SELECT d.device_id, d.last_seen, a.last_seen_ts, a.first_seen_ts FROM devices AS d"
            f" {DEVICE_JOIN} WHERE d.user_id = ? AND d.hidden = ? ORDER BY d.device_id",
            (user_id, False),
        )
        return [(str(r[0]), r[1], r[2], r[3]) for r in cur.fetchall()]

    return await run("lux_privacy_list_devices", txn)


async def delete_devices(api: ModuleApi, user_id: str, device_ids: Sequence[str]) -> None:
    """Log devices out through Synapse's ``DeviceHandler.delete_devices`` (R11).

    Synapse deletes the devices with their access tokens, end-to-end keys,
    dehydrated devices, pushers and queued to-device messages, and tells the user's
    other devices and federated servers that the devices are gone.
    """
    await api._hs.get_device_handler().delete_devices(user_id, list(device_ids))
