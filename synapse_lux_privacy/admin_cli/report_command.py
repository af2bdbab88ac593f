"""``synapse-lux-privacy report @user:server``: a user's R14 report, readably.

Prints ``GET /users/{user_id}`` as indented ``name: value`` lines: ``*_ts`` fields
as UTC times, ``*_bytes`` as sizes, ``*_ms`` periods as the configuration writes them
(``30d``), booleans as yes/no, lists of objects (the sessions) one per line, an empty
list or object as ``none``. Every field the server sends is shown, including fields
added later by other features; text from the server is shown on one line, its control
characters escaped. ``--json`` prints the answer as it is, in the server's order.
"""

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from synapse_lux_privacy.admin_cli import formatting, records
from synapse_lux_privacy.admin_cli.client import AdminClient, BadAnswer
from synapse_lux_privacy.admin_cli.errors import one_line

EXIT_OK = 0


def run(client: AdminClient, user_id: str, as_json: bool) -> int:
    """Print the R14 report of a user; 0 (failures: CliError, ``errors.guarded``)."""
    what = f"GET /users/{user_id}"
    report = records.json_object(
        client.call("GET", f"/users/{quote(user_id, safe='')}"), what, "a user's report"
    )
    if as_json:
        print(json.dumps(report, indent=2))
        return EXIT_OK
    try:
        lines = report_lines(report)
    except RecursionError:
        raise BadAnswer(f"the answer to {what} is nested too deeply to be shown") from None
    print("\n".join(lines))
    return EXIT_OK


def report_lines(report: Mapping[str, Any]) -> list[str]:
    """The report as lines of text, the user ID first."""
    lines = [one_line(str(report.get("user_id", "?")))]
    lines += _fields({k: v for k, v in report.items() if k != "user_id"}, 1)
    return lines


def _fields(values: Mapping[str, Any], depth: int) -> list[str]:
    pad = "  " * depth
    width = max((len(_label(key)) for key in values), default=0)
    lines: list[str] = []
    for key, value in values.items():
        label = _label(key)
        if isinstance(value, Mapping) and value:
            lines.append(f"{pad}{label}:")
            lines += _fields(value, depth + 1)
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            lines.append(f"{pad}{label} ({len(value)}):")
            lines += [f"{pad}  - {_inline(item)}" for item in value]
        else:
            lines.append(f"{pad}{label + ':':<{width + 1}} {_value(key, value)}")
    return lines


def _label(key: str) -> str:
    for suffix in ("_ts", "_bytes", "_ms"):
        if key.endswith(suffix) and len(key) > len(suffix):
            key = key[: -len(suffix)]
            break
    return one_line(key.replace("_", " "))


def _inline(item: Mapping[str, Any]) -> str:
    return ", ".join(f"{_label(key)} {_value(key, value)}" for key, value in item.items())


def _value(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) and key.endswith("_ts"):
        return formatting.timestamp(value)
    if isinstance(value, int) and key.endswith("_bytes"):
        return f"{formatting.size(value)} ({value} bytes)"
    if isinstance(value, int) and key.endswith("_ms"):
        return formatting.period(value)
    if isinstance(value, list | Mapping) and not value:
        return "none"
    if isinstance(value, list):
        return ", ".join(one_line(str(v)) for v in value)
    return one_line(str(value))
