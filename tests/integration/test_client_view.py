"""What a third-party client (matrix-nio) sees after each kind of deletion (R1, R2, R4, R7,
R12), on SQLite and PostgreSQL: sync, back-pagination and event fetches keep working.

The cases (docs/content-retention.md, "What clients see"): messages purged under R1,
the room's newest message and an attachment event expunged (R1, R2: ``content: {}``),
a message evicted under R4 (expunged the same way), and the messages of an account
deleted under R12 (erased). Expunged events reach nio as ``BadEvent`` (its schema wants
a ``msgtype``): allowed; an error response or an exception is not.

Time: events and uploads are backdated to 1980 (``events.origin_server_ts``/``received_ts``,
``local_media_repository.created_ts``) and the content sweeps run "as of" a day past their
limits then; the deleted account's registration time and last activity are backdated
1y + 1d (``users.creation_ts``, ``lux_privacy_user_activity``). R4 is real: uploads
take a user over a 300 KiB quota and the eviction loop (every 2 s) acts.
"""

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from nio import (
    AsyncClient,
    BadEvent,
    RoomGetEventError,
    RoomGetEventResponse,
    RoomMessagesResponse,
    SyncResponse,
    UnknownBadEvent,
)

from tests.conftest import DATABASES, StartSynapse
from tests.harness import MatrixClient, SynapseServer, wait_for
from tests.harness.client import q
from tests.integration.test_accounts_rules import ACCOUNT_MS, backdate_user, now_ms
from tests.integration.test_content_support import (
    DAY,
    MONTH,
    backdate_events,
    backdate_media,
    png,
    stored_events,
)
from tests.integration.test_quota_support import KIB, blob, sweep

pytestmark = pytest.mark.integration

LONG_AGO = 315_532_800_000  # 1980


async def client_view(
    server: SynapseServer, viewer: MatrixClient, room_id: str, purged: list[str]
) -> dict[str, Any]:
    """Sync, page back to the room's start and fetch every event seen, as nio does."""
    client = AsyncClient(server.base_url, viewer.user_id or "")
    client.restore_login(viewer.user_id or "", viewer.device_id or "", viewer.access_token or "")
    try:
        synced = await client.sync(timeout=0, full_state=True)
        assert isinstance(synced, SyncResponse), synced
        timeline = synced.rooms.join[room_id].timeline
        events = list(timeline.events)
        start = timeline.prev_batch
        while True:
            page = await client.room_messages(room_id, start=start, limit=5)
            assert isinstance(page, RoomMessagesResponse), page
            events += page.chunk
            if not page.chunk or page.end is None:
                break
            start = page.end
        fetched = {}
        for event in events:
            response = await client.room_get_event(room_id, event.event_id)
            assert isinstance(response, RoomGetEventResponse), response
            fetched[event.event_id] = response.event
        gone = {}
        for event_id in purged:
            response = await client.room_get_event(room_id, event_id)
            assert isinstance(response, RoomGetEventError), response
            gone[event_id] = response.status_code
        return {"seen": {e.event_id: e for e in events}, "fetched": fetched, "gone": gone}
    finally:
        await client.close()


@pytest.mark.parametrize("database", DATABASES)
def test_r1_r2_r4_r12_nio_sync_pagination_and_event_fetches_never_fail_after_deletions(
    start_synapse: StartSynapse, unique: Callable[..., str], database: str
) -> None:
    server = start_synapse(
        database, {"quota": {"default_bytes": "300K", "eviction_interval": "2s"}}
    )
    db = server.db()
    admin = server.register_user(unique("admin"), admin=True)
    admin.lux("PUT", f"/users/{q(admin.user_id or '')}/quota", {"quota_bytes": 1024**3})
    alice, bob, carol = (server.register_user(unique(n)) for n in ("alice", "bob", "carol"))
    dave = server.register_user(unique("dave"), displayname="Dave Dupont")
    room = alice.create_room(
        invite=[str(u.user_id) for u in (bob, carol, dave)], preset="trusted_private_chat"
    )
    for member in (bob, carol, dave):
        member.join(room)

    # R1: three old messages; the two older are purged, the newest (the room's newest
    # event then) is expunged.
    old = [alice.send_message(room, f"old {i}") for i in range(3)]
    backdate_events(db, old, LONG_AGO)
    assert sweep(admin, ["messages"], as_of=LONG_AGO + 24 * MONTH + DAY)["messages"]["deleted"] == 3
    assert stored_events(db, old) == {old[-1]}
    purged = old[:-1]

    # R2: an image past 12 months: the file goes, its event is expunged.
    picture = alice.upload_media(png(), "image/png", "holiday.png")
    image_event = alice.send_message(room, "holiday.png", "m.image", {"url": picture})
    backdate_media(db, picture, LONG_AGO)
    backdate_events(db, [image_event], LONG_AGO)
    attachments = sweep(admin, ["attachments"], as_of=LONG_AGO + 12 * MONTH + DAY)
    assert attachments["attachments"]["deleted"]

    # R4: Carol's message, then uploads that take her over the quota: the message is evicted.
    evicted = carol.send_message(room, "x" * (5 * KIB))
    for _ in range(3):
        time.sleep(0.01)
        carol.upload_media(blob(100 * KIB))
    wait_for(lambda: carol.get_event(room, evicted)["content"] == {}, 60, "eviction")

    # R12: Dave's account is deleted (erased); his message stays for those who saw it.
    erased_message = dave.send_message(room, "bonjour")
    assert dave.user_id is not None and dave.device_id is not None
    admin.synapse_admin("DELETE", f"/v2/users/{q(dave.user_id)}/devices/{q(dave.device_id)}")
    backdate_user(db, dave.user_id, now_ms() - ACCOUNT_MS - DAY)
    assert sweep(admin, ["accounts"], as_of=now_ms())["accounts"]["deleted"] == 1
    alice.send_message(room, "after everything")

    # A member who saw it all, and one who joins after.
    erin = server.register_user(unique("erin"))
    alice.invite(room, str(erin.user_id))
    erin.join(room)
    for viewer in (bob, erin):
        view = asyncio.run(client_view(server, viewer, room, purged))
        seen, fetched = view["seen"], view["fetched"]
        assert view["gone"] == dict.fromkeys(purged, "M_NOT_FOUND")
        assert not set(purged) & set(seen)
        for expunged in (old[-1], image_event, evicted):
            assert isinstance(fetched[expunged], BadEvent | UnknownBadEvent), expunged
            assert fetched[expunged].source["content"] == {}
            assert "redacted_because" not in fetched[expunged].source.get("unsigned", {})
        message = fetched[erased_message].source
        assert message["sender"] == dave.user_id
        # Synapse prunes an erased user's events for those who were not in the room.
        expected = {} if viewer is erin else {"msgtype": "m.text", "body": "bonjour"}
        assert message["content"] == expected


def _contents(view: dict[str, Any]) -> dict[str, Any]:
    return {event_id: event.source["content"] for event_id, event in view["fetched"].items()}


@pytest.mark.parametrize("database", DATABASES)
def test_r14_nio_clients_are_unaffected_by_an_export_and_see_an_erased_user_as_synapse_shows_one(
    start_synapse: StartSynapse, unique: Callable[..., str], database: str
) -> None:
    """Bob's client sees the same room before and after Frank's export (R14, art. 15).
    After Frank's erasure on request (art. 17), Bob, who saw Frank's message, still
    sees it; Erin, who joins after, gets it pruned: what Synapse shows of any erased
    user. Time: nothing depends on the clock."""
    server = start_synapse(database)
    admin = server.register_user(unique("admin"), admin=True)
    alice, bob = (server.register_user(unique(n)) for n in ("alice", "bob"))
    frank = server.register_user(unique("frank"), displayname="Frank Weber")
    assert frank.user_id is not None
    room = alice.create_room(invite=[str(bob.user_id), frank.user_id])
    bob.join(room)
    frank.join(room)
    said = frank.send_message(room, "moien")
    alice.send_message(room, "salut")
    before = asyncio.run(client_view(server, bob, room, []))

    status, body = admin.lux("POST", f"/users/{q(frank.user_id)}/exports")
    assert status == 202, body
    export = f"/users/{q(frank.user_id)}/exports/{body['export_id']}"
    wait_for(lambda: admin.lux("GET", export)[1]["status"] == "completed", 60, "the export")
    after_export = asyncio.run(client_view(server, bob, room, []))
    assert _contents(after_export) == _contents(before)

    status, body = admin.lux("POST", f"/users/{q(frank.user_id)}/erase", {"reason": "art. 17"})
    assert status == 202, body
    erasure = f"/users/{q(frank.user_id)}/erasures/{body['erasure_id']}"
    wait_for(lambda: admin.lux("GET", erasure)[1]["status"] == "completed", 60, "the erasure")
    erin = server.register_user(unique("erin"))
    alice.invite(room, str(erin.user_id))
    erin.join(room)
    for viewer in (bob, erin):
        view = asyncio.run(client_view(server, viewer, room, []))
        message = view["fetched"][said].source
        assert message["sender"] == frank.user_id
        expected = {} if viewer is erin else {"msgtype": "m.text", "body": "moien"}
        assert message["content"] == expected
    members = bob.call("GET", f"/_matrix/client/v3/rooms/{q(room)}/joined_members")["joined"]
    assert frank.user_id not in members
