"""How the operator commands write times, durations and sizes (pure functions)."""

from datetime import UTC, datetime

from rich.box import ASCII, HEAVY_HEAD, Box
from rich.console import Console

from synapse_lux_privacy.units import format_duration

_SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def timestamp(ms: int | None) -> str:
    """A time in milliseconds since the epoch, as UTC (``-`` for none)."""
    if ms is None:
        return "-"
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):  # beyond the years 1-9999
        return f"{ms} ms since the epoch"


def size(n: int | None) -> str:
    """Bytes in powers of 1024, as the configuration's sizes (``-`` for none)."""
    if n is None:
        return "-"
    if abs(n) >= 1024 ** len(_SIZE_UNITS):
        return f"{n} B"
    value = float(n)
    for unit in _SIZE_UNITS:
        if abs(value) < 1024 or unit == _SIZE_UNITS[-1]:
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def duration(seconds: float | None) -> str:
    """A duration for people: ``42 s``, ``3 min 05 s``, ``2 h 07 min`` (``-`` for none)."""
    if seconds is None:
        return "-"
    total = max(0, round(seconds))
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def period(ms: int) -> str:
    """A configured period in milliseconds as the configuration writes it: ``30d``, ``12h``
    (days rather than months of 30 days, as the account warnings' leads are written)."""
    return format_duration(ms, months=False)


def table_box(console: Console) -> Box:
    """Lines drawn with box characters on a terminal, plain ASCII in a file or a pipe."""
    return HEAVY_HEAD if console.is_terminal else ASCII
