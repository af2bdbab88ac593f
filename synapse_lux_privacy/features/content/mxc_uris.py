"""Every ``mxc://`` URI an event refers to (R13: a held room keeps all its media).

An ``mxc://`` URI can stand anywhere in an event's content: ``url``,
``info.thumbnail_url``, an ``<img src="mxc://...">`` in ``formatted_body``, a
sticker, a room avatar (``m.room.avatar``), a member's ``avatar_url``
(``m.room.member``), or any custom or nested field. So the whole JSON is walked,
keys and values, and every string is searched for URIs.

A URI is ``mxc://`` (as Synapse and clients spell it), a server name (a DNS name,
an IPv4 address or a bracketed IPv6 address, with an optional port) and a media
ID of the characters the Matrix spec allows (``A-Z a-z 0-9 _ -``), which ends
where another URI starts (two URIs written together are both found).
"""

import re

MXC_URI = re.compile(
    r"mxc://(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
    r"/(?:(?!mxc://)[A-Za-z0-9_-])+"
)


def mxc_uris(value: object) -> set[str]:
    """The ``mxc://`` URIs found in any string of a JSON value (walked without recursion)."""
    found: set[str] = set()
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            found.update(MXC_URI.findall(item))
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found
