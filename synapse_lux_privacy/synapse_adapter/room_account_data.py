"""Synapse's room account data: read to keep the media a held room's data refers to (R13).

``room_account_data`` holds, per local user and room, data a client stores for that
room (tags, read markers, custom types), which may refer to a file. Read with SELECT
only, bounded by Synapse's index on ``room_id``.
"""

from collections.abc import Iterable, Sequence

from synapse_lux_privacy.db import Cursor, DbRunner, chunks, holds_any_sql, placeholders


async def room_account_data_in_rooms(
    db: DbRunner, room_ids: Iterable[str], markers: Sequence[str]
) -> list[tuple[str, str]]:
    """(room_id, content JSON) of every room account data of these rooms, of any user,
    whose content in lower case holds one of ``markers`` (``mxc_uris.MARKERS``)."""
    rooms = sorted(room_ids)
    holds_marker, marker_args = holds_any_sql("content", markers)

    def txn(cur: Cursor) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        for part in chunks(rooms):
            cur.execute(
                "SELECT room_id, content FROM room_account_data"
                f" WHERE room_id IN ({placeholders(part)}) AND {holds_marker}",
                (*part, *marker_args),
            )
            found.extend((str(r[0]), str(r[1])) for r in cur.fetchall())
        return found

    return await db("lux_privacy_room_account_data_in_rooms", txn)
