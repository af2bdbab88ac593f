"""The quota's ledgers and usage counters, changed together in one transaction (R4).

Every function here runs inside a transaction and records what it changed in a
``Changes``; ``apply_counters_txn`` then moves the per-user counters by exactly
those amounts. A change is always "make this row match what Synapse stores now",
read in the same transaction, so two processes doing it at once (an eviction and a
resync, say) can never count a change twice: PostgreSQL's repeatable-read isolation
retries the later one, SQLite runs them one after the other.
"""

from collections import defaultdict
from collections.abc import Sequence

import attrs

from synapse_lux_privacy.db import Cursor, chunks, placeholders
from synapse_lux_privacy.features.quota.policy import EVENTS, MEDIA, Item, Position, rank
from synapse_lux_privacy.synapse_adapter.quota import Recheck, SentEvent, StoredMedia


@attrs.define
class Changes:
    """What one or more transactions changed in the ledgers."""

    media: dict[str, int] = attrs.Factory(lambda: defaultdict(int))  # user -> byte delta
    events: dict[str, int] = attrs.Factory(lambda: defaultdict(int))
    by_item: dict[str, int] = attrs.Factory(dict)  # item ID -> byte delta
    added: int = 0
    removed: int = 0
    resized: int = 0

    def record(self, kind: str, user_id: str, item_id: str, delta: int) -> None:
        (self.media if kind == MEDIA else self.events)[user_id] += delta
        self.by_item[item_id] = self.by_item.get(item_id, 0) + delta

    def merge(self, other: "Changes") -> None:
        for user, delta in other.media.items():
            self.media[user] += delta
        for user, delta in other.events.items():
            self.events[user] += delta
        self.by_item.update(other.by_item)
        self.added += other.added
        self.removed += other.removed
        self.resized += other.resized

    def users(self) -> set[str]:
        return {u for u, d in self.media.items() if d} | {u for u, d in self.events.items() if d}


def add_media_txn(cur: Cursor, rows: Sequence[StoredMedia], changes: Changes) -> None:
    """Make the ledger hold these uploads at these sizes (new ones, grown thumbnails)."""
    for row in rows:
        cur.execute("SELECT size FROM lux_privacy_quota_media WHERE media_id = ?", (row.media_id,))
        found = cur.fetchone()
        if found is None:
            cur.execute(
                "INSERT INTO lux_privacy_quota_media (media_id, user_id, ts, size)"
                " VALUES (?, ?, ?, ?)",
                (row.media_id, row.user_id, row.ts, row.size),
            )
            changes.added += 1
            changes.record(MEDIA, row.user_id, row.media_id, row.size)
        elif int(found[0]) != row.size:
            cur.execute(
                "UPDATE lux_privacy_quota_media SET size = ? WHERE media_id = ?",
                (row.size, row.media_id),
            )
            changes.resized += 1
            changes.record(MEDIA, row.user_id, row.media_id, row.size - int(found[0]))


def add_events_txn(cur: Cursor, rows: Sequence[SentEvent], changes: Changes) -> None:
    """Add these events to the ledger; one already there is left as it is."""
    for row in rows:
        cur.execute(
            "INSERT INTO lux_privacy_quota_events"
            " (event_id, user_id, room_id, ts, size, pruned_size) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (event_id) DO NOTHING RETURNING size",
            (row.event_id, row.user_id, row.room_id, row.ts, row.size, row.pruned_size),
        )
        if cur.fetchone() is not None:
            changes.added += 1
            changes.record(EVENTS, row.user_id, row.event_id, row.size)


def apply_rechecks_txn(
    cur: Cursor, kind: str, rechecks: Sequence[Recheck], changes: Changes
) -> None:
    """Drop the rows of items Synapse no longer has; resize those whose size changed.

    An event whose stored JSON shrank (expunged, censored after a redaction) never
    frees more than what it now stores, so its ``pruned_size`` is capped by its size.
    """
    table, key = _TABLES[kind]
    for r in rechecks:
        if r.current is None:
            cur.execute(f"DELETE FROM {table} WHERE {key} = ?", (r.item_id,))
            changes.removed += 1
            changes.record(kind, r.user_id, r.item_id, -r.recorded)
        elif r.current != r.recorded:
            extra = (
                ", pruned_size = CASE WHEN pruned_size > ? THEN ? ELSE pruned_size END"
                if kind == EVENTS
                else ""
            )
            args = (r.current, r.current) if kind == EVENTS else ()
            cur.execute(
                f"UPDATE {table} SET size = ?{extra} WHERE {key} = ?",
                (r.current, *args, r.item_id),
            )
            changes.resized += 1
            changes.record(kind, r.user_id, r.item_id, r.current - r.recorded)


def mark_expunged_txn(cur: Cursor, event_ids: Sequence[str]) -> None:
    """Expunged events have nothing left to free: never choose them again."""
    for part in chunks(event_ids):
        cur.execute(
            "UPDATE lux_privacy_quota_events SET pruned_size = size"
            f" WHERE event_id IN ({placeholders(part)})",
            tuple(part),
        )


_TABLES = {
    MEDIA: ("lux_privacy_quota_media", "media_id"),
    EVENTS: ("lux_privacy_quota_events", "event_id"),
}


def ledger_ids_txn(cur: Cursor, kind: str, user_id: str) -> list[str]:
    """Every ledger row of one user."""
    table, key = _TABLES[kind]
    cur.execute(f"SELECT {key} FROM {table} WHERE user_id = ?", (user_id,))
    return [str(row[0]) for row in cur.fetchall()]


def ledger_page_txn(cur: Cursor, kind: str, after: str, limit: int) -> list[str]:
    """Ledger rows of every user, in ID order after ``after``."""
    table, key = _TABLES[kind]
    cur.execute(f"SELECT {key} FROM {table} WHERE {key} > ? ORDER BY {key} LIMIT ?", (after, limit))
    return [str(row[0]) for row in cur.fetchall()]


def apply_counters_txn(cur: Cursor, changes: Changes) -> None:
    """Move each user's counters by what the ledgers changed."""
    for user in sorted(set(changes.media) | set(changes.events)):
        media, events = changes.media.get(user, 0), changes.events.get(user, 0)
        if media or events:
            cur.execute(
                "INSERT INTO lux_privacy_quota_usage (user_id, media_bytes, event_bytes)"
                " VALUES (?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
                " media_bytes = lux_privacy_quota_usage.media_bytes + excluded.media_bytes,"
                " event_bytes = lux_privacy_quota_usage.event_bytes + excluded.event_bytes",
                (user, media, events),
            )


def _after_sql(after: Position | None, kind: str, key: str) -> tuple[str, tuple[object, ...]]:
    """SQL for "after this position" in a user's oldest-first order, for one kind."""
    if after is None:
        return "", ()
    if rank(kind) > after.rank:
        return " AND ts >= ?", (after.ts,)
    if rank(kind) < after.rank:
        return " AND ts > ?", (after.ts,)
    return f" AND (ts > ? OR (ts = ? AND {key} > ?))", (after.ts, after.ts, after.item_id)


def oldest_txn(
    cur: Cursor, kind: str, user_id: str, after: Position | None, limit: int
) -> list[Item]:
    """A user's oldest items of one kind that still free something, after ``after``."""
    after_sql, after_args = _after_sql(after, kind, _TABLES[kind][1])
    if kind == MEDIA:
        sql = (
            "SELECT media_id, NULL, ts, size FROM lux_privacy_quota_media"
            f" WHERE user_id = ? AND size > 0{after_sql} ORDER BY ts, media_id LIMIT ?"
        )
    else:
        sql = (
            "SELECT event_id, room_id, ts, size - pruned_size FROM lux_privacy_quota_events"
            f" WHERE user_id = ? AND size > pruned_size{after_sql} ORDER BY ts, event_id LIMIT ?"
        )
    cur.execute(sql, (user_id, *after_args, limit))
    return [
        Item(kind, str(r[0]), None if r[1] is None else str(r[1]), int(r[2]), int(r[3]))
        for r in cur.fetchall()
    ]
