"""Validation of admin API input: every bad value becomes a Matrix error, never a 500."""

import json
import re
from typing import Any

from synapse.module_api import ModuleApi, SynapseRequest
from synapse.module_api.errors import Codes, SynapseError

_HOLD_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")
_MAX_INT = 2**63 - 1
# The bodies of this API are a few small fields: anything larger or deeper is refused.
MAX_BODY_BYTES = 1024 * 1024
MAX_DEPTH = 16
# Matrix identifiers: at most 255 characters (spec "Common identifier format").
MAX_ID_LENGTH = 255
# A value echoed in an error message is cut to this many characters.
ECHO_LENGTH = 64
# Byte-order marks: a body is UTF-8 without one (RFC 8259 section 8.1).
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_JSON_WHITESPACE = " \t\r\n"
# Text a database cannot store: NUL (PostgreSQL refuses it) and lone surrogates (not UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# A server name: a DNS name, an IPv4 address or a bracketed IPv6 address, then a port.
_SERVER_NAME = re.compile(r"(?:[A-Za-z0-9.-]{1,255}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")
_ROOM_ID = re.compile(r"![A-Za-z0-9._~+/=-]+(?::" + _SERVER_NAME.pattern + ")?")


def invalid(message: str) -> SynapseError:
    return SynapseError(400, message, Codes.INVALID_PARAM)


def bad_json(message: str) -> SynapseError:
    return SynapseError(400, message, Codes.BAD_JSON)


def read_json_object(request: SynapseRequest, allowed_keys: frozenset[str]) -> dict[str, Any]:
    """The request body as a JSON object (an empty body is ``{}``); unknown keys are errors.

    Every body of every endpoint comes through here, so no input reaches a handler that
    could make it fail with a 500 or read it otherwise than its sender meant: bodies over
    ``MAX_BODY_BYTES`` are 413; a byte-order mark, bytes that are not UTF-8,
    ``NaN``/``Infinity`` are 400 ``M_NOT_JSON``; a key given twice in one object
    (``{"dry_run": true, "dry_run": false}``), bodies nested deeper than ``MAX_DEPTH``
    and strings with NUL characters or lone surrogates (which no database stores) are
    400 ``M_BAD_JSON``.
    """
    raw = request.content.read() if request.content is not None else b""
    if len(raw) > MAX_BODY_BYTES:
        raise SynapseError(413, f"Content larger than {MAX_BODY_BYTES} bytes.", Codes.TOO_LARGE)
    body = parse_json_body(raw)
    if not isinstance(body, dict):
        raise bad_json("Content must be a JSON object.")
    unknown = sorted(set(body) - allowed_keys)
    if unknown:
        raise invalid(
            f"unknown field(s) {', '.join(map(shown, unknown[:5]))}"
            f"{' ...' if len(unknown) > 5 else ''}; allowed: {sorted(allowed_keys)}"
        )
    return body


def parse_json_body(raw: bytes) -> object:
    """The JSON value of a body, read one way only: UTF-8 without a byte-order mark, each
    object's keys unique, no constants, nesting and strings checked (``_check_storable``).
    An empty or blank body is ``{}``."""
    if raw.startswith(_BOMS):
        raise not_json("Content starts with a byte-order mark; send UTF-8 without one.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise not_json("Content is not UTF-8.") from None
    if not text.strip(_JSON_WHITESPACE):
        return {}
    try:
        body = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise bad_json(f"Content nested deeper than {MAX_DEPTH} levels.") from None
    except _DuplicateKey as e:
        raise bad_json(f"Content has the key {shown(e.key)} twice in one object.") from None
    except ValueError:
        raise not_json("Content not JSON.") from None
    _check_storable(body)
    return body


def not_json(message: str) -> SynapseError:
    return SynapseError(400, message, Codes.NOT_JSON)


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """One JSON object; a key given twice is ambiguous (which one wins?) and refused."""
    body: dict[str, Any] = {}
    for key, value in pairs:
        if key in body:
            raise _DuplicateKey(key)
        body[key] = value
    return body


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _check_storable(body: object) -> None:
    """Refuse nesting past MAX_DEPTH and strings a database cannot store (walked without
    recursion, so no depth makes it fail)."""
    pending: list[tuple[object, int]] = [(body, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if _UNSTORABLE.search(value):
                raise bad_json("Content has a NUL character or a lone surrogate.")
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_DEPTH:
            raise bad_json(f"Content nested deeper than {MAX_DEPTH} levels.")
        items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        pending.extend((item, depth + 1) for item in items)


def query_int(request: SynapseRequest, name: str, default: int, minimum: int, maximum: int) -> int:
    values = request.args.get(name.encode("ascii")) if request.args else None
    if not values:
        return default
    text: str = values[0].decode("utf-8", errors="replace")
    if not re.fullmatch(r"-?[0-9]{1,19}", text):
        raise invalid(f"query parameter {name}: {shown(text)} is not an integer")
    value = int(text)
    if not minimum <= value <= maximum:
        raise invalid(f"query parameter {name}: {value} is not between {minimum} and {maximum}")
    return value


def query_bool(request: SynapseRequest, name: str) -> bool:
    values = request.args.get(name.encode("ascii")) if request.args else None
    if not values:
        return False
    text: str = values[0].decode("utf-8", errors="replace")
    if text not in ("true", "false"):
        raise invalid(f"query parameter {name}: {shown(text)} must be true or false")
    return text == "true"


def optional_bool(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise invalid(f"{key} must be true, false or null")
    return value


def optional_timestamp(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_INT:
        raise invalid(f"{key} must be null or a time in milliseconds since the epoch")
    return value


def required_text(body: dict[str, Any], key: str, max_length: int = 1000) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise invalid(f"{key} must be a non-empty string of at most {max_length} characters")
    return value


def shown(value: str) -> str:
    """A value quoted in an error message, cut short: ``ECHO_LENGTH`` characters and "…"
    (a 16,000-character ID is not echoed back whole)."""
    return repr(value) if len(value) <= ECHO_LENGTH else repr(value[:ECHO_LENGTH]) + "…"


def _identifier(value: object, what: str, example: str) -> str:
    """A Matrix identifier taken exactly as given: a string of at most 255 characters
    without whitespace, control characters or anything past ASCII."""
    if not isinstance(value, str):
        raise invalid(f"{what} must be a Matrix ID like {example}")
    if len(value) > MAX_ID_LENGTH:
        raise invalid(f"{what} is longer than {MAX_ID_LENGTH} characters")
    if not all("!" <= c <= "~" for c in value):
        raise invalid(f"{what}: {shown(value)} has whitespace or a character outside ASCII")
    return value


def user_id(value: object, what: str = "user_id") -> str:
    """A syntactically valid Matrix user ID (local or remote), exactly as given: ``@``, a
    localpart of printable ASCII without ``:`` (historical IDs allowed), ``:``, a server
    name; at most 255 characters. No case folding, no trimming (R13 holds, R14 reports)."""
    text = _identifier(value, what, "@alice:example.org")
    localpart, colon, server = text[1:].partition(":")
    if not text.startswith("@") or not colon or not localpart or not _SERVER_NAME.fullmatch(server):
        raise invalid(f"{what}: {shown(text)} is not a Matrix user ID")
    return text


def room_id(value: object) -> str:
    """A Matrix room ID, exactly as given: ``!``, an opaque part of letters, digits and
    ``._~+/=-``, then ``:server`` (room versions before 12; v12 IDs have no server part)."""
    text = _identifier(value, "room_id", "!room:example.org")
    if not _ROOM_ID.fullmatch(text):
        raise invalid(f"room_id: {shown(text)} is not a Matrix room ID")
    return text


def hold_id(value: str) -> str:
    if not _HOLD_ID.fullmatch(value):
        raise invalid("hold_id must be 1 to 128 characters among A-Z a-z 0-9 . _ ~ -")
    return value


async def local_user(api: ModuleApi, raw: str) -> str:
    """The ID of an existing local user: 400 for a malformed ID, 404 for any other."""
    value = user_id(raw)
    if not api.is_mine(value):
        raise SynapseError(404, f"{shown(value)} is not a user of this server", Codes.NOT_FOUND)
    if await api.get_userinfo_by_id(value) is None:
        raise SynapseError(404, f"No such user {shown(value)}", Codes.NOT_FOUND)
    return value
