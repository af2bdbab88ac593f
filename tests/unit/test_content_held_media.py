"""Media of held rooms (R13) and the content rules' cursors: pure parsing.

Time: nothing here depends on time.
"""

import json

from synapse_lux_privacy.features.content.held_media import uris_by_room
from synapse_lux_privacy.features.content.messages import NON_STATE, RoomScan


def event(content: object) -> str:
    return json.dumps({"type": "m.room.message", "content": content})


def test_r13_media_urls_sent_in_clear_are_traced_to_their_room() -> None:
    rows = [
        ("!a", event({"msgtype": "m.image", "url": "mxc://s/pic",
                      "info": {"thumbnail_url": "mxc://s/thumb"}})),
        ("!b", event({"msgtype": "m.file", "url": "mxc://s/pic"})),
        ("!b", event({"url": "https://not.mxc/x", "info": "not a dict"})),
        ("!c", event("not an object")),
    ]  # fmt: skip
    assert uris_by_room(rows) == {"mxc://s/pic": "!a", "mxc://s/thumb": "!a"}


def test_a_room_scan_cursor_round_trips() -> None:
    for scan in (RoomScan("!r:x", NON_STATE, 7, (9, -3)), RoomScan("!r:x", NON_STATE)):
        assert RoomScan.decode(scan.encode()) == scan
    assert RoomScan.decode(None) is None
