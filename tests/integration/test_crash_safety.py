"""Crash safety of the sweep (R1, R13, R12, R7): Synapse killed with SIGKILL mid-sweep, then
restarted.

A server of its own (PostgreSQL only: sending the data takes ~70 s) holds a few
thousand messages sent through the client API by concurrent senders, plus data that
must stay: a held user's messages (R13) and recent messages. A real sweep of the
``messages`` rule is started, Synapse is killed with SIGKILL once some batches are
``done`` but the sweep is not finished, started again, and swept again.

Time: the sweep runs "as of" 25 months ahead (``allow_future_sweeps: true``), so every
message sent now is past its 24 months (R1). The messages that must stay for their
age have their ``origin_server_ts`` moved 2 months ahead in the database (23 months
old as of the sweep). The dead process's unexpired sweep lease is taken over by the
restarted process at once (same instance name, another process).

Inside the accounts rule (R12, R7; SQLite and PostgreSQL): idle users with many uploads
each, Synapse killed while the rule deletes a deactivated user's media (the slow step,
one file at a time), restarted, swept again. Time: that sweep runs "as of" 25 months
ahead too, past ``accounts.inactive_delete_after`` (1y); the admin is on legal hold.
"""

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.conftest import DATABASES, StartSynapse
from tests.harness import Database, MatrixClient, SynapseServer, uid
from tests.integration.test_content_retention import place_hold
from tests.integration.test_content_support import (
    MONTH,
    backdate_events,
    event_path,
    in_list,
    status,
    stored_events,
)

pytestmark = pytest.mark.integration

ROOMS = 3
MESSAGES_PER_ROOM = 700
SENDERS_PER_ROOM = 4
SEND_THREADS = 24
SWEEP_BATCH = 50
DONE_BATCHES_BEFORE_KILL = 3
IDLE_USERS = 3
UPLOADS_PER_USER = 120


def now_ms() -> int:
    return int(time.time() * 1000)


def send_bulk(senders: list[MatrixClient], rooms: list[str], per_room: int) -> list[str]:
    """Send ``per_room`` messages to each room from concurrent senders; their IDs."""
    jobs = [(senders[i % len(senders)], room, i) for room in rooms for i in range(per_room)]
    with ThreadPoolExecutor(SEND_THREADS) as pool:
        return list(pool.map(lambda j: j[0].send_message(j[1], f"bulk {j[2]}"), jobs))


def audit_done(server: SynapseServer) -> int:
    """Completed ``messages`` batches of the sweep still ``running``."""
    row = server.db().query_one(
        "SELECT COUNT(*) FROM lux_privacy_audit AS a JOIN lux_privacy_sweeps AS s"
        " ON s.sweep_id = a.sweep_id WHERE s.status = 'running' AND a.rule = 'messages'"
        " AND a.status = 'done'"
    )
    return 0 if row is None else int(row[0])


def bulk_bodies_left(server: SynapseServer, event_ids: list[str]) -> int:
    """How many of these events still have a stored ``body`` (neither purged nor expunged)."""
    rows = server.db().query(
        f"SELECT json FROM event_json WHERE event_id IN ({in_list(event_ids)})", event_ids
    )
    return sum("body" in json.loads(r[0])["content"] for r in rows)


def sweep_statuses(server: SynapseServer) -> list[str]:
    rows = server.db().query(
        "SELECT status FROM lux_privacy_sweeps WHERE dry_run = ? ORDER BY started_ts", (False,)
    )
    return [str(r[0]) for r in rows]


def messages_sweep(admin: MatrixClient, as_of: int, dry_run: bool = False) -> requests.Response:
    return admin.request(
        "POST",
        "/_synapse/client/lux_privacy/v1/sweep",
        json={"as_of": as_of, "dry_run": dry_run, "rules": ["messages"]},
        timeout=600,
    )


def paginate(client: MatrixClient, room_id: str, page: int = 7) -> list[dict[str, Any]]:
    """Every event of the room, walking ``/messages`` backwards ``page`` at a time."""
    events: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        params: dict[str, Any] = {"dir": "b", "limit": page}
        if token is not None:
            params["from"] = token
        body = client.call(
            "GET", f"/_matrix/client/v3/rooms/{quote(room_id, safe='')}/messages", params=params
        )
        events += body["chunk"]
        token = body.get("end")
        if token is None or not body["chunk"]:
            return events


@pytest.fixture(params=["postgres"])
def crash_server(request: pytest.FixtureRequest, start_synapse: StartSynapse) -> Iterator[Any]:
    yield start_synapse(
        request.param, {"allow_future_sweeps": True, "sweep_batch_size": SWEEP_BATCH}
    )


def test_r1_r13_sweep_killed_with_sigkill_is_finished_by_the_next_one(
    crash_server: SynapseServer,
) -> None:
    """SIGKILL mid-sweep: after a restart the next sweep deletes what was left, the held
    and recent messages stay, the killed sweep is ``interrupted`` and Synapse works."""
    hs = crash_server
    admin = hs.register_user(uid("admin"), admin=True)
    owner = hs.register_user(uid("owner"))
    held = hs.register_user(uid("held"))
    senders = [hs.register_user(uid("sender")) for _ in range(SENDERS_PER_ROOM)]
    rooms = [owner.create_room(preset="public_chat") for _ in range(ROOMS)]
    for room in rooms:
        for member in [held, *senders]:
            member.join(room)

    started = time.monotonic()
    bulk = send_bulk(senders, rooms, MESSAGES_PER_ROOM)
    send_seconds = time.monotonic() - started
    held_ids = [held.send_message(rooms[0], f"held {i}") for i in range(3)]
    recent = [owner.send_message(room, "recent") for room in rooms]
    backdate_events(hs.db(), recent, now_ms() + 2 * MONTH)
    place_hold(admin, user_id=held.user_id)
    as_of = now_ms() + 25 * MONTH

    killed_sweep: list[requests.Response | Exception] = []

    def run_sweep() -> None:
        try:
            killed_sweep.append(messages_sweep(admin, as_of))
        except requests.RequestException as exc:
            killed_sweep.append(exc)

    thread = threading.Thread(target=run_sweep)
    thread.start()
    deadline = time.monotonic() + 60
    while audit_done(hs) < DONE_BATCHES_BEFORE_KILL:
        assert thread.is_alive(), f"the sweep ended before it could be killed: {killed_sweep}"
        assert time.monotonic() < deadline, "the sweep never completed a batch"
        time.sleep(0.02)
    hs.kill()
    thread.join(30)
    assert isinstance(killed_sweep[0], requests.RequestException), killed_sweep
    left = bulk_bodies_left(hs, bulk)
    assert 0 < left < len(bulk), "the kill did not land in the middle of the sweep"
    assert sweep_statuses(hs) == ["running"]

    log_offset = len(hs.log_text())
    hs.start()
    # The dead process's lease names this instance: the restarted process takes it
    # over at once instead of waiting 10 minutes for it to run out.
    resumed = messages_sweep(admin, as_of)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["results"]["messages"]["errors"] == 0
    assert sweep_statuses(hs)[:2] == ["interrupted", "completed"]

    # The work is finished by the resumed sweep alone: every bulk message's row is purged
    # (a fork reached late in a batch waits for the next batch), only held data is due.
    assert bulk_bodies_left(hs, bulk) == 0
    assert stored_events(hs.db(), bulk) == set()
    forecast = messages_sweep(admin, as_of, dry_run=True).json()["results"]["messages"]
    assert forecast["candidates"] == forecast["held"] == len(held_ids), forecast

    # Nothing that must stay was deleted, nor its content expunged.
    assert stored_events(hs.db(), held_ids + recent) == set(held_ids + recent)
    kept = [(rooms[0], e, f"held {i}") for i, e in enumerate(held_ids)]
    kept += [(room, e, "recent") for room, e in zip(rooms, recent, strict=True)]
    for room, event_id, body in kept:
        assert status(owner, event_path(room, event_id)) == 200
        assert owner.get_event(room, event_id)["content"]["body"] == body

    # Synapse is healthy: send, sync, paginate, and no error logged since the restart.
    synced = owner.sync()
    new = senders[0].send_message(rooms[0], "after the crash")
    joined = owner.sync(synced["next_batch"])["rooms"]["join"]
    assert new in [e["event_id"] for e in joined[rooms[0]]["timeline"]["events"]]
    timeline = paginate(owner, rooms[0])
    assert timeline[0]["event_id"] == new
    assert {*held_ids, recent[0]} <= {e["event_id"] for e in timeline}
    assert not [e for e in timeline if e["event_id"] in bulk and e["content"]]
    log = hs.log_text()[log_offset:]
    errors = [line for line in log.splitlines() if "Traceback" in line or " ERROR " in line]
    assert errors == []
    purged = len(bulk) - len(stored_events(hs.db(), bulk))
    print(
        f"sent {len(bulk)} messages in {send_seconds:.1f} s; {left} left at the kill;"
        f" {purged} purged, {len(bulk) - purged} expunged"
    )


def half_deleted(db: Database, user_ids: list[str]) -> list[str]:
    """Those of these users who are deactivated while uploads of theirs are still stored."""
    rows = db.query(
        f"SELECT u.name FROM users AS u WHERE u.name IN ({in_list(user_ids)})"
        " AND u.deactivated = 1 AND EXISTS (SELECT 1 FROM local_media_repository AS m"
        " WHERE m.user_id = u.name)",
        user_ids,
    )
    return [str(r[0]) for r in rows]


def report(responses: list[requests.Response | Exception]) -> list[str]:
    return [r.text if isinstance(r, requests.Response) else repr(r) for r in responses]


def accounts_sweep(
    admin: MatrixClient, as_of: int, dry_run: bool = False, rules: tuple[str, ...] = ("accounts",)
) -> requests.Response:
    return admin.request(
        "POST",
        "/_synapse/client/lux_privacy/v1/sweep",
        json={"as_of": as_of, "dry_run": dry_run, "rules": list(rules)},
        timeout=600,
    )


@pytest.mark.parametrize("database", DATABASES)
def test_r12_r7_account_deletion_killed_between_deactivation_and_media_is_finished(
    start_synapse: StartSynapse, database: str
) -> None:
    """SIGKILL while the accounts rule deletes a deactivated user's media: the user stays
    marked as started, the next sweep selects them again although they are deactivated,
    and finishes: every upload of every idle user is gone, no mark is left."""
    hs = start_synapse(database, {"allow_future_sweeps": True})
    admin = hs.register_user(uid("admin"), admin=True)
    place_hold(admin, user_id=admin.user_id)
    idle = [hs.register_user(uid("idle")) for _ in range(IDLE_USERS)]
    jobs = [(user, i) for user in idle for i in range(UPLOADS_PER_USER)]
    with ThreadPoolExecutor(SEND_THREADS) as pool:
        list(pool.map(lambda j: j[0].upload_media(f"file {j[1]}".encode()), jobs))
    user_ids = [str(u.user_id) for u in idle]
    db = hs.db()
    uploads = f"SELECT COUNT(*) FROM local_media_repository WHERE user_id IN ({in_list(user_ids)})"
    assert db.number(uploads, user_ids) == len(jobs)
    as_of = now_ms() + 25 * MONTH
    # R11 first, as on a real server long before R12: the idle users' sessions go.
    assert accounts_sweep(admin, as_of, rules=("sessions",)).status_code == 200

    killed_sweep: list[requests.Response | Exception] = []

    def run_sweep() -> None:
        try:
            killed_sweep.append(accounts_sweep(admin, as_of))
        except requests.RequestException as exc:
            killed_sweep.append(exc)

    thread = threading.Thread(target=run_sweep)
    thread.start()
    deadline = time.monotonic() + 60
    while not half_deleted(db, user_ids):
        assert thread.is_alive(), (
            f"the sweep ended before it could be killed: {report(killed_sweep)}"
        )
        assert time.monotonic() < deadline, "no user was ever deactivated"
        time.sleep(0.01)
    hs.kill()
    thread.join(30)
    assert isinstance(killed_sweep[0], requests.RequestException), killed_sweep
    db = hs.db()
    cut_short = half_deleted(db, user_ids)
    assert len(cut_short) == 1, "the kill did not land between deactivation and media"
    left = db.number(uploads, user_ids)
    marks = db.query("SELECT user_id FROM lux_privacy_account_deletions")
    assert [str(r[0]) for r in marks] == cut_short

    log_offset = len(hs.log_text())
    hs.start()
    forecast = accounts_sweep(admin, as_of, dry_run=True).json()["results"]["accounts"]
    resumed = accounts_sweep(admin, as_of)
    assert resumed.status_code == 200, resumed.text
    results = resumed.json()["results"]["accounts"]
    assert forecast["candidates"] == results["candidates"] == results["deleted"] + 1, results
    assert results["held"] == 1  # the admin
    assert results["deleted"] >= 1 and results["errors"] == 0

    db = hs.db()
    assert db.number(uploads, user_ids) == 0
    assert db.number("SELECT COUNT(*) FROM lux_privacy_account_deletions") == 0
    deactivated = (
        f"SELECT COUNT(*) FROM users WHERE deactivated = 1 AND name IN ({in_list(user_ids)})"
    )
    assert db.number(deactivated, user_ids) == IDLE_USERS
    store = hs.dir / "media_store" / "local_content"
    assert not [p for p in store.rglob("*") if p.is_file()]
    assert sweep_statuses(hs)[-2:] == ["interrupted", "completed"]
    again = accounts_sweep(admin, as_of).json()["results"]["accounts"]
    assert again["candidates"] == again["held"] == 1, again
    log = hs.log_text()[log_offset:]
    errors = [line for line in log.splitlines() if "Traceback" in line or " ERROR " in line]
    assert errors == []
    print(f"{len(jobs) - left} of {len(jobs)} uploads deleted at the kill; {cut_short[0]} resumed")
