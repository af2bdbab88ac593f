"""Synapse's events: read to find what is due, removed through Synapse's own machinery.

Reads ``events``, ``event_json``, ``state_events``, ``current_state_events``,
``redactions`` and ``event_forward_extremities`` with SELECT only,
together with the module's own ``lux_privacy_expunged`` (and, for the per-user report,
the quota's ledger of the events each local user sent). Deletions go through:

- ``PaginationHandler.purge_history`` (R1, R3, R6): Synapse's purge of a room's
  history before a topological point, under its per-room purge lock, in one
  transaction. It deletes non-state events with their JSON, edges, relations,
  search entries, push actions and redactions, and keeps state events (as outliers).
- the steps of ``CensorEventsStore.expire_event`` (R1, R2, R3): Synapse's event-expiry
  machinery, which replaces an event's stored JSON with its redacted form (redactions
  whose target is gone included, see ``expunge_events``).
- ``CensorEventsStore._censor_event_txn`` (R5): the step Synapse's
  ``_censor_redactions`` job runs on a redacted event's original JSON.

Synapse's machinery leaves the search index entry of an expired or censored event,
and the display name and avatar an expired membership event copied into
``room_memberships``. Synapse offers nothing to remove them short of purging the
whole event, so ``_unindex_txn`` does it with two minimal statements on that one
event (documented in docs/content-retention.md).
"""

from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from typing import Any

import attrs
from synapse.events.utils import prune_event
from synapse.module_api import ModuleApi
from synapse.util.async_helpers import concurrently_execute
from synapse.util.json import json_encoder

from synapse_lux_privacy.db import (
    Cursor,
    DbRunner,
    Dialect,
    chunks,
    holds_any_sql,
    placeholders,
)
from synapse_lux_privacy.synapse_adapter import quota

MESSAGE_TYPE = "m.room.message"


@attrs.frozen
class StoredEvent:
    """An event as the content rules see it (no content apart from its msgtype)."""

    event_id: str
    room_id: str
    sender: str
    type: str
    msgtype: str | None
    depth: int  # Synapse's topological_ordering
    stream: int  # Synapse's stream_ordering
    ts: int  # origin_server_ts: the order of the attachments rule's cursor
    size: int  # length of the stored JSON
    age_ts: int  # when the event's age counts from: see ``age_ts_sql``

    @property
    def position(self) -> tuple[int, int]:
        """Where the event sits in its room's history, as purges and cursors see it."""
        return (self.depth, self.stream)


@attrs.frozen
class Redaction:
    """A redaction whose original event's content is still stored (R5)."""

    redaction_id: str
    received_ts: int
    original: StoredEvent


def _msgtype_sql(dialect: Dialect, joined: bool) -> str:
    """The msgtype of an ``m.room.message`` (NULL otherwise): from ``event_json AS ej``
    joined to the query, or read by event ID (``_by_event_id``)."""
    extract = (
        "ej.json::json -> 'content' ->> 'msgtype'"
        if dialect == "postgres"
        else "json_extract(ej.json, '$.content.msgtype')"
    )
    value = f"({extract})" if joined else _by_event_id(extract)
    return f"CASE WHEN e.type = '{MESSAGE_TYPE}' THEN {value} END"


def _by_event_id(expression: str) -> str:
    """``expression`` of the event's ``event_json AS ej`` row, read by event ID (Synapse's
    unique index) instead of joined: PostgreSQL then has one relation fewer to order when
    it plans the query (issue 22: ``old_room_events_txn`` planned in 0.9 ms with the join
    against 0.3 ms without, each time, once or twice per room of every sweep)."""
    return f"(SELECT {expression} FROM event_json AS ej WHERE ej.event_id = e.event_id)"


def age_ts_sql(dialect: Dialect) -> str:
    """When an event's age counts from (R1, R6): the earlier of the time its sender claims
    (``origin_server_ts``, which a remote server or an application service's ``ts`` sets
    at will) and the time this server received it (``received_ts``, NULL on rows older
    than the column). A future-dated event is therefore due ``lifetime`` after it
    arrived at the latest; a back-dated one by its claimed time, earlier: the safe side.
    """
    least = "LEAST" if dialect == "postgres" else "MIN"
    return f"{least}(e.origin_server_ts, COALESCE(e.received_ts, e.origin_server_ts))"


# "age_ts_sql(...) < ?" written so that the origin_server_ts indexes stay usable; the
# arguments are the bound twice.
_AGED_BEFORE = "(e.origin_server_ts < ? OR e.received_ts < ?)"


def _columns(dialect: Dialect, joined: bool = True) -> str:
    """A ``StoredEvent``'s columns from ``events AS e`` and, ``joined``, ``event_json AS
    ej`` in the query's FROM; otherwise the JSON's columns are read by event ID."""
    size = "LENGTH(ej.json)" if joined else _by_event_id("LENGTH(ej.json)")
    return (
        "e.event_id, e.room_id, e.sender, e.type, "
        f"{_msgtype_sql(dialect, joined)}, e.topological_ordering, e.stream_ordering,"
        f" e.origin_server_ts, {size}, {age_ts_sql(dialect)}"
    )


def _row(row: Sequence[Any]) -> StoredEvent:
    msgtype = row[4] if isinstance(row[4], str) else None
    return StoredEvent(
        event_id=row[0],
        room_id=row[1],
        sender=row[2] or "",
        type=row[3],
        msgtype=msgtype,
        depth=int(row[5]),
        stream=int(row[6] or 0),
        ts=int(row[7] or 0),
        size=int(row[8] or 0),
        age_ts=int(row[9] or 0),
    )


_NOT_EXPUNGED = "NOT EXISTS (SELECT 1 FROM lux_privacy_expunged AS x WHERE x.event_id = e.event_id)"
# Synapse writes the reason of a rejected event in its ``events`` row (and in ``rejections``).
_NOT_REJECTED = "e.rejection_reason IS NULL"
_NOT_STATE = "NOT EXISTS (SELECT 1 FROM state_events AS s WHERE s.event_id = e.event_id)"
# ``events.state_key`` (set for every state event since Synapse's schema 68/72) narrows
# the rows first, so that the planner looks state_events up by event ID.
_IS_STATE = (
    "e.state_key IS NOT NULL"
    " AND EXISTS (SELECT 1 FROM state_events AS s WHERE s.event_id = e.event_id)"
)
_NOT_EXTREMITY = (
    "NOT EXISTS (SELECT 1 FROM event_forward_extremities AS f WHERE f.event_id = e.event_id)"
)
_NOT_CURRENT = "NOT EXISTS (SELECT 1 FROM current_state_events AS c WHERE c.event_id = e.event_id)"


def _after(position: tuple[int, int] | None) -> tuple[str, tuple[int, ...]]:
    """SQL (and arguments) for "after this (depth, stream) position in the room"."""
    if position is None:
        return "", ()
    return (
        " AND (e.topological_ordering > ? OR"
        " (e.topological_ordering = ? AND e.stream_ordering > ?))",
        (position[0], position[0], position[1]),
    )


@attrs.frozen
class Changes:
    """What may have changed since a finished pass (R1, R2, R3): events sent in one of the
    ``[low, high)`` time ``windows``, events stored outside the stream orderings
    ``[below_stream, above_stream]``, and the events named in ``event_ids``."""

    windows: Sequence[tuple[int, int]]
    above_stream: int
    below_stream: int
    event_ids: Collection[str] = ()

    def sql(self, column: str = "event_id") -> tuple[str, tuple[Any, ...]]:
        """A query of ``column`` (``event_id`` or ``room_id``) of these events, bounded by
        Synapse's indexes on ``origin_server_ts``, ``stream_ordering`` and ``event_id``."""
        select = f"SELECT {column} FROM events WHERE "
        parts = [select + "origin_server_ts >= ? AND origin_server_ts < ?"] * len(self.windows)
        parts += [select + "stream_ordering > ?", select + "stream_ordering < ?"]
        args: list[Any] = [t for window in self.windows for t in window]
        args += [self.above_stream, self.below_stream]
        if self.event_ids:
            parts.append(select + f"event_id IN ({placeholders(self.event_ids)})")
            args += sorted(self.event_ids)
        return " UNION ALL ".join(parts), tuple(args)


async def rooms_with_pending_events(
    db: DbRunner, before_ts: int, after_room: str, limit: int
) -> list[str]:
    """Rooms, in ID order after ``after_room``, with an event aged from before ``before_ts``
    (``age_ts_sql``)
    that may still have something to lose (R1, R3): a non-state event that is not
    expunged yet, or that is expunged but not a forward extremity (so a purge may
    remove it), or a state event that is no longer current and not expunged yet.

    A room listed here may still have nothing due (a longer per-type lifetime, a hold):
    the rule decides event by event. A room whose only old event is its expunged newest
    event is not listed: nothing more can go until new events follow it.
    """

    def txn(cur: Cursor) -> list[str]:
        cur.execute(
            "SELECT DISTINCT e.room_id FROM events AS e"
            f" WHERE {_AGED_BEFORE} AND e.room_id > ?"
            f" AND {_NOT_CURRENT} AND {_NOT_REJECTED}"
            f" AND ({_NOT_EXPUNGED} OR ({_NOT_STATE} AND {_NOT_EXTREMITY}))"
            " ORDER BY e.room_id LIMIT ?",
            (before_ts, before_ts, after_room, limit),
        )
        return [str(row[0]) for row in cur.fetchall()]

    return await db("lux_privacy_rooms_with_pending_events", txn)


async def rooms_changed_since(
    db: DbRunner, changes: Changes, after_room: str, limit: int
) -> list[str]:
    """Rooms, in ID order after ``after_room``, with one of the ``changes`` (R1, R3: what
    may have changed since a pass). Bounded by what changed, never the whole history."""
    subquery, args = changes.sql("room_id")

    def txn(cur: Cursor) -> list[str]:
        cur.execute(
            f"SELECT DISTINCT room_id FROM ({subquery}) AS c"
            " WHERE room_id > ? ORDER BY room_id LIMIT ?",
            (*args, after_room, limit),
        )
        return [str(row[0]) for row in cur.fetchall()]

    return await db("lux_privacy_rooms_changed_since", txn)


async def stream_bounds(api: ModuleApi, db: DbRunner) -> tuple[int, int]:
    """(lowest stored, highest persisted) stream orderings: every event stored later is
    outside them (backfilled events go below zero; ``quota`` reads the same positions)."""
    lowest = await db("lux_privacy_lowest_stream", quota.min_stream_txn)
    return lowest, quota.persisted_stream_position(api)


def max_extremity_depth_txn(cur: Cursor, room_id: str) -> int | None:
    """The depth of the room's newest forward extremity: Synapse refuses to purge past it."""
    cur.execute(
        "SELECT MAX(e.depth) FROM event_forward_extremities AS f"
        " JOIN events AS e ON e.event_id = f.event_id AND e.room_id = f.room_id"
        " WHERE f.room_id = ?",
        (room_id,),
    )
    row = cur.fetchone()
    return None if row is None or row[0] is None else int(row[0])


def oldest_non_state_events_txn(
    cur: Cursor, dialect: Dialect, room_id: str, after: tuple[int, int] | None, limit: int
) -> list[StoredEvent]:
    """The room's non-state events in history order after ``after``: what a purge removes.

    Exactly the set Synapse's purge deletes below a topological point: every event
    without a ``state_events`` row, outliers and rejected events included.
    """
    after_sql, after_args = _after(after)
    cur.execute(
        f"SELECT {_columns(dialect)} FROM events AS e"
        " JOIN event_json AS ej ON ej.event_id = e.event_id"
        f" WHERE e.room_id = ? AND {_NOT_STATE}{after_sql}"
        " ORDER BY e.topological_ordering, e.stream_ordering LIMIT ?",
        (room_id, *after_args, limit),
    )
    return [_row(row) for row in cur.fetchall()]


def old_room_events_txn(
    cur: Cursor,
    dialect: Dialect,
    room_id: str,
    state: bool,
    before_ts: int,
    min_depth: int | None,
    after: tuple[int, int] | None,
    limit: int,
) -> list[StoredEvent]:
    """Events of one room aged from before ``before_ts`` (``age_ts_sql``), not rejected,
    not yet expunged.

    ``state=False``: non-state events at ``min_depth`` or deeper (those a purge keeps);
    ``state=True``: state events that are no longer part of the room's current state.

    The JSON's columns are read by event ID (``_by_event_id``): this query runs once or
    twice per room of every sweep, and its planning, not its execution, was its cost.
    An event without a JSON row (which Synapse never stores) has no content to lose: the
    join left it out; now it is listed (size 0) and the expunge, which loads events
    through Synapse, finds nothing to prune and leaves it as it is.
    """
    after_sql, after_args = _after(after)
    kind = _IS_STATE + " AND " + _NOT_CURRENT if state else _NOT_STATE
    depth_sql = "" if min_depth is None else " AND e.topological_ordering >= ?"
    depth_args = () if min_depth is None else (min_depth,)
    cur.execute(
        f"SELECT {_columns(dialect, joined=False)} FROM events AS e"
        f" WHERE e.room_id = ? AND {_AGED_BEFORE}{depth_sql}"
        f" AND {kind} AND {_NOT_REJECTED} AND {_NOT_EXPUNGED}{after_sql}"
        " ORDER BY e.topological_ordering, e.stream_ordering LIMIT ?",
        (room_id, before_ts, before_ts, *depth_args, *after_args, limit),
    )
    return [_row(row) for row in cur.fetchall()]


async def old_attachment_events(
    db: DbRunner,
    dialect: Dialect,
    types: Sequence[str],
    before_ts: int,
    after: tuple[int, int] | None,
    limit: int,
    changes: Changes | None = None,
) -> list[StoredEvent]:
    """Unexpunged events of these types that carry a media URL in clear (R2).

    Aged from before ``before_ts`` (``age_ts_sql``), in (origin_server_ts,
    stream_ordering) order after ``after``. Synapse sets ``contains_url`` when an
    event's content has a ``url`` string: attachments and stickers sent in clear.
    Encrypted events never have it.

    Without ``changes`` (a full pass), the query walks Synapse's index on
    ``origin_server_ts`` to its end, since an event dated after its arrival is aged
    by ``received_ts``, which has no index: its cost follows the history. With
    ``changes``, only those events are read: the cost follows what changed.
    """
    after_sql = ""
    after_args: tuple[int, ...] = ()
    if after is not None:
        after_sql = (
            " AND (e.origin_server_ts > ? OR (e.origin_server_ts = ? AND e.stream_ordering > ?))"
        )
        after_args = (after[0], after[0], after[1])
    changed_sql, changed_args = "", ()
    if changes is not None:
        subquery, changed_args = changes.sql()
        changed_sql = f" AND e.event_id IN ({subquery})"
    desc = "lux_privacy_old_attachment_events" + ("_changed" if changes else "")

    def txn(cur: Cursor) -> list[StoredEvent]:
        cur.execute(
            f"SELECT {_columns(dialect)} FROM events AS e"
            " JOIN event_json AS ej ON ej.event_id = e.event_id"
            f" WHERE {_AGED_BEFORE}{changed_sql} AND e.type IN ({placeholders(types)})"
            f" AND e.contains_url = ? AND {_NOT_STATE} AND {_NOT_REJECTED}"
            f" AND {_NOT_EXPUNGED}{after_sql}"
            " ORDER BY e.origin_server_ts, e.stream_ordering LIMIT ?",
            (before_ts, before_ts, *changed_args, *types, True, *after_args, limit),
        )
        return [_row(row) for row in cur.fetchall()]

    return await db(desc, txn)


async def uncensored_redactions(
    db: DbRunner,
    dialect: Dialect,
    received_before: int,
    after: tuple[int, str] | None,
    limit: int,
) -> list[Redaction]:
    """Redactions received before ``received_before`` whose original is stored uncensored.

    In (received_ts, redaction event ID) order after ``after``; the original must
    exist and not be expunged already (R5).
    """
    after_sql = ""
    after_args: tuple[Any, ...] = ()
    if after is not None:
        after_sql = " AND (rd.received_ts > ? OR (rd.received_ts = ? AND rd.event_id > ?))"
        after_args = (after[0], after[0], after[1])

    def txn(cur: Cursor) -> list[Redaction]:
        cur.execute(
            f"SELECT rd.event_id, rd.received_ts, {_columns(dialect)} FROM redactions AS rd"
            " JOIN events AS e ON e.event_id = rd.redacts"
            " JOIN event_json AS ej ON ej.event_id = e.event_id"
            f" WHERE NOT rd.have_censored AND rd.received_ts < ? AND {_NOT_EXPUNGED}"
            f"{after_sql} ORDER BY rd.received_ts, rd.event_id LIMIT ?",
            (received_before, *after_args, limit),
        )
        return [
            Redaction(redaction_id=row[0], received_ts=int(row[1]), original=_row(row[2:]))
            for row in cur.fetchall()
        ]

    return await db("lux_privacy_uncensored_redactions", txn)


@attrs.frozen
class PurgeBounds:
    """What a purge of a room up to a batch must respect, read in one transaction.

    ``positions``: (depth, stream) of the batch's events still stored; ``extremity``:
    the depth of the room's newest forward extremity (None: none, no purge);
    ``below``: every non-state event of the room below the batch's deepest event plus
    one, with its depth: exactly what a purge to that depth would delete.
    """

    positions: dict[str, tuple[int, int]]
    extremity: int | None
    below: dict[str, int]


async def purge_bounds(db: DbRunner, room_id: str, event_ids: Sequence[str]) -> PurgeBounds:
    """The facts a purge of ``room_id`` up to these events is checked against (R1, R13):
    the rule never purges past an event outside its batch."""

    def txn(cur: Cursor) -> PurgeBounds:
        positions = positions_txn(cur, event_ids)
        extremity = max_extremity_depth_txn(cur, room_id)
        below: dict[str, int] = {}
        if positions and extremity is not None:
            cur.execute(
                "SELECT e.event_id, e.topological_ordering FROM events AS e"
                f" WHERE e.room_id = ? AND e.topological_ordering < ? AND {_NOT_STATE}",
                (room_id, max(depth for depth, _ in positions.values()) + 1),
            )
            below = {str(row[0]): int(row[1]) for row in cur.fetchall()}
        return PurgeBounds(positions, extremity, below)

    return await db("lux_privacy_purge_bounds", txn)


def positions_txn(cur: Cursor, event_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    """(depth, stream) of those of these events that are still stored."""
    found: dict[str, tuple[int, int]] = {}
    for part in chunks(event_ids):
        cur.execute(
            "SELECT event_id, topological_ordering, stream_ordering FROM events"
            f" WHERE event_id IN ({placeholders(part)})",
            tuple(part),
        )
        found.update({str(r[0]): (int(r[1]), int(r[2] or 0)) for r in cur.fetchall()})
    return found


async def concurrently(
    func: Callable[[str], Awaitable[None]], room_ids: Sequence[str], limit: int
) -> None:
    """Run ``func`` for each room, at most ``limit`` at a time (Synapse's
    ``concurrently_execute``, which keeps Synapse's logging contexts right)."""
    await concurrently_execute(func, room_ids, limit)


async def purge_history(api: ModuleApi, room_id: str, depth: int, stream: int) -> None:
    """Purge the room's non-state events below ``depth`` with Synapse's purge history.

    ``PaginationHandler.purge_history`` takes the room's purge/pagination lock and
    runs ``PurgeEventsStorageController.purge_history`` (local and remote events
    alike), which also marks the state groups no longer referenced for deletion.
    """
    error = await api._hs.get_pagination_handler().purge_history(
        room_id, f"t{depth}-{stream}", True
    )
    if error is not None:
        raise RuntimeError(f"Synapse's purge of {room_id} before depth {depth} failed: {error}")


async def expunge_events(api: ModuleApi, event_ids: Sequence[str]) -> list[str]:
    """Replace these events' stored JSON with its redacted form; the IDs of those that
    were still stored (the others are gone: nothing to do).

    The steps of Synapse's ``CensorEventsStore.expire_event`` (event expiry: prune the
    JSON with ``_censor_event_txn``, drop any ``event_expiry`` row, invalidate the event
    caches here and on every worker), with ``_unindex_txn``, for every event of the
    batch in one transaction (one read of the events, one write): a batch of a sweep
    costs two round trips instead of two per event. A failure rolls the whole batch
    back; the caller retries its events one at a time to isolate the faulty one.

    The events are read with ``allow_rejected=True``, as ``_censor_redactions`` reads the
    events it prunes: ``get_event`` (which ``expire_event`` uses) withholds a redaction
    whose target is no longer stored, so a redaction whose target was already purged
    would otherwise keep its own content, its ``reason``, for ever (R1, R3).
    """
    store = api._hs.get_datastores().main
    found = await store.get_events(event_ids, allow_rejected=True)
    pruned = {
        event_id: json_encoder.encode(prune_event(event).get_pdu_json())
        for event_id, event in found.items()
    }
    if not pruned:
        return []

    def txn(cur: Any) -> None:
        for event_id, pruned_json in pruned.items():
            store._delete_event_expiry_txn(cur, event_id)
            store._censor_event_txn(cur, event_id, pruned_json)
            store.invalidate_get_event_cache_after_txn(cur, event_id)
            store._send_invalidation_to_replication(cur, "_get_event_cache", (event_id,))
            _unindex_txn(cur, event_id)

    await store.db_pool.runInteraction("lux_privacy_expunge_events", txn)
    return [event_id for event_id in event_ids if event_id in pruned]


async def censor_redacted_event(api: ModuleApi, redaction_id: str, event_id: str) -> bool:
    """Prune the original JSON of a redacted event now; False if the redaction was refused.

    The same steps as Synapse's ``CensorEventsStore._censor_redactions`` job, for one
    redaction and whatever ``redaction_retention_period`` says: prune the original
    with ``prune_event`` (Synapse's ``redact_event`` from 1.155 on; its own
    Python pruning before), store it with ``_censor_event_txn``, mark the redaction
    ``have_censored``. Then ``_unindex_txn`` drops the original's search entry. The
    event caches are invalidated here and on every worker, as ``expunge_event`` does
    (Synapse's job does not: its workers' caches already hold the redacted form, but
    the stored JSON is what any cache refills from).
    """
    store = api._hs.get_datastores().main
    redaction = await store.get_event(redaction_id, allow_none=True)
    original = await store.get_event(event_id, allow_rejected=True, allow_none=True)
    pruned: str | None = None
    if redaction and original and original.internal_metadata.is_redacted():
        pruned = json_encoder.encode(prune_event(original).get_pdu_json())

    def txn(cur: Any) -> None:
        if pruned is not None:
            store._censor_event_txn(cur, event_id, pruned)
            store.invalidate_get_event_cache_after_txn(cur, event_id)
            store._send_invalidation_to_replication(cur, "_get_event_cache", (event_id,))
            _unindex_txn(cur, event_id)
        store.db_pool.simple_update_one_txn(
            cur,
            table="redactions",
            keyvalues={"event_id": redaction_id},
            updatevalues={"have_censored": True},
        )

    await store.db_pool.runInteraction("lux_privacy_censor_redacted_event", txn)
    return pruned is not None


def _unindex_txn(cur: Cursor, event_id: str) -> None:
    """Remove the copies of an expunged event's content that Synapse's expiry leaves.

    Synapse has no machinery for either (only a whole-event purge removes them):
    the full-text search entry (the message body, room name or topic), and the
    display name and avatar a membership event copied into ``room_memberships``.
    """
    cur.execute("DELETE FROM event_search WHERE event_id = ?", (event_id,))
    cur.execute(
        "UPDATE room_memberships SET display_name = NULL, avatar_url = NULL WHERE event_id = ?",
        (event_id,),
    )


@attrs.frozen
class TypeStats:
    """A user's stored non-state events of one (type, msgtype), for the report (R14),
    in held rooms (``held``) or not."""

    type: str
    msgtype: str | None
    count: int
    oldest_ts: int | None
    oldest_unexpunged_ts: int | None
    held: bool = False


async def user_event_stats(
    db: DbRunner,
    dialect: Dialect,
    user_id: str,
    ledger_state: tuple[str, str],
    held_rooms: Collection[str] = (),
) -> list[TypeStats]:
    """The local user's stored non-state events, grouped by type, msgtype and whether
    their room is one of ``held_rooms`` (R13, R14).

    Synapse has no index on ``events.sender``. Once the quota's ledger
    (``lux_privacy_quota_events``, indexed by user) holds every event a local user sent
    up to its watermark (``ledger_state``: the names, in ``lux_privacy_quota_state``, of
    the position up to which a reconciliation made it complete and of the accounting's
    watermark), the user's events are those it lists and those sent since the watermark
    (Synapse's index on ``stream_ordering``). Before that (the first reconciliation after
    installation), ``events`` is read by sender. The rows themselves are always read
    from Synapse's tables, so what is gone is not counted.
    """
    complete_name, watermark_name = ledger_state
    rooms = sorted(held_rooms)
    held_sql = f"CASE WHEN e.room_id IN ({placeholders(rooms)}) THEN 1 ELSE 0 END" if rooms else "0"

    def txn(cur: Cursor) -> list[TypeStats]:
        cur.execute(
            "SELECT c.value, w.value FROM lux_privacy_quota_state AS c"
            " JOIN lux_privacy_quota_state AS w ON w.name = ? WHERE c.name = ?",
            (watermark_name, complete_name),
        )
        state = cur.fetchone()
        args: list[Any] = [user_id]
        if state is None:
            mine = "e.sender = ?"
        else:
            mine = (
                "e.event_id IN (SELECT q.event_id FROM lux_privacy_quota_events AS q"
                " WHERE q.user_id = ? UNION ALL SELECT n.event_id FROM events AS n"
                " WHERE n.stream_ordering > ? AND n.sender = ?)"
            )
            args = [user_id, int(state[1]), user_id]
        cur.execute(
            f"SELECT e.type, {_msgtype_sql(dialect, joined=True)} AS mt, COUNT(*),"
            f" MIN({age_ts_sql(dialect)}),"
            f" MIN(CASE WHEN x.event_id IS NULL THEN {age_ts_sql(dialect)} END),"
            f" {held_sql} AS held"
            " FROM events AS e JOIN event_json AS ej ON ej.event_id = e.event_id"
            " LEFT JOIN lux_privacy_expunged AS x ON x.event_id = e.event_id"
            f" WHERE {mine} AND {_NOT_STATE} AND {_NOT_REJECTED} GROUP BY e.type, mt, held",
            (*rooms, *args),
        )
        return [
            TypeStats(
                type=row[0],
                msgtype=row[1] if isinstance(row[1], str) else None,
                count=int(row[2]),
                oldest_ts=None if row[3] is None else int(row[3]),
                oldest_unexpunged_ts=None if row[4] is None else int(row[4]),
                held=bool(row[5]),
            )
            for row in cur.fetchall()
        ]

    return await db("lux_privacy_user_event_stats", txn)


async def mxc_events_in_rooms(
    db: DbRunner, room_ids: Iterable[str], markers: Sequence[str]
) -> list[tuple[str, str]]:
    """(room_id, event JSON) of every event of these rooms whose JSON, in lower case,
    holds one of ``markers`` (``mxc_uris.MARKERS``: every text that may refer to a file).

    Used to keep the media of held rooms (R13), wherever and in whatever form the URI
    stands in the event (Synapse's ``contains_url`` flags only a top-level ``url``, so
    the stored JSON is searched instead); encrypted events hide their URIs. Bounded by
    the rooms' events (held rooms only).
    """
    rooms = sorted(room_ids)
    holds_marker, marker_args = holds_any_sql("ej.json", markers)

    def txn(cur: Cursor) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        for part in chunks(rooms):
            cur.execute(
                "SELECT e.room_id, ej.json FROM events AS e"
                " JOIN event_json AS ej ON ej.event_id = e.event_id"
                f" WHERE e.room_id IN ({placeholders(part)}) AND {holds_marker}",
                (*part, *marker_args),
            )
            found.extend((str(r[0]), str(r[1])) for r in cur.fetchall())
        return found

    return await db("lux_privacy_mxc_events_in_rooms", txn)
