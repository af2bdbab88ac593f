"""R13: every ``mxc://`` URI an event refers to is found, wherever it stands; nothing else.

Time: nothing here depends on time. Property-based (hypothesis): generated event
contents of any shape, with URIs planted in keys, values and inside text.
"""

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from synapse_lux_privacy.features.content.held_media import uris_by_room
from synapse_lux_privacy.features.content.mxc_uris import mxc_uris

_HOST = st.from_regex(r"[a-z0-9][a-z0-9.-]{0,20}", fullmatch=True)
_IPV4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
_IPV6 = st.from_regex(r"\[[0-9a-f:]{2,39}\]", fullmatch=True)
_PORT = st.none() | st.integers(1, 65535)
_MEDIA_ID = st.from_regex(r"[A-Za-z0-9_-]{1,32}", fullmatch=True)
URIS = st.builds(
    lambda server, port, media_id: f"mxc://{server}{'' if port is None else f':{port}'}/{media_id}",
    _HOST | _IPV4 | _IPV6,
    _PORT,
    _MEDIA_ID,
)
# Text that holds no URI of its own; what follows a planted URI ends its media ID.
FILLER = st.text(max_size=30).filter(lambda t: "mxc://" not in t)
ENDS = st.sampled_from(['"', "'", " ", ">", "<", "\n", ")", ".", ",", "?", "#", "/", "\\", "é"])


@st.composite
def text_with(draw: st.DrawFn, uris: list[str]) -> str:
    """Filler text with these URIs planted in it, each followed by a character that ends it."""
    parts = [draw(FILLER)]
    for uri in uris:
        parts += [uri, draw(ENDS) + draw(FILLER) if draw(st.booleans()) else ""]
    return "".join(parts)


@st.composite
def contents(draw: st.DrawFn) -> tuple[Any, set[str]]:
    """A JSON value of any shape and the URIs planted in it (as keys, values, in text)."""
    planted = draw(st.lists(URIS, max_size=8))
    groups: list[list[str]] = [[] for _ in range(draw(st.integers(1, 6)))]
    for uri in planted:
        groups[draw(st.integers(0, len(groups) - 1))].append(uri)
    strings = [draw(text_with(group)) for group in groups]
    leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | FILLER
    value: Any = draw(
        st.recursive(
            leaves,
            lambda inner: st.lists(inner, max_size=4) | st.dictionaries(FILLER, inner, max_size=4),
            max_leaves=20,
        )
    )
    for text in strings:  # each planted string goes somewhere: a key, a value, a list item
        where = draw(st.sampled_from(["key", "value", "list"]))
        if where == "key":
            value = {text: value}
        elif where == "value":
            value = {draw(FILLER): value, "x" + draw(FILLER): text}
        else:
            value = [value, text]
    return value, set(planted)


@settings(max_examples=200, deadline=None)
@given(contents())
def test_r13_every_planted_uri_is_found_and_nothing_else(case: tuple[Any, set[str]]) -> None:
    content, planted = case
    assert mxc_uris(content) == planted
    assert mxc_uris(json.loads(json.dumps(content))) == planted  # as stored in event_json


@given(FILLER)
def test_r13_text_without_uris_refers_to_nothing(text: str) -> None:
    assert mxc_uris({"body": text, "formatted_body": f"<p>{text}</p>"}) == set()


def test_r13_uris_of_every_place_an_event_can_hold_them() -> None:
    formatted = {
        "msgtype": "m.text",
        "body": "i",
        "format": "org.matrix.custom.html",
        "formatted_body": '<p>hi <img src="mxc://s/inline" alt="x"></p>',
    }
    assert mxc_uris(formatted) == {"mxc://s/inline"}
    sticker = {"body": "s", "url": "mxc://s/sticker", "info": {"thumbnail_url": "mxc://s/th"}}
    assert mxc_uris(sticker) == {"mxc://s/sticker", "mxc://s/th"}
    assert mxc_uris({"url": "mxc://s/room-avatar"}) == {"mxc://s/room-avatar"}
    member = {"membership": "join", "avatar_url": "mxc://other.example:8448/face"}
    assert mxc_uris(member) == {"mxc://other.example:8448/face"}
    custom = {"org.example": [{"deep": {"er": ["see mxc://[::1]/x_y-z."]}}], "mxc://s/k": 1}
    assert mxc_uris(custom) == {"mxc://[::1]/x_y-z", "mxc://s/k"}
    assert mxc_uris({"url": "https://s/x", "x": "mxc:/s/y", "y": "MXC://s/z", "z": 7}) == set()


def test_r13_media_of_held_rooms_are_traced_to_their_room() -> None:
    def event(content: object) -> str:
        return json.dumps({"type": "m.room.message", "content": content})

    rows = [
        ("!b", event({"msgtype": "m.file", "url": "mxc://s/pic"})),
        ("!a", event({"msgtype": "m.image", "url": "mxc://s/pic",
                      "info": {"thumbnail_url": "mxc://s/thumb"}})),
        ("!c", event({"formatted_body": '<img src="mxc://s/inline">'})),
        ("!c", event("not an object")),
    ]  # fmt: skip
    assert uris_by_room(rows) == {
        "mxc://s/pic": "!a",
        "mxc://s/thumb": "!a",
        "mxc://s/inline": "!c",
    }
