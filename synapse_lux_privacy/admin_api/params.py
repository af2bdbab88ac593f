"""Validation of admin API input: every bad value becomes a Matrix error, never a 500."""

import json
import re
from typing import Any

from synapse.module_api import ModuleApi, SynapseRequest, UserID
from synapse.module_api.errors import Codes, SynapseError

_HOLD_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")
_MAX_INT = 2**63 - 1


def invalid(message: str) -> SynapseError:
    return SynapseError(400, message, Codes.INVALID_PARAM)


def read_json_object(request: SynapseRequest, allowed_keys: frozenset[str]) -> dict[str, Any]:
    """The request body as a JSON object (an empty body is ``{}``); unknown keys are errors."""
    raw = request.content.read() if request.content is not None else b""
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise SynapseError(400, "Content not JSON.", Codes.NOT_JSON) from None
    if not isinstance(body, dict):
        raise SynapseError(400, "Content must be a JSON object.", Codes.BAD_JSON)
    unknown = sorted(set(body) - allowed_keys)
    if unknown:
        raise invalid(f"unknown field(s) {unknown}; allowed: {sorted(allowed_keys)}")
    return body


def query_int(request: SynapseRequest, name: str, default: int, minimum: int, maximum: int) -> int:
    values = request.args.get(name.encode("ascii")) if request.args else None
    if not values:
        return default
    text: str = values[0].decode("utf-8", errors="replace")
    if not re.fullmatch(r"-?[0-9]{1,19}", text):
        raise invalid(f"query parameter {name}: {text!r} is not an integer")
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
        raise invalid(f"query parameter {name}: {text!r} must be true or false")
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


def user_id(value: object, what: str = "user_id") -> str:
    """A syntactically valid Matrix user ID (local or remote)."""
    if not isinstance(value, str):
        raise invalid(f"{what} must be a Matrix user ID like @alice:example.org")
    try:
        return UserID.from_string(value).to_string()
    except SynapseError:
        raise invalid(f"{what}: {value!r} is not a Matrix user ID") from None


def room_id(value: object) -> str:
    """A Matrix room ID: '!' then an opaque string (room v12 IDs have no server part)."""
    if (
        not isinstance(value, str)
        or not value.startswith("!")
        or not 2 <= len(value) <= 255
        or any(c.isspace() for c in value)
    ):
        raise invalid(f"room_id: {value!r} is not a Matrix room ID")
    return value


def hold_id(value: str) -> str:
    if not _HOLD_ID.fullmatch(value):
        raise invalid("hold_id must be 1 to 128 characters among A-Z a-z 0-9 . _ ~ -")
    return value


async def local_user(api: ModuleApi, raw: str) -> str:
    """The ID of an existing local user: 400 for a malformed ID, 404 for any other."""
    value = user_id(raw)
    if not api.is_mine(value):
        raise SynapseError(404, f"{value} is not a user of this server", Codes.NOT_FOUND)
    if await api.get_userinfo_by_id(value) is None:
        raise SynapseError(404, f"No such user {value}", Codes.NOT_FOUND)
    return value
