"""What a data-subject export reads from Synapse (R14, GDPR art. 15).

SELECT only, every query bounded by an index on the user: ``room_memberships``
(``room_memberships_user_id``), ``devices`` and ``user_ips`` (their keys start with
``user_id``), the module's quota ledger of the events each local user sent
(``lux_privacy_quota_events_user``: Synapse has no index on ``events.sender``) and,
for the events sent since the ledger's watermark, Synapse's ``events`` by
``stream_ordering``: one pass over the user's history, whatever the number of rooms.
Before the first reconciliation has made the ledger complete, a room's events are
read by room (``events_order_room``) and sender.

Events come out as clients receive them: through Synapse's event store (a redacted
event is pruned as Synapse prunes it for clients) and its client serializer.
"""

from collections.abc import Sequence
from typing import Any

from synapse.events import utils as event_utils
from synapse.events.utils import SerializeEventConfig
from synapse.module_api import ModuleApi
from synapse.types import create_requester

from synapse_lux_privacy.db import Cursor, DbRunner
from synapse_lux_privacy.synapse_adapter.events import _NOT_REJECTED, _NOT_STATE

# The quota ledger's state names: the position up to which a reconciliation made it
# complete, and the accounting's watermark (features/quota).
LedgerState = tuple[str, str]


async def memberships(db: DbRunner, user_id: str) -> list[dict[str, Any]]:
    """Every membership event of the user, oldest first, with the room's name and
    encryption algorithm as Synapse's room statistics know them."""

    def txn(cur: Cursor) -> list[dict[str, Any]]:
        cur.execute(
            "SELECT m.room_id, m.membership, m.event_id, e.origin_server_ts, m.sender,"
            " s.name, s.encryption FROM room_memberships AS m"
            " JOIN events AS e ON e.event_id = m.event_id"
            " LEFT JOIN room_stats_state AS s ON s.room_id = m.room_id"
            " WHERE m.user_id = ? ORDER BY e.stream_ordering",
            (user_id,),
        )
        return [
            {
                "room_id": r[0],
                "membership": r[1],
                "event_id": r[2],
                "ts": r[3],
                "by": r[4],
                "room_name": r[5],
                "encryption": r[6],
            }
            for r in cur.fetchall()
        ]

    return await db("lux_privacy_export_memberships", txn)


async def sessions(db: DbRunner, user_id: str) -> dict[str, list[dict[str, Any]]]:
    """The user's devices and the IP addresses and user agents Synapse still keeps
    (``user_ips``, until ``logs.ip_retention``, R9); never access tokens."""

    def txn(cur: Cursor) -> dict[str, list[dict[str, Any]]]:
        cur.execute(
            "SELECT device_id, display_name, last_seen, ip, user_agent FROM devices"
            " WHERE user_id = ? AND hidden = ? ORDER BY device_id",
            (user_id, False),
        )
        devices = [
            {
                "device_id": r[0],
                "display_name": r[1],
                "last_seen_ts": r[2],
                "last_seen_ip": r[3],
                "last_seen_user_agent": r[4],
            }
            for r in cur.fetchall()
        ]
        cur.execute(
            "SELECT device_id, ip, user_agent, last_seen FROM user_ips WHERE user_id = ?"
            " ORDER BY last_seen, ip",
            (user_id,),
        )
        ips = [
            {"device_id": r[0], "ip": r[1], "user_agent": r[2], "last_seen_ts": r[3]}
            for r in cur.fetchall()
        ]
        return {"devices": devices, "ips": ips}

    return await db("lux_privacy_export_sessions", txn)


async def ledger_is_complete(db: DbRunner, state: LedgerState) -> int | None:
    """The ledger's watermark once a reconciliation has made it complete, else None."""
    complete_name, watermark_name = state

    def txn(cur: Cursor) -> int | None:
        cur.execute(
            "SELECT w.value FROM lux_privacy_quota_state AS c"
            " JOIN lux_privacy_quota_state AS w ON w.name = ? WHERE c.name = ?",
            (watermark_name, complete_name),
        )
        row = cur.fetchone()
        return None if row is None else int(row[0])

    return await db("lux_privacy_export_ledger_state", txn)


async def ledger_page(
    db: DbRunner, user_id: str, after: tuple[int, str] | None, limit: int
) -> list[tuple[int, str]]:
    """A page of (ts, event_id) of the non-state events the user sent, every room at
    once, in the order of the quota ledger's index (user_id, ts, event_id), after
    ``after``. With a complete ledger only (``ledger_is_complete``); the events sent
    since its watermark are ``sent_since``'s."""
    ts, event_id = after if after is not None else (-1, "")

    def txn(cur: Cursor) -> list[tuple[int, str]]:
        cur.execute(
            "SELECT ts, event_id FROM lux_privacy_quota_events WHERE user_id = ?"
            " AND (ts > ? OR (ts = ? AND event_id > ?)) ORDER BY ts, event_id LIMIT ?",
            (user_id, ts, ts, event_id, limit),
        )
        return [(int(r[0]), str(r[1])) for r in cur.fetchall()]

    return await db("lux_privacy_export_ledger_page", txn)


async def room_events_by_sender(
    db: DbRunner, user_id: str, room_id: str, after: tuple[int, str] | None, limit: int
) -> list[tuple[int, str]]:
    """A page of (ts, event_id) of the non-state events the user sent to one room, read
    by room (``events_order_room``) and sender: before the first reconciliation has
    made the quota ledger complete."""
    ts, event_id = after if after is not None else (-1, "")

    def txn(cur: Cursor) -> list[tuple[int, str]]:
        cur.execute(
            "SELECT e.origin_server_ts, e.event_id FROM events AS e WHERE e.room_id = ?"
            f" AND e.sender = ? AND {_NOT_STATE} AND {_NOT_REJECTED}"
            " AND (e.origin_server_ts > ? OR (e.origin_server_ts = ? AND e.event_id > ?))"
            " ORDER BY e.origin_server_ts, e.event_id LIMIT ?",
            (room_id, user_id, ts, ts, event_id, limit),
        )
        return [(int(r[0]), str(r[1])) for r in cur.fetchall()]

    return await db("lux_privacy_export_room_events", txn)


async def sent_since(db: DbRunner, user_id: str, watermark: int) -> list[str]:
    """The non-state events the user sent after the ledger's watermark, every room
    (Synapse's index on ``stream_ordering``; the accounting adds them at its next pass)."""

    def txn(cur: Cursor) -> list[str]:
        cur.execute(
            "SELECT e.event_id FROM events AS e WHERE e.stream_ordering > ? AND e.sender = ?"
            f" AND {_NOT_STATE} AND {_NOT_REJECTED} ORDER BY e.stream_ordering",
            (watermark, user_id),
        )
        return [str(r[0]) for r in cur.fetchall()]

    return await db("lux_privacy_export_events_since", txn)


async def client_events(
    api: ModuleApi, user_id: str, event_ids: Sequence[str]
) -> list[dict[str, Any]]:
    """These events as the user's own client receives them: Synapse's event store (a
    redacted event pruned) and its client serializer; events gone since are left out.

    The serializer changed within the supported range: newer releases build its config
    with ``create_config`` and take events wrapped in ``FilteredEvent`` (with the
    reader's membership, MSC4115); older ones take a ``SerializeEventConfig`` and the
    events themselves. Both are found by what the installed Synapse has."""
    hs = api._hs
    found = await hs.get_datastores().main.get_events_as_list(event_ids)
    serializer = hs.get_event_client_serializer()
    requester = create_requester(user_id)
    create_config = getattr(serializer, "create_config", None)
    old_config: Any = SerializeEventConfig  # its fields on releases without create_config
    if create_config is not None:
        config = await create_config(requester=requester, include_admin_metadata=False)
    else:
        config = old_config(requester=requester, include_admin_metadata=False)
    wrap = getattr(event_utils, "FilteredEvent", None)
    events: list[Any] = [wrap(event=e, membership=None) for e in found] if wrap else list(found)
    serialized: list[dict[str, Any]] = await serializer.serialize_events(
        events, api.get_current_time_msec(), config=config
    )
    return serialized


def media_store_path(api: ModuleApi) -> str:
    """Synapse's ``media_store_path`` (where exports go unless ``exports.directory``)."""
    path: str = api._hs.config.media.media_store_path
    return path
