"""Media a held room refers to (R13): kept with the room, reported as held.

Synapse does not record which room a file was sent to; the only link is the
``mxc://`` URI in the events that carry it, or in the room account data of the
room's users. Every URI an event in clear or a room account data refers to counts,
wherever it stands and in every form a client resolves (``mxc_uris``: ``url``,
thumbnails, ``formatted_body`` images, stickers, room and member avatars, custom
fields; HTML entities, percent escapes, an upper-case scheme); encrypted events hide
theirs, so media sent to an encrypted room can only be held through a hold on the
user who uploaded it. The attachments, remote media, quota and accounts rules and
the per-user report all ask this module what a held room keeps.
"""

import json
from collections.abc import Iterable

from synapse_lux_privacy.db import DbRunner
from synapse_lux_privacy.features.content.mxc_uris import MARKERS, mxc_uris
from synapse_lux_privacy.store.holds import HoldSet
from synapse_lux_privacy.synapse_adapter import events, media, room_account_data


def uris_by_room(rows: list[tuple[str, str]]) -> dict[str, str]:
    """``mxc://`` URI (canonical) -> a room whose events or account data refer to it, from
    (room_id, JSON) rows."""
    found: dict[str, str] = {}
    for room_id, raw in sorted(rows):
        for uri in sorted(mxc_uris(json.loads(raw))):
            found.setdefault(uri, room_id)
    return found


async def held_room_media(db: DbRunner, holds: HoldSet) -> dict[str, str]:
    """``mxc://`` URI (canonical, ``media.mxc``) -> the held room that refers to it in
    clear, in an event or a room account data."""
    if not holds.room_ids:
        return {}
    rows = await events.mxc_events_in_rooms(db, holds.room_ids, MARKERS)
    rows += await room_account_data.room_account_data_in_rooms(db, holds.room_ids, MARKERS)
    return uris_by_room(rows)


async def held_local_media(
    db: DbRunner, holds: HoldSet, server_name: str, media_ids: Iterable[str]
) -> set[str]:
    """Those of these local media IDs that an event of a held room refers to."""
    wanted = list(media_ids)
    if not wanted or not holds.room_ids:
        return set()
    held = await held_room_media(db, holds)
    return {m for m in wanted if media.mxc(server_name, m) in held}
