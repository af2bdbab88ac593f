"""Synapse's accounts: who is exempt, who is idle, and erasure through Synapse (R7, R8, R12).

Reads Synapse's ``users``, ``devices``, ``user_ips``, ``room_memberships``, ``events``,
``event_json``, ``local_media_repository`` and ``users_pending_deactivation`` tables
with SELECT only (with the module's own activity record and unfinished account
deletions). Deletions go through Synapse's own machinery: the deactivation handler
(with erasure) and the profile handler (media goes through
``synapse_adapter.media.delete_local_media``).
"""

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from synapse.logging.context import current_context
from synapse.module_api import ModuleApi, UserID
from synapse.types import create_requester

from synapse_lux_privacy.db import Cursor, DbRunner, Dialect, placeholders
from synapse_lux_privacy.synapse_adapter.devices import (
    DEVICE_JOIN,
    device_activity_sql,
    greatest,
    logout_basis_sql,
)

logger = logging.getLogger(__name__)


def server_notices_user(api: ModuleApi) -> str | None:
    """The server-notices user (``server_notices.system_mxid_localpart``), if configured."""
    mxid: str | None = api._hs.config.servernotices.server_notices_mxid
    return mxid


def appservice_checker(api: ModuleApi) -> Callable[[str], bool]:
    """Whether a user ID is an application service's sender or in its exclusive namespace."""
    services = list(api._hs.get_datastores().main.get_app_services())
    return lambda user_id: any(s.is_exclusive_user(user_id) for s in services)


def is_own_request(user_id: str) -> bool:
    """Whether Synapse is serving an HTTP request that ``user_id`` is authenticating.

    Reads the current logging context: Synapse's auth calls ``is_user_expired``
    inside the request's context before the requester is attached to it, while
    the pusher pool calls it from background processes, which have no request.
    """
    request = current_context().request
    return request is not None and request.requester in (None, user_id)


def on_shutdown(api: ModuleApi, desc: str, func: Callable[[], Awaitable[None]]) -> None:
    """Run ``func`` before Synapse shuts down (best effort), as Synapse flushes client IPs."""

    def run() -> Any:
        return api.run_as_background_process(desc, func)

    api._hs.register_async_shutdown_handler(phase="before", eventType="shutdown", shutdown_func=run)


async def backfill_user_activity(run: DbRunner, dialect: Dialect) -> None:
    """Give every active local user without an activity record one from Synapse's data.

    The latest of: registration (``users.creation_ts``), ``devices.last_seen`` and
    ``user_ips.last_seen``. Run at every start and sweep: only users without a record
    are touched, so this is the first-start backfill and a safety net afterwards.
    """
    latest = greatest(
        dialect,
        "COALESCE(u.creation_ts, 0) * 1000",
        "COALESCE((SELECT MAX(d.last_seen) FROM devices AS d WHERE d.user_id = u.name), 0)",
        "COALESCE((SELECT MAX(i.last_seen) FROM user_ips AS i WHERE i.user_id = u.name), 0)",
    )

    def txn(cur: Cursor) -> None:
        cur.execute(
            "INSERT INTO lux_privacy_user_activity (user_id, last_active_ts)"
            f" SELECT u.name, {latest} FROM users AS u WHERE u.deactivated = 0"
            " AND NOT EXISTS (SELECT 1 FROM lux_privacy_user_activity AS r"
            " WHERE r.user_id = u.name) ON CONFLICT (user_id) DO NOTHING",
            (),
        )

    await run("lux_privacy_backfill_activity", txn)


async def server_admins(run: DbRunner) -> list[str]:
    """The active server admins (``users.admin``), in user ID order (R12 exemptions).

    Synapse offers no listing of admins short of paging through every user
    (``get_users_paginate``), hence the SELECT.
    """

    def txn(cur: Cursor) -> list[str]:
        cur.execute("SELECT name FROM users WHERE admin = 1 AND deactivated = 0 ORDER BY name", ())
        return [str(row[0]) for row in cur.fetchall()]

    return await run("lux_privacy_server_admins", txn)


async def find_idle_accounts(
    run: DbRunner,
    dialect: Dialect,
    account_cutoff_ms: int,
    session_cutoff_ms: int,
    after: str | None,
    limit: int | None,
    user_ids: Sequence[str] | None = None,
) -> list[str]:
    """Active local users (not appservice) inactive since ``account_cutoff_ms`` with no
    session left: every device not seen since ``session_cutoff_ms`` (R11 logs it out);
    and users the accounts rule deactivated without finishing their deletion (a row in
    the module's ``lux_privacy_account_deletions``), whatever their activity: what was
    started is finished (R12, R7).

    Inactive: the module's record (registration time if there is none) and every
    device's last request are at most ``account_cutoff_ms``.

    Ordered by user ID, after ``after``; ``user_ids`` restricts to these users.
    """
    last_active = "COALESCE(r.last_active_ts, COALESCE(u.creation_ts, 0) * 1000)"
    idle = (
        f"u.deactivated = 0 AND {last_active} <= ?"
        f" AND NOT EXISTS (SELECT 1 FROM devices AS d {DEVICE_JOIN} WHERE d.user_id = u.name"
        f" AND d.hidden = ? AND ({logout_basis_sql(dialect)} > ?"
        f" OR {device_activity_sql(dialect)} > ?))"
    )
    started = (
        "u.deactivated = 1"
        " AND EXISTS (SELECT 1 FROM lux_privacy_account_deletions AS p WHERE p.user_id = u.name)"
    )
    where = ["u.appservice_id IS NULL", f"(({idle}) OR {started})"]
    args: list[Any] = [account_cutoff_ms, False, session_cutoff_ms, account_cutoff_ms]
    if after is not None:
        where.append("u.name > ?")
        args.append(after)
    if user_ids is not None:
        if not user_ids:
            return []
        where.append(f"u.name IN ({placeholders(user_ids)})")
        args += user_ids
    sql = (
        "SELECT u.name FROM users AS u LEFT JOIN lux_privacy_user_activity AS r"
        f" ON r.user_id = u.name WHERE {' AND '.join(where)} ORDER BY u.name"
    )
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)

    def txn(cur: Cursor) -> list[str]:
        cur.execute(sql, args)
        return [str(row[0]) for row in cur.fetchall()]

    return await run("lux_privacy_find_idle_accounts", txn)


async def members_of_rooms(
    run: DbRunner, user_ids: Sequence[str], room_ids: Iterable[str]
) -> set[str]:
    """Those of ``user_ids`` with any membership event, past or present, in these rooms."""
    rooms = sorted(room_ids)
    if not user_ids or not rooms:
        return set()

    def txn(cur: Cursor) -> set[str]:
        cur.execute(
            "SELECT DISTINCT user_id FROM room_memberships WHERE"
            f" user_id IN ({placeholders(user_ids)}) AND room_id IN ({placeholders(rooms)})",
            (*user_ids, *rooms),
        )
        return {str(row[0]) for row in cur.fetchall()}

    return await run("lux_privacy_members_of_rooms", txn)


async def media_of_users(
    run: DbRunner, user_ids: Sequence[str]
) -> dict[str, list[tuple[str, int]]]:
    """Each user's local media uploads: (media_id, bytes)."""
    if not user_ids:
        return {}

    def txn(cur: Cursor) -> dict[str, list[tuple[str, int]]]:
        cur.execute(
            "SELECT user_id, media_id, COALESCE(media_length, 0) FROM local_media_repository"
            f" WHERE user_id IN ({placeholders(user_ids)}) ORDER BY user_id, media_id",
            user_ids,
        )
        media: dict[str, list[tuple[str, int]]] = {}
        for user_id, media_id, length in cur.fetchall():
            media.setdefault(str(user_id), []).append((str(media_id), int(length)))
        return media

    return await run("lux_privacy_media_of_users", txn)


async def rooms_of_users(run: DbRunner, user_ids: Sequence[str]) -> dict[str, int]:
    """How many rooms each local user is in (joined, invited, ...: every membership but
    ``leave``): the rooms a deactivation parts them from, one leave event each."""
    if not user_ids:
        return {}

    def txn(cur: Cursor) -> dict[str, int]:
        cur.execute(
            "SELECT user_id, COUNT(*) FROM local_current_membership"
            f" WHERE user_id IN ({placeholders(user_ids)}) AND membership <> 'leave'"
            " GROUP BY user_id",
            user_ids,
        )
        return {str(user_id): int(count) for user_id, count in cur.fetchall()}

    return await run("lux_privacy_rooms_of_users", txn)


async def current_avatar_url(api: ModuleApi, user_id: str) -> str | None:
    """The avatar URL in the user's profile, if any (stable module API)."""
    profile = await api.get_profile_for_user(UserID.from_string(user_id).localpart)
    return profile.avatar_url


async def avatar_media_ids(
    run: DbRunner, server_name: str, user_id: str, known_urls: Iterable[str | None]
) -> list[str]:
    """The user's own uploads that served as their avatar (R7).

    Avatar URLs come from ``known_urls`` (the profile, read before erasure) and from
    the user's membership events (``room_memberships.avatar_url``). Only media the
    user uploaded themself counts: an avatar someone else uploaded is not theirs.
    """
    prefix = f"mxc://{server_name}/"

    def txn(cur: Cursor) -> list[str]:
        cur.execute(
            "SELECT DISTINCT avatar_url FROM room_memberships WHERE user_id = ?"
            " AND avatar_url IS NOT NULL",
            (user_id,),
        )
        urls = {str(row[0]) for row in cur.fetchall()} | {u for u in known_urls if u}
        ids = sorted({u[len(prefix) :] for u in urls if u.startswith(prefix)})
        if not ids:
            return []
        cur.execute(
            "SELECT media_id FROM local_media_repository WHERE user_id = ?"
            f" AND media_id IN ({placeholders(ids)}) ORDER BY media_id",
            (user_id, *ids),
        )
        return [str(row[0]) for row in cur.fetchall()]

    return await run("lux_privacy_avatar_media", txn)


def _system_requester(api: ModuleApi, user_id: str) -> Any:
    return create_requester(user_id, authenticated_entity=api.server_name)


async def deactivate_and_erase(api: ModuleApi, run: DbRunner, user_id: str) -> None:
    """Deactivate with erasure through Synapse's ``DeactivateAccountHandler`` (R12, R7, R8).

    Synapse removes threepids, devices, access tokens, pushers, the password, the
    profile, directory entries, account data and backup keys, marks the user erased
    and parts them from every room. The ``users`` row stays, deactivated: the ID can
    never be registered again (R8).

    Synapse parts the user from their rooms afterwards, in its background user parter
    (``_user_parter_loop``, in this process); this returns once it has (see
    ``wait_until_parted``, which raises ``PartingNotFinished`` after ``PARTING_WAIT_S``),
    so that a deleted account no longer shows as joined.
    """
    handler = api._hs.get_deactivate_account_handler()
    await handler.deactivate_account(
        user_id, erase_data=True, requester=_system_requester(api, user_id), by_admin=True
    )
    await wait_until_parted(api, run, user_id)


# How long a deletion waits for Synapse's user parter, and how often it looks. The parter
# sends one leave event per room; a user in thousands of rooms takes minutes.
PARTING_WAIT_S = 600.0
_PARTING_POLL_S = 0.2


class PartingNotFinished(Exception):
    """Synapse's user parter has not parted a deactivated user from every room in time."""


async def wait_until_parted(
    api: ModuleApi, run: DbRunner, user_id: str, timeout_s: float = PARTING_WAIT_S
) -> None:
    """Wait until Synapse has parted a deactivated user from every room (R7, R12).

    Synapse queues the user in ``users_pending_deactivation`` and removes the row once
    every leave is sent; it offers no way to await that, so this polls the table
    (SELECT only). Raises ``PartingNotFinished`` if the user is still queued after
    ``timeout_s``: the deletion then counts as failed, its mark stays, and a later
    sweep finishes it (R12), instead of counting an account as deleted while it still
    shows as joined.
    """

    def pending(cur: Cursor) -> bool:
        cur.execute("SELECT 1 FROM users_pending_deactivation WHERE user_id = ?", (user_id,))
        return cur.fetchone() is not None

    waited = 0.0
    while await run("lux_privacy_parting_pending", pending):
        if waited >= timeout_s:
            raise PartingNotFinished(
                f"{user_id} is deactivated and erased; Synapse is still parting it from its"
                f" rooms after {waited:.0f} s"
            )
        await api.sleep(_PARTING_POLL_S)
        waited += _PARTING_POLL_S


async def erase_profile(api: ModuleApi, user_id: str) -> None:
    """Delete display name, avatar URL and custom profile fields (R7).

    Uses ``ProfileHandler.delete_profile_upon_deactivation``, the step Synapse runs
    when a deactivation asks for erasure; harmless when the profile is already gone.
    """
    await api._hs.get_profile_handler().delete_profile_upon_deactivation(
        UserID.from_string(user_id), _system_requester(api, user_id), by_admin=True
    )


def email_configured(api: ModuleApi) -> bool:
    """Whether Synapse's ``email:`` section sets a sender (``notif_from``), which its mailer
    (``ModuleApi.send_mail``) needs; the R12 warnings are off without it."""
    return api._hs.config.email.email_notif_from is not None
