"""Every ``mxc://`` URI an event or room account data refers to (R13: a held room keeps
all its media), in whatever form a client would still resolve.

An ``mxc://`` URI can stand anywhere in an event's content: ``url``,
``info.thumbnail_url``, an ``<img src="mxc://...">`` in ``formatted_body``, a
sticker, a room avatar (``m.room.avatar``), a member's ``avatar_url``
(``m.room.member``), or any custom or nested field. So the whole JSON is walked,
keys and values, and every string is searched for URIs.

A URI is ``mxc://`` in any case of the scheme (``MXC://``: schemes are
case-insensitive), a server name (a DNS name, an IPv4 address or a bracketed IPv6
address, with an optional port) and a media ID of the characters the Matrix spec
allows (``A-Z a-z 0-9 _ -``), which ends where another URI starts (two URIs written
together are both found). What counts as a reference, and why:

- HTML entities are decoded once, as a browser does with an ``<img src>`` in
  ``formatted_body`` (``&#109;xc://``, ``&#x6D;``, ``&colon;``, ``&sol;``): every
  string is searched as it stands and decoded (``html.unescape``), since a field
  may be HTML or not;
- percent escapes in the server name and media ID are decoded once, as Synapse does
  with the ``/download/<server>/<media ID>`` path a client builds from the URI
  (``urllib.parse.unquote`` of each path segment): ``mxc://s/%55xZD`` is the file
  ``UxZD``; a double escape (``%2555``) decodes to ``%55``, which Synapse does not
  serve as ``U``, so it is not a reference; an escaped scheme (``mxc%3A//``) or an
  escaped separator (``%2F``) is not a URI a client resolves;
- the server name stays as written (after decoding): Synapse compares server names
  exactly, so ``mxc://LOCALHOST/x`` is not a file of ``localhost``.

Each URI found is returned in the canonical form ``mxc://<server>/<media ID>`` that
``media.mxc`` builds, so a held file is recognised whatever form referred to it.

The candidate queries (``MARKERS``) must let through every text in which the decoder
can find a URI: a text with a URI holds ``mxc://`` in some case, or one of the HTML
entities that could spell a character of it (``&#`` numeric ones, ``&colon;``,
``&sol;``: the only named HTML5 entities whose text holds one of ``mxcMXC:/``).
"""

import html
import re
from urllib.parse import unquote

_ESCAPED = r"%[0-9A-Fa-f]{2}"
MXC_URI = re.compile(
    rf"(?i:mxc)://((?:[A-Za-z0-9.-]|{_ESCAPED})+|\[[0-9A-Fa-f:.]+\])((?::[0-9]{{1,5}})?)"
    rf"/((?:(?!(?i:mxc)://)(?:[A-Za-z0-9_-]|{_ESCAPED}))+)"
)

# Lower-case substrings of which a text holding a URI the decoder finds has at least
# one (see the module's docstring); the candidate queries search for them.
MARKERS = ("mxc://", "&#", "&colon", "&sol")


def might_refer(text: str) -> bool:
    """Whether a text passes the candidate queries' pre-filter (``MARKERS``)."""
    lowered = text.lower()
    return any(marker in lowered for marker in MARKERS)


def _uris_in(text: str) -> set[str]:
    found: set[str] = set()
    for source in {text, html.unescape(text)}:
        for server, port, media_id in MXC_URI.findall(source):
            found.add(f"mxc://{unquote(server)}{port}/{unquote(media_id)}")
    return found


def mxc_uris(value: object) -> set[str]:
    """The ``mxc://`` URIs (canonical) in any string of a JSON value (walked without
    recursion)."""
    found: set[str] = set()
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            found.update(_uris_in(item))
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found
