"""The quota's decisions, free of any I/O (R4): usage, limits, and which items to evict.

A user's items (uploads and sent events) are evicted oldest first, media and messages
together, until usage is back at or under the quota. An upload frees its size; an
event frees what expunging it removes (its stored JSON minus what a redaction keeps).
"""

from collections.abc import Callable, Collection, Sequence

import attrs

# The item kinds, named as in ``quota.counts``.
MEDIA = "media"
EVENTS = "events"
# Ties on time: uploads before events, then by ID, so that the order is total.
_RANK = {MEDIA: 0, EVENTS: 1}


@attrs.frozen(order=True)
class Position:
    """Where an item sits in a user's oldest-first order."""

    ts: int
    rank: int
    item_id: str


@attrs.frozen
class Item:
    """An item that eviction may remove, and the bytes removing it frees."""

    kind: str  # MEDIA or EVENTS
    item_id: str
    room_id: str | None  # events only
    ts: int
    freeable: int

    @property
    def position(self) -> Position:
        return Position(self.ts, _RANK[self.kind], self.item_id)


def rank(kind: str) -> int:
    return _RANK[kind]


def used_bytes(counts: Collection[str], media_bytes: int, event_bytes: int) -> int:
    """What counts against the quota: the kinds listed in ``quota.counts``."""
    return (media_bytes if MEDIA in counts else 0) + (event_bytes if EVENTS in counts else 0)


def effective_quota(default_bytes: int | None, override: int | None) -> int | None:
    """A per-user override wins; otherwise ``quota.default_bytes`` (None: no quota)."""
    return override if override is not None else default_bytes


def largest_upload(quota: int, server_max: int) -> int:
    """The largest file a user can store: older items are evicted to make room for it,
    so anything up to the whole quota fits, within Synapse's own ``max_upload_size``."""
    return min(quota, server_max)


def merge_oldest_first(
    media: Sequence[Item], events: Sequence[Item], limit: int
) -> tuple[list[Item], bool]:
    """The first ``limit`` items of two oldest-first pages of at most ``limit`` each.

    Also says whether these are all the items left (both pages were short and
    nothing was cut off).
    """
    merged = sorted([*media, *events], key=lambda item: item.position)
    exhausted = len(media) < limit and len(events) < limit and len(merged) <= limit
    return merged[:limit], exhausted


@attrs.frozen
class Plan:
    """The items to evict from one page, and how far the page was read."""

    chosen: list[Item]
    last: Position | None  # the last item looked at (chosen or kept)
    freed: int


def plan(items: Sequence[Item], need: int, keep: Callable[[Item], bool]) -> Plan:
    """Walk oldest first, choosing items until they free ``need`` bytes.

    ``keep(item)`` is True for an item that must stay (an avatar in use): it is
    passed over and the next oldest is taken instead.
    """
    chosen: list[Item] = []
    freed = 0
    last: Position | None = None
    for item in items:
        if freed >= need:
            break
        last = item.position
        if keep(item) or item.freeable <= 0:
            continue
        chosen.append(item)
        freed += item.freeable
    return Plan(chosen, last, freed)


_UNITS = {
    "fr": ("o", "Ko", "Mo", "Go", "To"),
    "en": ("bytes", "KB", "MB", "GB", "TB"),
}


def human_size(size: int, language: str) -> str:
    """``1536`` -> ``1.5 KB`` (``1,5 Ko`` in French); powers of 1024, as the config's sizes."""
    units = _UNITS.get(language.split("-")[0].lower(), _UNITS["en"])
    value = float(size)
    unit = 0
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    if unit == 0:
        text = str(size)
    elif value < 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.0f}"
    if language.lower().startswith("fr"):
        text = text.replace(".", ",")
    return f"{text} {units[unit]}"
