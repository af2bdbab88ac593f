"""R13: every ``mxc://`` URI an event refers to is found, wherever it stands and in
whatever form a client resolves (HTML entities, percent escapes, any case of the scheme);
nothing else; and the candidate queries' pre-filter lets every such text through.

Time: nothing here depends on time. Property-based (hypothesis): generated event
contents of any shape, with URIs planted in keys, values and inside text; generated
encodings of media IDs.
"""

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from synapse_lux_privacy.features.content.held_media import uris_by_room
from synapse_lux_privacy.features.content.mxc_uris import MARKERS, might_refer, mxc_uris

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
# Text that holds no URI of its own, nor an escape that could extend a planted one; what
# follows a planted URI ends its media ID.
FILLER = st.text(max_size=30).filter(
    lambda t: "mxc://" not in t.lower() and "&" not in t and "%" not in t
)
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
    assert mxc_uris({"url": "https://s/x", "x": "mxc:/s/y", "y": "mxc%3A//s/z", "z": 7}) == set()


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


def _percent(char: str, upper: bool) -> str:
    return f"%{ord(char):02X}" if upper else f"%{ord(char):02x}"


def _entities(char: str) -> list[str]:
    """The HTML entities that spell this character (each with its semicolon)."""
    named = {":": ["&colon;"], "/": ["&sol;"]}.get(char, [])
    return [f"&#{ord(char)};", f"&#x{ord(char):x};", f"&#X{ord(char):X};", *named]


@st.composite
def encodings(draw: st.DrawFn) -> tuple[str, str]:
    """(a URI as an event may write it, the canonical URI of the file it refers to): any
    case of the scheme, characters of the server name and media ID percent-escaped (in
    upper- or lower-case hex), and maybe every character then written as an HTML entity."""
    server = draw(_HOST | _IPV4)
    port = draw(_PORT)
    media_id = draw(_MEDIA_ID)
    canonical = f"mxc://{server}{'' if port is None else f':{port}'}/{media_id}"

    def written(part: str) -> str:
        return "".join(
            draw(st.sampled_from([c, _percent(c, True), _percent(c, False)])) for c in part
        )

    scheme = "".join(draw(st.sampled_from([c, c.upper()])) for c in "mxc") + "://"
    uri = scheme + written(server) + ("" if port is None else f":{port}") + "/" + written(media_id)
    if draw(st.booleans()):
        uri = "".join(draw(st.sampled_from([c, *_entities(c)])) for c in uri)
    return uri, canonical


@settings(max_examples=300, deadline=None)
@given(encodings(), st.sampled_from(["html", "field", "key"]))
def test_r13_every_encoding_of_a_media_id_refers_to_its_file(
    case: tuple[str, str], where: str
) -> None:
    written, canonical = case
    content: Any = {
        "html": {"format": "org.matrix.custom.html", "formatted_body": f'<img src="{written}">'},
        "field": {"org.example": {"file": f"see {written} now"}},
        "key": {written: True},
    }[where]
    assert canonical in mxc_uris(content)
    assert might_refer(json.dumps(content))  # as Synapse stores it (ASCII, escapes kept)


NEAR_MISSES = st.text(alphabet='mxcMXC:/&#;%0123456789abcdefABCDEFsolnSOLN<>"= ', max_size=60)


@settings(max_examples=500, deadline=None)
@given(st.lists(NEAR_MISSES | encodings().map(lambda c: c[0]), max_size=5).map("".join))
def test_r13_the_pre_filter_lets_through_every_text_the_decoder_finds_a_uri_in(
    text: str,
) -> None:
    if mxc_uris(text):
        assert might_refer(text)
        assert might_refer(json.dumps({"body": text}))


def test_r13_the_markers_cover_every_named_entity_spelling_a_character_of_the_scheme() -> None:
    """The pre-filter's claim: only ``&#``, ``&colon;`` and ``&sol;`` can spell one of
    ``mxcMXC:/``, so a text without them holds its ``mxc://`` literally."""
    from html.entities import html5

    spelling = {name for name, text in html5.items() if set(text) & set("mxcMXC:/")}
    assert spelling == {"colon;", "sol;"}
    assert all(any(f"&{name}".lower().startswith(m) for m in MARKERS) for name in spelling)


def test_r13_the_forms_of_the_report_of_issue_25_and_what_does_not_count() -> None:
    assert mxc_uris('<img src="&#109;xc://localhost/UKdm">') == {"mxc://localhost/UKdm"}
    assert mxc_uris('<img src="mxc://localhost/%55xZD">') == {"mxc://localhost/UxZD"}
    assert mxc_uris("MXC://localhost:8448/a_b-c") == {"mxc://localhost:8448/a_b-c"}
    assert mxc_uris("mxc://LocalHost/a") == {"mxc://LocalHost/a"}  # server names are exact
    assert mxc_uris("&#x6D;xc&colon;&sol;/local&#37;68ost/x&#45;y") == {"mxc://localhost/x-y"}
    # decoded once, as a browser decodes entities and Synapse the download path
    assert mxc_uris("mxc://s/%2555") == {"mxc://s/%55"}
    assert mxc_uris("&amp;#109;xc://s/a") == set()
    assert mxc_uris("%6Dxc://s/a mxc%3A//s/b mxc://s%2Fc") == set()
