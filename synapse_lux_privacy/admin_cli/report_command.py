"""``synapse-lux-privacy report @user:server``: a user's R14 report, readably.

Prints ``GET /users/{user_id}`` as indented ``name: value`` lines: ``*_ts`` fields
as UTC times, ``*_bytes`` as sizes, booleans as yes/no, lists of objects (the
sessions) one per line. Every field the server sends is shown, including fields
added later by other features. ``--json`` prints the answer as it is.
"""

import json
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from synapse_lux_privacy.admin_cli import formatting
from synapse_lux_privacy.admin_cli.client import AdminApiError, AdminClient

EXIT_OK = 0
EXIT_API_ERROR = 2


def run(client: AdminClient, user_id: str, as_json: bool) -> int:
    """Print the R14 report of a user; 0, or 2 if the server refused or was not reached."""
    try:
        report = client.call("GET", f"/users/{quote(user_id, safe='')}")
    except AdminApiError as e:
        print(f"error: {e.describe()}", file=sys.stderr)
        return EXIT_API_ERROR
    if as_json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print("\n".join(report_lines(report)))
    return EXIT_OK


def report_lines(report: Mapping[str, Any]) -> list[str]:
    """The report as lines of text, the user ID first."""
    lines = [str(report.get("user_id", "?"))]
    lines += _fields({k: v for k, v in report.items() if k != "user_id"}, 1)
    return lines


def _fields(values: Mapping[str, Any], depth: int) -> list[str]:
    pad = "  " * depth
    width = max((len(_label(key)) for key in values), default=0)
    lines: list[str] = []
    for key, value in values.items():
        label = _label(key)
        if isinstance(value, Mapping):
            lines.append(f"{pad}{label}:")
            lines += _fields(value, depth + 1)
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            lines.append(f"{pad}{label} ({len(value)}):")
            lines += [f"{pad}  - {_inline(item)}" for item in value]
        else:
            lines.append(f"{pad}{label + ':':<{width + 1}} {_value(key, value)}")
    return lines


def _label(key: str) -> str:
    for suffix in ("_ts", "_bytes"):
        if key.endswith(suffix):
            return key[: -len(suffix)].replace("_", " ")
    return key.replace("_", " ")


def _inline(item: Mapping[str, Any]) -> str:
    return ", ".join(f"{_label(key)} {_value(key, value)}" for key, value in item.items())


def _value(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key.endswith("_ts") and isinstance(value, int):
        return formatting.timestamp(value)
    if key.endswith("_bytes") and isinstance(value, int):
        return f"{formatting.size(value)} ({value} bytes)"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) if value else "none"
    return str(value)
