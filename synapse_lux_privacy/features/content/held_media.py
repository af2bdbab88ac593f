"""Media a held room refers to (R13): kept with the room, reported as held.

Synapse does not record which room a file was sent to; the only link is the
``mxc://`` URI in the events that carry it. Events in clear reveal it (``url``,
``info.thumbnail_url``); encrypted events hide it, so media sent to an encrypted
room can only be held through a hold on the user who uploaded it.
"""

import json
from collections.abc import Iterator
from typing import Any

from synapse_lux_privacy.db import DbRunner
from synapse_lux_privacy.store.holds import HoldSet
from synapse_lux_privacy.synapse_adapter import events


def _uris(content: Any) -> Iterator[str]:
    if not isinstance(content, dict):
        return
    info = content.get("info")
    thumbnail = info.get("thumbnail_url") if isinstance(info, dict) else None
    for value in (content.get("url"), thumbnail):
        if isinstance(value, str) and value.startswith("mxc://"):
            yield value


def uris_by_room(rows: list[tuple[str, str]]) -> dict[str, str]:
    """``mxc://`` URI -> a room whose events refer to it, from (room_id, event JSON) rows."""
    found: dict[str, str] = {}
    for room_id, raw in rows:
        for uri in _uris(json.loads(raw).get("content")):
            found.setdefault(uri, room_id)
    return found


async def held_room_media(db: DbRunner, holds: HoldSet) -> dict[str, str]:
    """``mxc://`` URI -> the held room it was sent to in clear."""
    if not holds.room_ids:
        return {}
    return uris_by_room(await events.urls_in_rooms(db, holds.room_ids))
