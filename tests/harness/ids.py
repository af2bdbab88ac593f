"""Short unique identifiers for tests sharing one homeserver."""

import itertools
import secrets

_counter = itertools.count(1)
_run = secrets.token_hex(2)


def uid(prefix: str = "u") -> str:
    """Return a short, lowercase string unique within this test run.

    Safe to use as a Matrix localpart (``[a-z0-9._=-]``) and as a room name or
    search term. ``prefix`` should itself be a valid lowercase localpart.
    """
    return f"{prefix}{_run}{next(_counter):04d}{secrets.token_hex(2)}"
