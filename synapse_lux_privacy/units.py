"""Durations and sizes as operators write them in ``homeserver.yaml``.

Durations use Synapse's suffixes (``s``, ``m`` minutes, ``h``, ``d``, ``w``,
``y`` = 365 days) plus ``M`` for months of 30 days, so that the notice's
"at the latest N months" (R1, R2, R9, R11) is never exceeded. A bare integer
is milliseconds, as in Synapse. Sizes (the R4 quota) are bytes or ``K``, ``M``,
``G``, ``T`` in powers of 1024.
"""

import json
import math
import re
from collections.abc import Sequence

from synapse.module_api.errors import ConfigError

SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
MONTH_MS = 30 * DAY_MS
YEAR_MS = 365 * DAY_MS

# Upper bounds keep every value inside a signed 64-bit database column, even
# after being subtracted from the current time.
MAX_DURATION_MS = 100 * YEAR_MS
MAX_SIZE_BYTES = 1024**5

_DURATION_UNITS = {
    "s": SECOND_MS,
    "m": MINUTE_MS,
    "h": HOUR_MS,
    "d": DAY_MS,
    "w": WEEK_MS,
    "M": MONTH_MS,
    "y": YEAR_MS,
}
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_DURATION_RE = re.compile(r"([0-9]+)([smhdwMy])")
_SIZE_RE = re.compile(r"([0-9]+)([KMGT]?)")
# More digits than this cannot fit under the maximums; int() is not even tried.
_MAX_DIGITS = 20

_DURATION_HELP = (
    "use a number followed by s, m (minutes), h, d, w, M (months of 30 days) "
    "or y (365 days), e.g. 24M"
)
_SIZE_HELP = "use a number of bytes, optionally followed by K, M, G or T (powers of 1024), e.g. 5G"

# Largest first; weeks are left out so that 7 days reads "7d".
_FORMAT_UNITS = (("y", YEAR_MS), ("M", MONTH_MS), ("d", DAY_MS), ("h", HOUR_MS),
                 ("m", MINUTE_MS), ("s", SECOND_MS))  # fmt: skip


def dotted(path: Sequence[str]) -> str:
    """Render a key path for messages: ``("retention", "rules", "0")`` -> ``retention.rules[0]``.

    A key that is not a plain name (a misspelt key with spaces, say) is quoted.
    """
    text = ""
    for part in path:
        if part.isascii() and part.isdigit():
            text += f"[{part}]"
            continue
        name = part if _PLAIN_KEY.fullmatch(part) else describe(part)
        text += f".{name}" if text else name
    return text or "config"


def describe(value: object) -> str:
    """Render a configuration value the way it would be written in YAML, on one line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return json.dumps(text, ensure_ascii=False)  # escapes line breaks: one line
    if isinstance(value, int) and value.bit_length() > 128:
        # repr() of an integer past 4,300 digits raises (the interpreter's limit); a
        # long one is shown by its size, as a long string is cut short.
        digits = int(value.bit_length() * math.log10(2)) + 1
        return f"a whole number of about {digits} digits"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def config_error(path: Sequence[str], problem: str) -> ConfigError:
    """A ConfigError whose one-line message starts with the dotted key path."""
    return ConfigError(f"{dotted(path)}: {problem}", path=tuple(path))


def parse_duration(value: object, path: tuple[str, ...]) -> int:
    """Milliseconds of a duration: a non-negative int (ms) or e.g. ``24M``, ``7d``, ``90s``."""
    if type(value) is int:
        if value < 0:
            raise config_error(path, f"{value} is negative; {_DURATION_HELP}")
        ms = value
    else:
        match = _DURATION_RE.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise config_error(path, f"{describe(value)} is not a duration; {_DURATION_HELP}")
        digits, unit = match.groups()
        if len(digits) > _MAX_DIGITS:
            ms = MAX_DURATION_MS + 1
        else:
            ms = int(digits) * _DURATION_UNITS[unit]
    if ms > MAX_DURATION_MS:
        raise config_error(path, f"{describe(value)} is too long; use at most 100y")
    return ms


def parse_size(value: object, path: tuple[str, ...]) -> int:
    """Bytes of a size: a non-negative int or e.g. ``5G``, ``512M``, ``1024``."""
    if type(value) is int:
        if value < 0:
            raise config_error(path, f"{value} is negative; {_SIZE_HELP}")
        size = value
    else:
        match = _SIZE_RE.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            raise config_error(path, f"{describe(value)} is not a size; {_SIZE_HELP}")
        digits, unit = match.groups()
        if len(digits) > _MAX_DIGITS:
            size = MAX_SIZE_BYTES + 1
        else:
            size = int(digits) * _SIZE_UNITS[unit]
    if size > MAX_SIZE_BYTES:
        raise config_error(path, f"{describe(value)} is too large; use at most 1024T")
    return size


def format_duration(ms: int, *, months: bool = True) -> str:
    """Short rendering in the largest unit that divides exactly: ``24M``, ``1y``, ``90s``.

    With ``months=False`` no ``M`` is used, so that whole seconds also read as valid
    Synapse syntax (Synapse's ``m`` is minutes too, and it has no months).
    """
    if ms == 0:
        return "0s"
    for suffix, unit_ms in _FORMAT_UNITS:
        if ms % unit_ms == 0 and (months or suffix != "M"):
            return f"{ms // unit_ms}{suffix}"
    return f"{ms}ms"
