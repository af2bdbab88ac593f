"""The opaque cursors the content rules hand the orchestrator: a JSON list of positions."""

import json
from typing import Any


def encode(*parts: str | int | None) -> str:
    return json.dumps(list(parts), separators=(",", ":"))


def decode(cursor: str | None) -> Any:
    """The list of parts of a cursor this package encoded, or None for the first page."""
    if cursor is None:
        return None
    return json.loads(cursor)
