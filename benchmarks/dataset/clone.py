"""Multiply a built dataset by cloning its rooms in the database (issue 14, PostgreSQL).

Building goes through Synapse at about 25 events/s on the 2-core machine, so a
million events would take 11 hours. Cloning copies every room ``copies`` times with
set-based ``INSERT ... SELECT`` statements (one per table, every copy at once, joined
with ``generate_series``): a million event rows take minutes. **Only on a throwaway
benchmark database with Synapse stopped**, never on a server's.

A copy is a room of its own for Synapse: same members, same messages and state, with
new IDs and positions, consistent in every table Synapse reads for a room (the event
graph, auth chains, state groups, current state, memberships, extremities, search,
stats, sliding sync, user directory sharing) and in the module's quota ledger (R4:
each member's usage grows with the copies of their events).

- IDs: Synapse checks, whenever it loads an event, that its ID is the reference hash
  of its JSON (room versions 3+), and in room version 12 a room's ID is its create
  event's hash. So each copy's event JSON is rewritten (every event and room ID quoted
  in it mapped to the copy's, which keeps its length: the quota ledger's sizes stay
  true) and hashed as Synapse hashes it (``make_event_from_dict``), in stream order so
  that an event's ``prev_events`` and ``auth_events`` are mapped before it. A copied
  create event differs from its original by ``origin_server_ts`` + the copy number (in
  milliseconds, in its JSON). The ID maps and the new JSON go to temporary tables (COPY);
  the rest is SQL.
- Stream orderings: copy ``c`` of the event at ``s`` goes to
  ``base + (s - 1) * copies + c`` (``base``: the highest position before cloning), so
  each copy keeps its room's order, and ``(position - base - 1) // copies + 1`` gives
  the original back: ``aging.py`` dates every copy as its original, spread over the
  same 48 months. Topological orderings (depths) are kept.
- State groups and auth chain IDs: shifted by ``c`` times the highest one.

Left out, as nothing reads them for a room's history: notification counts
(``event_push_actions``, ``event_push_summary``), receipts, transaction IDs and the
device-list changes of the rooms. Synapse's sequences and stream positions are moved
past the copies (``_check_consistency_with_table`` at start-up), and so are the
positions of its user directory and room stats, whose rows are copied rather than
recomputed, and the module's accounting watermark.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import attrs
import psycopg2
from synapse.api.room_versions import KNOWN_ROOM_VERSIONS
from synapse.events import make_event_from_dict

# Event and room IDs of room versions 4+ (``$``/``!`` and 43 URL-safe base64
# characters), quoted in an event's JSON.
JSON_ID = re.compile(r'"([$!][A-Za-z0-9_-]{43})"')
ID_PATTERN = r"^[$!][A-Za-z0-9_-]{43}$"
CREATE_TS = re.compile(r'"origin_server_ts":(\d+)')

# How a column of a copied row is made. ID: the copy's event ID; ROOM: its room ID; SO:
# its stream ordering; SG: its state group; CH: its auth chain; JSON: its rewritten event
# JSON; anything else is copied as it is.
ID, ROOM, SO, SG, CH, JSON = "id", "room", "so", "sg", "ch", "json"
Columns = tuple[tuple[str, str | None], ...]


def _cols(text: str) -> Columns:
    """``"event_id:id, type"`` -> ``(("event_id", "id"), ("type", None))``."""
    out = []
    for item in text.split(","):
        name, _, kind = item.strip().partition(":")
        out.append((name, kind or None))
    return tuple(out)


# Every copied table, in an order that satisfies Synapse's foreign keys.
COPIED: tuple[tuple[str, Columns], ...] = tuple(
    (table, _cols(columns))
    for table, columns in (
        ("rooms", "room_id:room, is_public, creator, room_version, has_auth_chain_index"),
        ("room_depth", "room_id:room, min_depth"),
        (
            "events",
            "topological_ordering, event_id:id, type, room_id:room, content, unrecognized_keys,"
            " processed, outlier, depth, origin_server_ts, received_ts, sender, contains_url,"
            " instance_name, stream_ordering:so, state_key, rejection_reason",
        ),
        ("event_json", "event_id:id, room_id:room, internal_metadata, json:json, format_version"),
        ("event_edges", "event_id:id, prev_event_id:id, room_id:room, is_state"),
        ("event_auth", "event_id:id, auth_id:id, room_id:room"),
        ("state_events", "event_id:id, room_id:room, type, state_key, prev_state:id"),
        (
            "current_state_events",
            "event_id:id, room_id:room, type, state_key, membership, event_stream_ordering:so",
        ),
        (
            "room_memberships",
            "event_id:id, user_id, sender, room_id:room, membership, forgotten, display_name,"
            " avatar_url, event_stream_ordering:so, participant",
        ),
        (
            "local_current_membership",
            "room_id:room, user_id, event_id:id, membership, event_stream_ordering:so",
        ),
        (
            "current_state_delta_stream",
            "stream_id:so, room_id:room, type, state_key, event_id:id, prev_event_id:id,"
            " instance_name",
        ),
        ("state_groups", "id:sg, room_id:room, event_id:id"),
        ("state_groups_state", "state_group:sg, room_id:room, type, state_key, event_id:id"),
        ("state_group_edges", "state_group:sg, prev_state_group:sg"),
        ("event_to_state_groups", "event_id:id, state_group:sg"),
        ("event_forward_extremities", "event_id:id, room_id:room"),
        ("event_backward_extremities", "event_id:id, room_id:room"),
        ("stream_ordering_to_exterm", "stream_ordering:so, room_id:room, event_id:id"),
        (
            "event_search",
            "event_id:id, room_id:room, sender, key, vector, origin_server_ts, stream_ordering:so",
        ),
        ("event_auth_chains", "event_id:id, chain_id:ch, sequence_number"),
        (
            "event_auth_chain_links",
            "origin_chain_id:ch, origin_sequence_number, target_chain_id:ch,"
            " target_sequence_number",
        ),
        ("event_auth_chain_to_calculate", "event_id:id, room_id:room, type, state_key"),
        ("event_relations", "event_id:id, relates_to_id:id, relation_type, aggregation_key"),
        ("redactions", "event_id:id, redacts:id, have_censored, received_ts, recheck"),
        (
            "room_stats_current",
            "room_id:room, current_state_events, joined_members, invited_members, left_members,"
            " banned_members, local_users_in_room, completed_delta_stream_id:so,"
            " knocked_members",
        ),
        (
            "room_stats_state",
            "room_id:room, name, canonical_alias, join_rules, history_visibility, encryption,"
            " avatar, guest_access, is_federatable, topic, room_type",
        ),
        ("room_stats_earliest_token", "room_id:room, token:so"),
        (
            "sliding_sync_joined_rooms",
            "room_id:room, event_stream_ordering:so, bump_stamp:so, room_type, room_name,"
            " is_encrypted, tombstone_successor_room_id:room",
        ),
        (
            "sliding_sync_membership_snapshots",
            "room_id:room, user_id, sender, membership_event_id:id, membership, forgotten,"
            " event_stream_ordering:so, event_instance_name, has_known_state, room_type,"
            " room_name, is_encrypted, tombstone_successor_room_id:room",
        ),
        ("users_in_public_rooms", "user_id, room_id:room"),
        ("users_who_share_private_rooms", "user_id, other_user_id, room_id:room"),
        # The module's quota ledger (R4): one row per counted event, sizes unchanged.
        ("lux_privacy_quota_events", "event_id:id, user_id, room_id:room, ts, size, pruned_size"),
    )
)

# Synapse's sequences and the tables they must stay ahead of.
SEQUENCES = (
    ("events_stream_seq", "events", "stream_ordering"),
    ("state_group_id_seq", "state_groups", "id"),
    ("event_auth_chain_id", "event_auth_chains", "chain_id"),
)
# Positions in the events stream up to which Synapse has processed the state deltas:
# the copies' deltas are copied with their results, not to be processed again.
DELTA_POSITIONS = ("user_directory_stream_pos", "stats_incremental_position")


@attrs.frozen
class CloneResult:
    """What :func:`clone_rooms` did; ``base_stream`` maps a copy's events to the
    originals' (``original_stream``)."""

    copies: int
    base_stream: int  # the highest stream ordering before cloning
    rooms: dict[str, list[str]]  # original room ID -> its copies' IDs, copy 1 first
    hash_seconds: float  # rewriting and hashing the event JSON (Python)
    seconds: float  # all of it
    rows: dict[str, int]  # rows inserted per table
    table_seconds: dict[str, float]  # time of each table's INSERT


def original_stream(column: str, copies: int, base_stream: int) -> str:
    """SQL giving, for the stream ordering ``column``, its original's (copies map back)."""
    return (
        f"CASE WHEN {column} > {int(base_stream)}"
        f" THEN ({column} - {int(base_stream) + 1}) / {int(copies)} + 1 ELSE {column} END"
    )


def clone_rooms(pg_params: dict[str, Any], copies: int) -> CloneResult:
    """Copy every room of the (stopped) database ``copies`` times, in one transaction."""
    if copies < 1:
        raise ValueError(f"copies must be at least 1, not {copies}")
    params = dict(pg_params)
    params["dbname"] = params.pop("database")
    began = time.monotonic()
    conn = psycopg2.connect(connect_timeout=10, **params)
    try:
        with conn, conn.cursor() as cur:
            base = _check(cur)
            _functions(cur, copies, base)
            rooms, hash_seconds = _map_ids(cur, copies)
            rows, table_seconds = _copy(cur, copies)
            _after(cur, base)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("ANALYZE")
    finally:
        conn.close()
    seconds = round(time.monotonic() - began, 1)
    return CloneResult(copies, base, rooms, round(hash_seconds, 1), seconds, rows, table_seconds)


def _one(cur: Any, sql: str) -> int:
    cur.execute(sql)
    row = cur.fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


def _check(cur: Any) -> int:
    """Refuse data the ID and position mappings do not fit; the highest stream ordering."""
    odd = _one(
        cur,
        f"SELECT COUNT(*) FROM events WHERE event_id !~ '{ID_PATTERN}'"
        f" OR room_id !~ '{ID_PATTERN}'",
    )
    if odd:
        raise ValueError(f"{odd} events have IDs of another shape than room version 12's")
    if _one(cur, "SELECT COUNT(*) FROM events WHERE stream_ordering < 1"):
        raise ValueError("events with stream orderings below 1 (backfilled) cannot be cloned")
    return _one(cur, "SELECT MAX(stream_ordering) FROM events")


def _functions(cur: Any, copies: int, base: int) -> None:
    """The copy numbers, the ID and JSON tables, and SQL functions for the positions."""
    group = _one(cur, "SELECT MAX(id) FROM state_groups") + 1
    chain = _one(cur, "SELECT MAX(chain_id) FROM event_auth_chains") + 1
    for sql in (
        "SET LOCAL work_mem = '256MB'",
        f"CREATE TEMP TABLE k AS SELECT generate_series(1, {int(copies)}) AS c",
        "CREATE TEMP TABLE clone_ids (c int NOT NULL, old text NOT NULL, new text NOT NULL)",
        "CREATE TEMP TABLE clone_rooms (c int NOT NULL, old text NOT NULL, new text NOT NULL)",
        "CREATE TEMP TABLE clone_json (c int NOT NULL, event_id text NOT NULL, json text NOT NULL)",
        "CREATE FUNCTION pg_temp.cso(s bigint, c int) RETURNS bigint LANGUAGE sql IMMUTABLE"
        f" AS $f$ SELECT {int(base)} + (s - 1) * {int(copies)} + c $f$",
        "CREATE FUNCTION pg_temp.csg(g bigint, c int) RETURNS bigint LANGUAGE sql IMMUTABLE"
        f" AS $f$ SELECT g + c * {int(group)}::bigint $f$",
        "CREATE FUNCTION pg_temp.cch(h bigint, c int) RETURNS bigint LANGUAGE sql IMMUTABLE"
        f" AS $f$ SELECT h + c * {int(chain)}::bigint $f$",
    ):
        cur.execute(sql)


def _map_ids(cur: Any, copies: int) -> tuple[dict[str, list[str]], float]:
    """Rewrite and hash every event of every copy; fill ``clone_ids``, ``clone_rooms`` and
    ``clone_json``."""
    began = time.monotonic()
    cur.execute(
        "SELECT e.event_id, e.room_id, e.type = 'm.room.create' AND e.state_key = '',"
        " r.room_version, j.json FROM events AS e JOIN event_json AS j USING (event_id)"
        " JOIN rooms AS r ON r.room_id = e.room_id ORDER BY e.stream_ordering"
    )
    events = cur.fetchall()
    rooms: dict[str, list[str]] = {}
    for c in range(1, copies + 1):
        ids: dict[str, str] = {}
        texts: list[tuple[int, str, str]] = []
        for event_id, room_id, create, version, text in events:
            new_text, new_id = _rewrite(text, version, ids, c if create else 0)
            ids[event_id] = new_id
            if create:
                ids[room_id] = "!" + new_id[1:]
                rooms.setdefault(room_id, []).append(ids[room_id])
            texts.append((c, event_id, new_text))
        _load(cur, "clone_ids", ((c, old, new) for old, new in ids.items() if old[0] == "$"))
        _load(cur, "clone_rooms", ((c, old, new) for old, new in ids.items() if old[0] == "!"))
        _load(cur, "clone_json", iter(texts))
    cur.execute("CREATE INDEX ON clone_ids (c, old)")
    cur.execute("CREATE INDEX ON clone_rooms (c, old)")
    cur.execute("CREATE INDEX ON clone_json (c, event_id)")
    cur.execute("ANALYZE k, clone_ids, clone_rooms, clone_json")
    return rooms, time.monotonic() - began


def _rewrite(text: str, version: str, ids: dict[str, str], shift: int) -> tuple[str, str]:
    """An event's JSON with the copy's IDs (``ids``) and ``origin_server_ts`` + ``shift``,
    and its ID as Synapse computes it (the reference hash)."""

    def mapped(match: re.Match[str]) -> str:
        return f'"{ids[match.group(1)]}"'

    def shifted(match: re.Match[str]) -> str:
        return f'"origin_server_ts":{int(match.group(1)) + shift}'

    text = JSON_ID.sub(mapped, text)
    if shift:
        text = CREATE_TS.sub(shifted, text, 1)
    return text, make_event_from_dict(json.loads(text), KNOWN_ROOM_VERSIONS[version]).event_id


def _load(cur: Any, table: str, rows: Iterator[tuple[object, ...]]) -> None:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    buffer.seek(0)
    cur.copy_expert(f"COPY {table} FROM STDIN WITH (FORMAT csv)", buffer)


def _select(columns: Columns) -> tuple[str, str]:
    """The SELECT list and the joins that make copy ``k.c`` of a row of ``t``."""
    select: list[str] = []
    joins: list[str] = []
    for n, (name, kind) in enumerate(columns):
        if kind in (ID, ROOM):
            ids = "clone_ids" if kind == ID else "clone_rooms"
            joins.append(f" LEFT JOIN {ids} AS m{n} ON m{n}.c = k.c AND m{n}.old = t.{name}")
            select.append(f"m{n}.new")
        elif kind == JSON:
            joins.append(" JOIN clone_json AS j ON j.c = k.c AND j.event_id = t.event_id")
            select.append("j.json")
        elif kind in (SO, SG, CH):
            select.append(f"pg_temp.c{kind}(t.{name}, k.c)")
        else:
            select.append(f"t.{name}")
    return ", ".join(select), "".join(joins)


def _copy(cur: Any, copies: int) -> tuple[dict[str, int], dict[str, float]]:
    cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    present = {str(row[0]) for row in cur.fetchall()}
    rows: dict[str, int] = {}
    seconds: dict[str, float] = {}
    if "lux_privacy_quota_usage" in present:
        # R4: each member's event usage grows by the copies of the events they sent.
        cur.execute(
            "INSERT INTO lux_privacy_quota_usage (user_id, media_bytes, event_bytes)"
            f" SELECT user_id, 0, SUM(size) * {int(copies)} FROM lux_privacy_quota_events"
            " GROUP BY user_id ON CONFLICT (user_id) DO UPDATE SET event_bytes"
            " = lux_privacy_quota_usage.event_bytes + excluded.event_bytes"
        )
    for table, columns in COPIED:
        if table not in present:
            continue
        select, joins = _select(columns)
        names = ", ".join(name for name, _ in columns)
        began = time.monotonic()
        cur.execute(
            f"INSERT INTO {table} ({names}) SELECT {select} FROM {table} AS t CROSS JOIN k{joins}"
        )
        rows[table] = int(cur.rowcount)
        seconds[table] = round(time.monotonic() - began, 1)
    return rows, seconds


def _after(cur: Any, base: int) -> None:
    """Move Synapse's sequences, stream positions and the module's watermark past the
    copies."""
    for sequence, table, column in SEQUENCES:
        top = _one(cur, f"SELECT MAX({column}) FROM {table}")
        if top:
            cur.execute(f"SELECT setval('{sequence}', {top})")
    top = _one(cur, "SELECT MAX(stream_ordering) FROM events")
    cur.execute(f"UPDATE stream_positions SET stream_id = {top} WHERE stream_name = 'events'")
    # The senders that follow the events stream would otherwise start by working through
    # every copy (the federation sender spent the first minutes of a run on them).
    cur.execute(f"UPDATE federation_stream_position SET stream_id = {top} WHERE type = 'events'")
    cur.execute(f"UPDATE appservice_stream_position SET stream_ordering = {top}")
    for table in DELTA_POSITIONS:
        cur.execute(f"UPDATE {table} SET stream_id = {top}")
    # The module's accounting watermark (R4): the copies of the events it had counted
    # are in the ledger already (if it was behind, it counts the rest as usual).
    cur.execute("SELECT to_regclass('lux_privacy_quota_state')")
    row = cur.fetchone()
    if row is not None and row[0] is not None:
        cur.execute(
            f"UPDATE lux_privacy_quota_state SET value = {top}"
            f" WHERE name = 'events_stream' AND value >= {int(base)}"
        )
