"""How the operator commands write times, durations and sizes (pure functions)."""

from datetime import UTC, datetime

_SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def timestamp(ms: int | None) -> str:
    """A time in milliseconds since the epoch, as UTC (``-`` for none)."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def size(n: int | None) -> str:
    """Bytes in powers of 1024, as the configuration's sizes (``-`` for none)."""
    if n is None:
        return "-"
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
