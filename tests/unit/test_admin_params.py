"""Admin API input checks (R13 hold targets; no input gives a 500): pure parsing.

Time: nothing here depends on time.
"""

import io
import json
from typing import Any

import pytest
from synapse.module_api.errors import SynapseError

from synapse_lux_privacy.admin_api import params


class _Request:
    """Just what ``read_json_object`` reads of a request: its body."""

    def __init__(self, body: bytes) -> None:
        self.content = io.BytesIO(body)


def _read(body: bytes) -> dict[str, Any]:
    return params.read_json_object(_Request(body), frozenset({"a"}))  # type: ignore[arg-type]


def _error(body: bytes) -> tuple[int, str]:
    with pytest.raises(SynapseError) as caught:
        _read(body)
    return caught.value.code, caught.value.errcode


@pytest.mark.parametrize(
    ("body", "status", "errcode"),
    [
        (b"[" * 5000 + b"]" * 5000, 400, "M_BAD_JSON"),
        (b'{"a":' * 17 + b"1" + b"}" * 17, 400, "M_BAD_JSON"),
        (b'{"a": "\\ud800"}', 400, "M_BAD_JSON"),
        (b'{"\\udc00": 1}', 400, "M_BAD_JSON"),
        (b'{"a": ["x\\u0000"]}', 400, "M_BAD_JSON"),
        (b'{"a": NaN}', 400, "M_NOT_JSON"),
        (b'{"a": -Infinity}', 400, "M_NOT_JSON"),
        (b'{"a": ' + b"9" * 5000 + b"}", 400, "M_NOT_JSON"),
        (b'{"a": "' + b"x" * params.MAX_BODY_BYTES + b'"}', 413, "M_TOO_LARGE"),
    ],
)
def test_bodies_no_handler_should_see_are_refused_with_a_matrix_error(
    body: bytes, status: int, errcode: str
) -> None:
    assert _error(body) == (status, errcode)


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        (b'{"a": true, "a": false}', "M_BAD_JSON"),
        (b'{"a": [{"k": 1, "k": 1}]}', "M_BAD_JSON"),
        (b"\xef\xbb\xbf{}", "M_NOT_JSON"),
        ('{"a": 1}'.encode("utf-16"), "M_NOT_JSON"),
        ('{"a": 1}'.encode("utf-16-be"), "M_NOT_JSON"),
        ('{"a": 1}'.encode("utf-32"), "M_NOT_JSON"),
        ('{"a": "\u00e9"}'.encode("latin-1"), "M_NOT_JSON"),
        (b'{"a": "\xed\xa0\x80"}', "M_NOT_JSON"),  # a surrogate encoded: not UTF-8
    ],
)
def test_bodies_with_more_than_one_reading_are_refused(body: bytes, errcode: str) -> None:
    """A key given twice, a byte-order mark, another encoding: refused, never guessed."""
    assert _error(body) == (400, errcode)


def test_a_key_given_twice_is_named_and_cut_short() -> None:
    key = "k" * 10_000
    with pytest.raises(SynapseError) as caught:
        params.parse_json_body(b'{"%s": 1, "%s": 2}' % (key.encode(), key.encode()))
    assert caught.value.msg == f"Content has the key {key[:64]!r}… twice in one object."


def test_blank_bodies_are_empty_objects_but_other_whitespace_is_not_json() -> None:
    assert _read(b" \r\n\t") == {}
    assert _error("\u3000".encode()) == (400, "M_NOT_JSON")


def test_a_body_at_the_depth_limit_with_surrogate_pairs_is_read() -> None:
    nested: object = "\U0001f600 é"
    for _ in range(params.MAX_DEPTH - 1):
        nested = [nested]
    assert _read(json.dumps({"a": nested}).encode()) == {"a": nested}


@pytest.mark.parametrize(
    "value",
    ["@alice:example.org", "@a.b_c=d/e+f:[::1]:8448", "@x:1.2.3.4", "@" + "a" * 245 + ":lux.test"],
)
def test_r13_well_formed_user_ids_are_taken_exactly(value: str) -> None:
    assert params.user_id(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "@alice:example.org ",
        " @alice:example.org",
        "@al ice:example.org",
        "@alice:exa mple.org",
        "@alice",
        "@:example.org",
        "alice:example.org",
        "@alicé:example.org",
        "@alice\x00:example.org",
        "@" + "a" * 246 + ":lux.test",
        42,
        None,
    ],
)
def test_r13_malformed_user_ids_are_refused(value: object) -> None:
    with pytest.raises(SynapseError) as caught:
        params.user_id(value)
    assert (caught.value.code, caught.value.errcode) == (400, "M_INVALID_PARAM")
    assert len(str(caught.value.msg)) < 200


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("!abc:example.org", True),
        ("!AbC_d-e~f.g+h/i=j", True),
        ("!abc:example.org:8448", True),
        ("!#alias:example.org", False),
        ("#alias:example.org", False),
        ("!", False),
        ("!abc:exa mple.org", False),
        ("!abc:example.org\n", False),
        ("!" + "a" * 255, False),
    ],
)
def test_r13_room_ids_are_checked(value: str, ok: bool) -> None:
    if ok:
        assert params.room_id(value) == value
    else:
        with pytest.raises(SynapseError):
            params.room_id(value)
