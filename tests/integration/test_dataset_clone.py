"""Cloned benchmark rooms are real rooms for Synapse (issue 14: a dataset 10x larger).

A tiny dataset is built through Synapse (as ``test_dataset_generator.py`` does), then
multiplied by cloning its rooms three times in the database (``benchmarks/dataset/
clone.py``), stored, restored aged and served by a real Synapse with the module. A
member syncs, paginates, sends and has the module's messages rule (R1) sweep the
copies; an admin purges a copy's history with Synapse's own API. Time: the restored
data is aged by backdating rows as of a fixed "now" (``aging.age``), and the sweep runs
``as_of`` that same time (``allow_future_sweeps``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import attrs
import pytest

from benchmarks.dataset import DatasetSpec, Manifest, ensure_snapshot, lux_module, restore
from benchmarks.dataset.snapshot import snapshot_path
from synapse_lux_privacy.units import MONTH_MS
from tests.conftest import DATABASES
from tests.harness import Database, MatrixClient, PostgresCluster
from tests.harness.client import q

COPIES = 3
SPEC = DatasetSpec(users=12, rooms=6, messages=120, media=12, seed=3, clone_rooms=COPIES)
NOW = 1_900_000_000_000  # a fixed "now" (March 2030): ages do not depend on the clock
DUE_BEFORE = NOW - 24 * MONTH_MS  # retention.messages, by default
MODULE = [lux_module({"allow_future_sweeps": True})]


def paginate(client: MatrixClient, room_id: str) -> list[dict[str, Any]]:
    """Every event ``/messages`` returns, newest first, back to the room's start."""
    events: list[dict[str, Any]] = []
    params: dict[str, Any] = {"dir": "b", "limit": 50}
    while True:
        page = client.call("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/messages", None, params)
        events.extend(page["chunk"])
        if "end" not in page or not page["chunk"]:
            return events
        params["from"] = page["end"]


def copy_of(manifest: Manifest, original: str, copy: int) -> str:
    """The ID of copy ``copy`` of a room: the manifest lists the copies after the originals."""
    rooms = len(manifest.rooms) // (COPIES + 1)
    return manifest.rooms[copy * rooms + manifest.rooms.index(original)]


def per_room(db: Database, sql: str, *params: object) -> dict[str, int]:
    return {str(room): int(n) for room, n in db.query(sql + " GROUP BY room_id", params)}


@pytest.mark.parametrize("database", DATABASES)
def test_issue14_cloned_rooms_sync_paginate_send_and_purge_as_built_rooms_r1(
    database: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if database != "postgres":
        pytest.skip(
            "cloning rooms is PostgreSQL SQL (benchmarks/dataset/clone.py): the large"
            " benchmark datasets it makes are PostgreSQL ones"
        )
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    said: list[str] = []
    snapshot = ensure_snapshot(SPEC, "postgres", cluster, said.append, root=tmp_path / "sets")
    base = Manifest.load(
        snapshot_path(attrs.evolve(SPEC, clone_rooms=0), "postgres", tmp_path / "sets")
        / "manifest.json"
    )
    built = Manifest.load(snapshot / "manifest.json")
    assert any("cloning the rooms of" in line for line in said), said
    assert len(built.rooms) == (COPIES + 1) * SPEC.rooms
    assert len(built.encrypted_rooms) == (COPIES + 1) * len(base.encrypted_rooms)
    for table in ("events", "state_events", "rooms"):
        assert built.counts[table] == (COPIES + 1) * base.counts[table], table

    server, manifest = restore(snapshot, tmp_path / "aged", cluster, MODULE, NOW)
    server.start()
    try:
        db = server.db()
        # Each copy is dated as its original, event for event, over the same 48 months.
        room = max(base.rooms, key=lambda r: db.number(
            "SELECT COUNT(*) FROM events WHERE room_id = ?", (r,)))  # fmt: skip
        pairs = db.query(
            "SELECT o.origin_server_ts, c.origin_server_ts FROM events AS o JOIN events AS c"
            " ON c.stream_ordering = ? + (o.stream_ordering - 1) * ? + 3"
            " WHERE o.stream_ordering <= ?",
            (built.base_stream, COPIES, built.base_stream),
        )
        assert len(pairs) == base.counts["events"]
        assert all(original == copy for original, copy in pairs)
        copies = [copy_of(manifest, room, c) for c in range(1, COPIES + 1)]
        span = db.query_one(
            "SELECT MIN(origin_server_ts), MAX(origin_server_ts) FROM events WHERE room_id = ?",
            (copies[2],),
        )
        assert span is not None and span[0] < DUE_BEFORE < span[1]
        # R4: the quota ledger counts the copies, and each member's usage is their sum.
        ledger = "SELECT COUNT(*) FROM lux_privacy_quota_events WHERE room_id = ?"
        assert db.number(ledger, (copies[0],)) == db.number(ledger, (room,)) > 0
        wrong_usage = db.number(
            "SELECT COUNT(*) FROM lux_privacy_quota_usage AS u WHERE u.event_bytes <>"
            " (SELECT COALESCE(SUM(size), 0) FROM lux_privacy_quota_events AS e"
            " WHERE e.user_id = u.user_id)"
        )
        assert wrong_usage == 0

        member = str(db.query_one(
            "SELECT state_key FROM current_state_events WHERE room_id = ?"
            " AND type = 'm.room.member' AND membership = 'join'", (copies[0],))[0])  # fmt: skip
        client = MatrixClient(server.base_url, manifest.tokens[member][0], member)
        joined = set(client.sync()["rooms"]["join"])
        assert {room, *copies} <= joined
        in_rooms = {str(r) for (r,) in db.query(
            "SELECT room_id FROM local_current_membership WHERE user_id = ?"
            " AND membership = 'join'", (member,))}  # fmt: skip
        assert joined == in_rooms and len(in_rooms) % (COPIES + 1) == 0

        # /messages goes back to the creation, in a copy as in its original.
        stored = db.number("SELECT COUNT(*) FROM events WHERE room_id = ?", (copies[0],))
        for room_id in (room, copies[0]):
            events = paginate(client, room_id)
            assert events[-1]["type"] == "m.room.create" and len(events) == stored
            assert all(e["room_id"] == room_id for e in events)

        # A member sends into a copy and into its original.
        for room_id in (copies[0], room):
            sent = client.send_message(room_id, "after cloning")
            assert paginate(client, room_id)[0]["event_id"] == sent

        # Synapse's own purge of a copy's history, up to the middle of it.
        middle = paginate(client, copies[1])[stored // 2]["event_id"]
        admin = MatrixClient(server.base_url, manifest.admin_token, manifest.admin_user_id)
        body = {"delete_local_events": True, "purge_up_to_event_id": middle}
        purge = admin.synapse_admin("POST", f"/v1/purge_history/{q(copies[1])}", body)
        status = f"/v1/purge_history_status/{purge['purge_id']}"
        deadline = time.monotonic() + 60
        while admin.synapse_admin("GET", status)["status"] == "active":
            assert time.monotonic() < deadline, "the purge did not finish"
            time.sleep(0.2)
        assert admin.synapse_admin("GET", status)["status"] == "complete"
        left = db.number("SELECT COUNT(*) FROM events WHERE room_id = ?", (copies[1],))
        assert left < stored
        assert 0 < len(paginate(client, copies[1])) < stored  # back to the purge point

        # R1: the module's messages rule deletes the due events of the copies as of the
        # originals': an untouched copy keeps exactly what its original keeps.
        due = (
            "SELECT room_id, COUNT(*) FROM events WHERE state_key IS NULL AND origin_server_ts < ?"
        )
        due_before = per_room(db, due, DUE_BEFORE)
        status_code, body = admin.lux("POST", "/sweep", {"rules": ["messages"], "as_of": NOW})
        assert status_code == 200, body
        result = body["results"]["messages"]
        assert result["deleted"] > 0 and result["errors"] == 0, result
        kept = per_room(db, "SELECT room_id, COUNT(*) FROM events WHERE room_id IS NOT NULL")
        for original in base.rooms:
            sent_after = 1 if original == room else 0  # the message sent above
            assert kept[copy_of(manifest, original, 3)] == kept[original] - sent_after, original
        due_after = per_room(db, due, DUE_BEFORE)
        assert sum(due_after.get(c, 0) for c in copies) < sum(due_before.get(c, 0) for c in copies)

        # The rooms still work after the sweep: /messages goes back to the oldest event
        # kept (the sweep purged the older ones), as far in a copy as in its original
        # (which got one message more above), and the members can send.
        assert len(paginate(client, room)) == len(paginate(client, copies[2])) + 1
        for room_id in (room, copies[2]):
            sent = client.send_message(room_id, "after the sweep")
            assert paginate(client, room_id)[0]["event_id"] == sent
        assert "Traceback" not in server.log_text()
    finally:
        server.stop()
