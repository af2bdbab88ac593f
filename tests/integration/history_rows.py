"""A large synthetic history in a throwaway PostgreSQL database, for query plans; no tests.

``fill_history`` inserts rows straight into the tables of a database that Synapse
(with the module) created and no longer runs on: enough events, media, devices and
IP log rows of enough rooms and users that PostgreSQL's planner, after ``ANALYZE``,
costs each query as on a provider's server. The rows only need realistic shapes and
value distributions, not consistency: nothing reads them but the planner and the
queries under test. Columns the overrides do not name get a value of their type when
they are NOT NULL without a default, so the fill follows Synapse's schema as it is.
"""

from __future__ import annotations

from collections.abc import Mapping

from tests.harness import Database

EVENTS = 200_000
ROOMS = 2_000
USERS = 10_000
BASE_TS = 1_600_000_000_000

ROOM = f"'!r' || mod(i, {ROOMS}) || ':test'"
USER = f"'@u' || mod(i, {USERS}) || ':test'"
EVENT = "'$e' || i"
JSON = """'{"content":{"msgtype":"m.text","body":"hi","url":"mxc://test/m' || i || '"}}'"""


def _default(data_type: str) -> str:
    if data_type in ("integer", "bigint", "smallint", "real", "double precision", "numeric"):
        return "i"
    if data_type == "boolean":
        return "false"
    if data_type == "bytea":
        return "'x'::bytea"
    if data_type in ("json", "jsonb"):
        return "'{}'"
    return "'v' || i"


def fill(db: Database, table: str, rows: int, values: Mapping[str, str]) -> None:
    """Insert ``rows`` rows (``i`` = 1..rows) with these SQL expressions of ``i``."""
    columns = db.query(
        "SELECT column_name, data_type, is_nullable, column_default"
        " FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = ?",
        (table,),
    )
    assert columns, f"no table {table}"
    known = {str(c[0]) for c in columns}
    assert set(values) <= known, (table, set(values) - known)
    exprs = dict(values)
    for name, data_type, nullable, default in columns:
        if name not in exprs and nullable == "NO" and default is None:
            exprs[str(name)] = _default(str(data_type))
    db.execute(
        f"INSERT INTO {table} ({', '.join(exprs)})"
        f" SELECT {', '.join(exprs.values())} FROM generate_series(1, {rows}) AS i"
    )


def fill_history(db: Database) -> None:
    """Users, devices, IP logs, rooms, events (one in ten a state event), media..."""
    is_state = "mod(i, 10) = 1"
    fill(db, "users", USERS, {"name": USER, "creation_ts": "1600000000 + i", "deactivated": "0"})
    fill(
        db,
        "devices",
        2 * USERS,
        {"user_id": USER, "device_id": "'D' || i", "last_seen": f"{BASE_TS} + i * 1000",
         "ip": "'10.0.0.1'", "user_agent": "'ua'", "hidden": "false"},
    )  # fmt: skip
    fill(
        db,
        "user_ips",
        5 * USERS,
        {"user_id": USER, "access_token": "'t' || i", "device_id": "'D' || i",
         "ip": "'10.0.' || mod(i, 250) || '.1'", "user_agent": "'ua'",
         "last_seen": f"{BASE_TS} + i * 1000"},
    )  # fmt: skip
    fill(
        db,
        "user_daily_visits",
        5 * USERS,
        {"user_id": USER, "device_id": "'D' || i", "timestamp": f"{BASE_TS} + i * 1000",
         "user_agent": "'ua'"},
    )  # fmt: skip
    fill(db, "ui_auth_sessions", 5_000, {"session_id": "'s' || i", "creation_time": "i"})
    fill(db, "ui_auth_sessions_ips", 5_000, {"session_id": "'s' || i", "ip": "'10.0.0.1'",
                                             "user_agent": "'ua'"})  # fmt: skip
    fill(db, "rooms", ROOMS, {"room_id": "'!r' || i || ':test'", "room_version": "'10'"})
    fill(
        db,
        "events",
        EVENTS,
        {"event_id": EVENT, "room_id": ROOM, "sender": USER,
         "type": f"CASE WHEN {is_state} THEN 'm.room.member' ELSE 'm.room.message' END",
         "state_key": f"CASE WHEN {is_state} THEN {USER} END",
         "topological_ordering": f"i / {ROOMS} + 1", "depth": f"i / {ROOMS} + 1",
         "stream_ordering": "i", "origin_server_ts": f"{BASE_TS} + i * 1000",
         "received_ts": f"{BASE_TS} + i * 1000", "contains_url": "mod(i, 10) = 5",
         "outlier": "false", "processed": "true"},
    )  # fmt: skip
    fill(
        db,
        "event_json",
        EVENTS,
        {"event_id": EVENT, "room_id": ROOM, "internal_metadata": "'{}'", "format_version": "3",
         "json": JSON},
    )  # fmt: skip
    db.execute(
        "INSERT INTO state_events (event_id, room_id, type, state_key)"
        " SELECT event_id, room_id, type, state_key FROM events WHERE state_key IS NOT NULL"
    )
    db.execute(
        "INSERT INTO current_state_events (event_id, room_id, type, state_key, membership)"
        " SELECT DISTINCT ON (room_id, type, state_key) event_id, room_id, type, state_key,"
        " 'join' FROM events WHERE state_key IS NOT NULL"
        " ORDER BY room_id, type, state_key, stream_ordering DESC"
    )
    db.execute(
        "INSERT INTO room_memberships (event_id, user_id, sender, room_id, membership,"
        " avatar_url, display_name) SELECT event_id, state_key, sender, room_id, 'join',"
        " 'mxc://test/a' || stream_ordering, 'U' FROM events WHERE state_key IS NOT NULL"
    )
    db.execute(
        "INSERT INTO event_forward_extremities (event_id, room_id)"
        f" SELECT event_id, room_id FROM events WHERE stream_ordering > {EVENTS - ROOMS}"
    )
    fill(db, "rejections", 2_000, {"event_id": "'$e' || (i * 97)", "reason": "'bad'"})
    fill(
        db,
        "event_search",
        EVENTS // 2,
        {"event_id": "'$e' || (2 * i)", "room_id": ROOM, "key": "'content.body'",
         "vector": "to_tsvector('english', 'hello')", "origin_server_ts": "i",
         "stream_ordering": "2 * i"},
    )  # fmt: skip
    fill(
        db,
        "redactions",
        5_000,
        {"event_id": "'$red' || i", "redacts": "'$e' || (i * 40)", "received_ts": "i",
         "have_censored": "mod(i, 50) <> 0"},
    )  # fmt: skip
    media = {"media_id": "'m' || i", "media_type": "'image/png'", "media_length": "2048",
             "created_ts": f"{BASE_TS} + i * 1000", "user_id": USER}  # fmt: skip
    fill(db, "local_media_repository", 30_000, media)
    fill(
        db,
        "local_media_repository_thumbnails",
        30_000,
        {"media_id": "'m' || i", "thumbnail_width": "32", "thumbnail_height": "32",
         "thumbnail_type": "'image/png'", "thumbnail_method": "'crop'",
         "thumbnail_length": "100"},
    )  # fmt: skip
    fill(
        db,
        "remote_media_cache",
        20_000,
        {"media_origin": "'remote' || mod(i, 50)", "media_id": "'rm' || i",
         "created_ts": f"{BASE_TS} + i * 1000", "filesystem_id": "'f' || i"},
    )  # fmt: skip
    fill(db, "profiles", USERS, {"full_user_id": USER, "user_id": f"'u' || mod(i, {USERS})",
                                 "avatar_url": "'mxc://test/a' || i"})  # fmt: skip
    fill(db, "user_directory", USERS, {"user_id": USER, "avatar_url": "'mxc://test/a' || i"})
    fill(db, "room_stats_state", ROOMS, {"room_id": "'!r' || i || ':test'",
                                         "avatar": "'mxc://test/a' || i"})  # fmt: skip
    fill(db, "room_account_data", 5 * USERS,
         {"user_id": USER, "room_id": ROOM, "account_data_type": "'m.tag' || i",
          "stream_id": "i", "content": '\'{"tags":{"u":{"order":0.5}}}\''})  # fmt: skip
    _fill_module_tables(db)
    db.execute("ANALYZE")


def _fill_module_tables(db: Database) -> None:
    """The module's own records of the same history (activity, expunged events, ledgers)."""
    db.execute(
        "INSERT INTO lux_privacy_user_activity (user_id, last_active_ts)"
        " SELECT name, creation_ts * 1000 FROM users"
    )
    db.execute(
        "INSERT INTO lux_privacy_device_activity (user_id, device_id, first_seen_ts, last_seen_ts)"
        " SELECT user_id, device_id, last_seen, last_seen FROM devices"
    )
    db.execute(
        "INSERT INTO lux_privacy_quota_events (event_id, user_id, room_id, ts, size,"
        " pruned_size) SELECT event_id, sender, room_id, origin_server_ts, 100, 10 FROM events"
        " WHERE state_key IS NULL"
    )
    db.execute(
        "INSERT INTO lux_privacy_quota_state (name, value)"
        f" VALUES ('complete', {EVENTS - 1000}), ('watermark', {EVENTS - 1000})"
    )
    db.execute(
        "INSERT INTO lux_privacy_quota_media (media_id, user_id, ts, size)"
        " SELECT media_id, user_id, created_ts, media_length FROM local_media_repository"
    )
    db.execute(
        "INSERT INTO lux_privacy_expunged (event_id, room_id, rule, expunged_ts)"
        " SELECT event_id, room_id, 'messages', origin_server_ts FROM events"
        " WHERE mod(stream_ordering, 20) = 3"
    )
