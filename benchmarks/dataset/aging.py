"""Age a restored dataset as of a time: half of each kind of data past its Luxchat limit.

Everything in a fresh build was sent "now"; this backdates the rows a rule reads, the
way the integration tests do, spreading them evenly so that the oldest half of each
kind is past its default limit (``retention.*``, ``sessions.*``, ``logs.*``):

- events (``events.origin_server_ts`` and ``received_ts``): over 48 months, in send
  order (stream ordering), so half the messages are past 24 months (R1); a copy of a
  room (``clone.py``) is dated as its original, event for event;
- uploads (``local_media_repository.created_ts``): over 24 months, in upload order,
  half past 12 months (R2); ``last_access_ts`` is set to now: every file was viewed
  lately, the case Synapse's own ``media_retention`` (by last access) never deletes;
- users: registered 36 months ago, last active at times spread over 24 months (half
  inactive past 12 months, R12); each device last seen at its user's last activity,
  a month earlier per further device (R11), and its IP log row with it (R9). The
  module's activity record (``lux_privacy_user_activity``, ``_device_activity``) is
  set to the same times, as if the module had run since the users registered. The
  admin stays active now.

The JSON of an event keeps its original ``origin_server_ts``: the rules and Synapse's
purge jobs read the column, as the tests do. Run it on a stopped server (Synapse
caches rows) and only on benchmark data.
"""

from __future__ import annotations

from benchmarks.dataset.clone import original_stream
from benchmarks.dataset.spec import Manifest
from synapse_lux_privacy.units import MONTH_MS
from tests.harness import Database

EVENT_SPAN_MS = 48 * MONTH_MS
MEDIA_SPAN_MS = 24 * MONTH_MS
ACTIVITY_SPAN_MS = 24 * MONTH_MS
REGISTERED_AGO_MS = 36 * MONTH_MS


def spread(
    db: Database,
    table: str,
    columns: tuple[str, ...],
    order: str,
    oldest: int,
    span: int,
) -> None:
    """Set ``columns`` from ``oldest`` to ``oldest + span``, linear in ``order`` (one
    UPDATE, however many columns)."""
    row = db.query_one(f"SELECT MIN({order}), MAX({order}) FROM {table}")
    if row is None or row[0] is None:
        return
    low, high = int(row[0]), int(row[1])
    width = max(high - low, 1)
    value = f"{int(oldest)} + ({order} - {low}) * {int(span)} / {width}"
    db.execute(f"UPDATE {table} SET " + ", ".join(f"{c} = {value}" for c in columns))


def age(db: Database, manifest: Manifest, now_ms: int) -> None:
    """Backdate the dataset as of ``now_ms`` (see the module docstring)."""
    order = "stream_ordering"
    if manifest.spec.clone_rooms:
        order = original_stream(order, manifest.spec.clone_rooms, manifest.base_stream)
    columns = ("received_ts", "origin_server_ts")
    spread(db, "events", columns, order, now_ms - EVENT_SPAN_MS, EVENT_SPAN_MS)
    spread(
        db,
        "local_media_repository",
        ("created_ts",),
        "created_ts",
        now_ms - MEDIA_SPAN_MS,
        MEDIA_SPAN_MS,
    )
    db.execute("UPDATE local_media_repository SET last_access_ts = ?", (now_ms,))
    _age_users(db, manifest, now_ms)


def _age_users(db: Database, manifest: Manifest, now_ms: int) -> None:
    users = manifest.users  # the admin is not one of them
    db.execute(
        "UPDATE users SET creation_ts = ? WHERE name <> ?",
        ((now_ms - REGISTERED_AGO_MS) // 1000, manifest.admin_user_id),
    )
    active = {
        user_id: now_ms - ACTIVITY_SPAN_MS + ACTIVITY_SPAN_MS * n // max(len(users), 1)
        for n, user_id in enumerate(users)
    }
    devices = db.query("SELECT user_id, device_id FROM devices ORDER BY user_id, device_id")
    seen: list[tuple[int, str, str]] = []
    nth: dict[str, int] = {}
    for user_id, device_id in devices:
        if user_id in active:
            nth[user_id] = nth.get(user_id, -1) + 1
            seen.append((active[user_id] - nth[user_id] * MONTH_MS, user_id, device_id))
    db.executemany("UPDATE devices SET last_seen = ? WHERE user_id = ? AND device_id = ?", seen)
    db.executemany("UPDATE user_ips SET last_seen = ? WHERE user_id = ? AND device_id = ?", seen)
    if "lux_privacy_user_activity" not in db.tables():
        return
    registered = now_ms - REGISTERED_AGO_MS
    db.executemany(
        "DELETE FROM lux_privacy_device_activity WHERE user_id = ? AND device_id = ?",
        [(user_id, device_id) for _, user_id, device_id in seen],
    )
    db.executemany(
        "INSERT INTO lux_privacy_device_activity (user_id, device_id, first_seen_ts,"
        " last_seen_ts) VALUES (?, ?, ?, ?)",
        [(user_id, device_id, registered, ts) for ts, user_id, device_id in seen],
    )
    db.executemany(
        "DELETE FROM lux_privacy_user_activity WHERE user_id = ?", [(u,) for u in active]
    )
    db.executemany(
        "INSERT INTO lux_privacy_user_activity (user_id, last_active_ts) VALUES (?, ?)",
        list(active.items()),
    )
