"""What the storage quota (R4, R6) reads from Synapse, and the Synapse calls it makes.

Reads with SELECT only: ``events``, ``event_json`` and ``rooms`` (bytes of the events
local users sent), ``local_media_repository`` and ``local_media_repository_thumbnails``
(bytes of the media they uploaded), joined with the module's own ledgers
``lux_privacy_quota_events`` / ``lux_privacy_quota_media``. Deletions are not here:
the quota evicts through the content feature's adapter functions
(``media.delete_local_media``, ``events.expunge_events``).

Sizes are as Synapse stores them: ``LENGTH(event_json.json)`` for an event (Synapse
writes ASCII-only JSON), ``media_length`` plus every thumbnail's ``thumbnail_length``
for a file. URL-preview entries (``url_cache``) are Synapse's cache, not uploads, and
uploads still pending (``media_length`` NULL) weigh nothing yet.
"""

from collections.abc import Sequence
from typing import Any

import attrs
from synapse.api.room_versions import KNOWN_ROOM_VERSIONS
from synapse.events import make_event_from_dict
from synapse.events.utils import prune_event
from synapse.module_api import ModuleApi
from synapse.util.json import json_decoder, json_encoder

from synapse_lux_privacy.db import Cursor, chunks, placeholders
from synapse_lux_privacy.synapse_adapter.accounts import server_notices_user


@attrs.frozen
class StoredMedia:
    """A local upload as the quota weighs it."""

    media_id: str
    user_id: str
    ts: int  # created_ts: when it was uploaded
    size: int  # the file and every thumbnail


@attrs.frozen
class SentEvent:
    """A non-state event a local user sent, as the quota weighs it."""

    event_id: str
    user_id: str
    room_id: str
    ts: int  # origin_server_ts
    stream: int
    size: int  # stored JSON
    pruned_size: int  # stored JSON once expunged (what a redaction keeps)


@attrs.frozen
class Recheck:
    """A ledger row next to what Synapse stores now (``current`` None: gone)."""

    item_id: str
    user_id: str
    recorded: int  # the size the ledger holds
    current: int | None


_MEDIA_SIZE = (
    "COALESCE(m.media_length, 0) + COALESCE((SELECT SUM(t.thumbnail_length)"
    " FROM local_media_repository_thumbnails AS t WHERE t.media_id = m.media_id), 0)"
)
_MEDIA_COLUMNS = f"m.media_id, m.user_id, m.created_ts, {_MEDIA_SIZE}"
_COUNTED_MEDIA = "m.url_cache IS NULL AND m.user_id IS NOT NULL AND m.media_length IS NOT NULL"
_EVENT_COLUMNS = (
    "e.event_id, e.sender, e.room_id, e.origin_server_ts, e.stream_ordering, ej.json,"
    " ej.internal_metadata, r.room_version"
)
_COUNTED_EVENT = "e.state_key IS NULL AND e.rejection_reason IS NULL AND e.sender LIKE ? ESCAPE '!'"
_NOT_IN_EVENT_LEDGER = (
    "NOT EXISTS (SELECT 1 FROM lux_privacy_quota_events AS q WHERE q.event_id = e.event_id)"
)


def _media(row: Sequence[Any]) -> StoredMedia:
    return StoredMedia(str(row[0]), str(row[1]), int(row[2] or 0), int(row[3] or 0))


def local_sender_pattern(server_name: str) -> str:
    """A LIKE pattern (escape ``!``) for user IDs of this server; check ``is_mine`` after."""
    escaped = server_name.replace("!", "!!").replace("%", "!%").replace("_", "!_")
    return f"%:{escaped}"


def pruned_length(json_text: str, internal_metadata: str, room_version_id: str | None) -> int:
    """The length of an event's JSON once expunged, computed as Synapse's expiry does.

    ``expire_event`` stores ``redact_event(event).get_pdu_json()`` (before 1.155 the
    same JSON from ``prune_event_dict``); the event is built
    from the stored row as ``EventsWorkerStore`` builds it (``make_event_from_dict``:
    ``make_event_from_json`` only exists from Synapse 1.155 on). An event Synapse could
    not parse keeps its full length (it is then never chosen for eviction).
    """
    room_version = KNOWN_ROOM_VERSIONS.get(room_version_id or "")
    if room_version is None:
        return len(json_text)
    try:
        event = make_event_from_dict(
            json_decoder.decode(json_text), room_version, json_decoder.decode(internal_metadata)
        )
        return len(json_encoder.encode(prune_event(event).get_pdu_json()))
    except Exception:
        return len(json_text)


def _sent(row: Sequence[Any]) -> SentEvent:
    json_text = str(row[5])
    return SentEvent(
        event_id=str(row[0]),
        user_id=str(row[1]),
        room_id=str(row[2]),
        ts=int(row[3] or 0),
        stream=int(row[4] or 0),
        size=len(json_text),
        pruned_size=pruned_length(json_text, str(row[6] or "{}"), row[7]),
    )


def persisted_stream_position(api: ModuleApi) -> int:
    """The stream ordering up to which every event is persisted (``get_room_max_stream_ordering``).

    Events are numbered before they are written; reading only up to this position
    means no event is ever skipped by a watermark that has passed it.
    """
    position: int = api._hs.get_datastores().main.get_room_max_stream_ordering()
    return position


def events_sent_txn(
    cur: Cursor,
    server_name: str,
    after: int,
    upto: int,
    limit: int,
    missing_only: bool = False,
) -> list[SentEvent]:
    """Non-state, non-rejected events sent from this server, ``after < stream <= upto``.

    In stream order. ``missing_only``: only those the quota's ledger does not hold yet
    (reconciliation).
    """
    missing = f" AND {_NOT_IN_EVENT_LEDGER}" if missing_only else ""
    cur.execute(
        f"SELECT {_EVENT_COLUMNS} FROM events AS e"
        " JOIN event_json AS ej ON ej.event_id = e.event_id"
        " LEFT JOIN rooms AS r ON r.room_id = e.room_id"
        f" WHERE e.stream_ordering > ? AND e.stream_ordering <= ? AND {_COUNTED_EVENT}{missing}"
        " ORDER BY e.stream_ordering LIMIT ?",
        (after, upto, local_sender_pattern(server_name), limit),
    )
    return [_sent(row) for row in cur.fetchall()]


def min_stream_txn(cur: Cursor) -> int:
    """The lowest stream ordering stored (backfilled events are below zero)."""
    cur.execute("SELECT MIN(stream_ordering) FROM events", ())
    row = cur.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def user_media_txn(cur: Cursor, user_id: str) -> list[StoredMedia]:
    """Every counted upload of one user (Synapse's ``users_have_local_media`` index)."""
    cur.execute(
        f"SELECT {_MEDIA_COLUMNS} FROM local_media_repository AS m"
        f" WHERE m.user_id = ? AND {_COUNTED_MEDIA}",
        (user_id,),
    )
    return [_media(row) for row in cur.fetchall()]


def missing_media_txn(cur: Cursor, after: str, limit: int) -> list[StoredMedia]:
    """Counted uploads the quota's ledger does not hold, in media ID order after ``after``."""
    cur.execute(
        f"SELECT {_MEDIA_COLUMNS} FROM local_media_repository AS m"
        f" WHERE m.media_id > ? AND {_COUNTED_MEDIA} AND NOT EXISTS"
        " (SELECT 1 FROM lux_privacy_quota_media AS q WHERE q.media_id = m.media_id)"
        " ORDER BY m.media_id LIMIT ?",
        (after, limit),
    )
    return [_media(row) for row in cur.fetchall()]


def recheck_media_txn(cur: Cursor, media_ids: Sequence[str]) -> list[Recheck]:
    """Ledger rows of these uploads, with the size Synapse stores now."""
    found: list[Recheck] = []
    for part in chunks(media_ids):
        cur.execute(
            f"SELECT q.media_id, q.user_id, q.size, CASE WHEN m.media_id IS NULL THEN NULL ELSE"
            f" {_MEDIA_SIZE} END FROM lux_privacy_quota_media AS q"
            f" LEFT JOIN local_media_repository AS m ON m.media_id = q.media_id AND"
            f" {_COUNTED_MEDIA} WHERE q.media_id IN ({placeholders(part)})",
            tuple(part),
        )
        found.extend(_recheck(row) for row in cur.fetchall())
    return found


def recheck_events_txn(cur: Cursor, event_ids: Sequence[str]) -> list[Recheck]:
    """Ledger rows of these events, with the length of their stored JSON now."""
    found: list[Recheck] = []
    for part in chunks(event_ids):
        cur.execute(
            "SELECT q.event_id, q.user_id, q.size, LENGTH(ej.json)"
            " FROM lux_privacy_quota_events AS q"
            " LEFT JOIN event_json AS ej ON ej.event_id = q.event_id"
            f" WHERE q.event_id IN ({placeholders(part)})",
            tuple(part),
        )
        found.extend(_recheck(row) for row in cur.fetchall())
    return found


def _recheck(row: Sequence[Any]) -> Recheck:
    return Recheck(str(row[0]), str(row[1]), int(row[2]), None if row[3] is None else int(row[3]))


def max_upload_size(api: ModuleApi) -> int:
    """Synapse's ``max_upload_size``: the media config a client sees without a quota."""
    size: int = api._hs.config.media.max_upload_size
    return size


def can_send_server_notices(api: ModuleApi) -> bool:
    """Whether this process can send server notices: configured, and the main process.

    Synapse's ``ServerNoticesManager`` refuses to run on workers.
    """
    return server_notices_user(api) is not None and api.worker_app is None


async def send_server_notice(api: ModuleApi, user_id: str, body: str) -> None:
    """Send a text server notice with Synapse's ``ServerNoticesManager`` (creates the room)."""
    manager = api._hs.get_server_notices_manager()
    await manager.send_notice(user_id, {"msgtype": "m.text", "body": body})
