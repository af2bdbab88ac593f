"""Storage quota and eviction (R4, R6, R13, R14) on a real Synapse, SQLite and PostgreSQL.

These tests own a homeserver per database (``test_quota_support``): default quota
300 KiB, eviction loop every 2 s, server notices configured. Time: uploads and
messages happen now and are ordered by their real upload/send time (a few
milliseconds apart); nothing is backdated except in the reconciliation test, which
backdates its own rows (``events.origin_server_ts``, ``local_media_repository.created_ts``,
``redactions.received_ts``) far into the past so that the content rules swept "now"
find exactly those rows due.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from tests.conftest import DATABASES
from tests.harness import MatrixClient, SynapseServer, uid, wait_for
from tests.integration.test_content_support import backdate_events, backdate_media, png
from tests.integration.test_quota_support import (
    KIB,
    QUOTA,
    blob,
    event_content,
    present,
    quota_of,
    set_quota,
    start_quota_server,
    storage,
    sweep,
    truth,
    upload_all,
    upload_refused,
)

pytestmark = pytest.mark.integration

LONG_AGO = 315_532_800_000  # 1980: past every retention limit


@pytest.fixture(scope="module", params=DATABASES, ids=DATABASES)
def hs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SynapseServer]:
    """This module's own homeserver: every user has a 300 KiB quota here."""
    database: str = request.param
    server = start_quota_server(request, tmp_path_factory.mktemp(f"quota-{database}"), database)
    yield server
    server.stop()


@pytest.fixture
def hs_admin(hs: SynapseServer) -> MatrixClient:
    admin = hs.register_user(uid("admin"), admin=True)
    set_quota(admin, str(admin.user_id), 1024**3)
    return admin


def under_quota(admin: MatrixClient, user_id: str, quota: int = QUOTA) -> bool:
    return int(quota_of(admin, user_id)["used_bytes"]) <= quota


def notices(hs: SynapseServer, client: MatrixClient, timeout: float = 30) -> list[str]:
    """The bodies of the server notices the user got, read as the user (joins the room)."""
    sent = (
        "SELECT COUNT(*) FROM events AS e JOIN local_current_membership AS m"
        " ON m.room_id = e.room_id WHERE m.user_id = ? AND e.sender LIKE '@notices:%'"
        " AND e.type = 'm.room.message'"
    )
    wait_for(lambda: hs.db().query(sent, (client.user_id,))[0][0] > 0, timeout, "a notice")
    bodies = []
    for room_id in client.sync().get("rooms", {}).get("invite", {}):
        client.join(room_id)
        bodies += [
            e["content"]["body"]
            for e in client.messages(room_id)
            if e["sender"].startswith("@notices:") and e["type"] == "m.room.message"
        ]
    return bodies


def test_r4_exactly_the_oldest_uploads_go_within_a_minute_and_the_user_is_told(
    hs: SynapseServer, hs_admin: MatrixClient
) -> None:
    """Six 50 KiB files fill the quota; a 100 KiB one takes the user 100 KiB over: exactly
    the two oldest go, within a minute, usage ends at the quota, the audit records it,
    the metrics count it and one server notice (French and English) says so."""
    user = hs.register_user(uid("u"))
    uris = upload_all(user, [50 * KIB] * 6)
    uris.append(user.upload_media(blob(100 * KIB)))

    took = wait_for(
        lambda: not all(present(user, uris[:2])), 60, "eviction of the two oldest uploads"
    )
    wait_for(lambda: under_quota(hs_admin, str(user.user_id)), 10, "usage under the quota")
    assert took < 60
    assert present(user, uris) == [False, False, True, True, True, True, True]
    assert quota_of(hs_admin, str(user.user_id)) == {"quota_bytes": QUOTA, "used_bytes": QUOTA}

    status, audit = hs_admin.lux("GET", "/audit", params={"limit": 1000})
    assert status == 200, audit
    mine = [a for a in audit if a["rule"] == "quota" and a["user_id"] == user.user_id]
    assert sum(a["count"] for a in mine) == 2
    assert sum(a["bytes"] for a in mine) == 100 * KIB

    metrics = hs.metrics_text()
    evicted = re.search(
        r'lux_privacy_quota_evicted_bytes_total\{kind="media",[^}]*\} (\S+)', metrics
    )
    assert evicted is not None and float(evicted.group(1)) >= 100 * KIB
    assert "lux_privacy_quota_users_over_quota{" in metrics

    (body,) = notices(hs, user)
    assert "Votre espace de stockage" in body and "Your storage" in body
    assert "2 message(s) et fichier(s) attaché(s), soit 100 Ko" in body
    assert "2 message(s) and attachment(s), 100 KB in total" in body
    assert "(300 KB)" in body


def test_r4_media_and_messages_go_together_oldest_first(
    hs: SynapseServer, hs_admin: MatrixClient
) -> None:
    """Messages and uploads interleaved; the last upload takes the user just over: the
    oldest message loses its content and the oldest upload goes (the message alone frees
    too little); the next message keeps its content, the newer uploads stay."""
    user = hs.register_user(uid("u"))
    room = user.create_room()
    text = "x" * (5 * KIB)
    first = user.send_message(room, text)
    time.sleep(0.01)
    (upload_b,) = upload_all(user, [100 * KIB])
    second = user.send_message(room, text)
    time.sleep(0.01)
    uploads = upload_all(user, [100 * KIB, 100 * KIB])

    wait_for(lambda: not present(user, [upload_b])[0], 60, "eviction of the oldest upload")
    wait_for(lambda: under_quota(hs_admin, str(user.user_id)), 10, "usage under the quota")
    assert event_content(user, room, first) == {}
    assert event_content(user, room, second)["body"] == text
    assert present(user, [upload_b, *uploads]) == [False, True, True]
    media_bytes, event_bytes = truth(hs.db(), str(user.user_id))
    assert media_bytes == 200 * KIB
    assert quota_of(hs_admin, str(user.user_id))["used_bytes"] == media_bytes + event_bytes


def test_r4_an_override_raises_or_lowers_the_limit(
    hs: SynapseServer, hs_admin: MatrixClient
) -> None:
    """A 600 KiB override keeps five 100 KiB files; lowering it to 250 KiB evicts the three
    oldest; null goes back to the 300 KiB default."""
    user = hs.register_user(uid("u"))
    user_id = str(user.user_id)
    assert set_quota(hs_admin, user_id, 600 * KIB) == {"quota_bytes": 600 * KIB, "used_bytes": 0}
    uris = upload_all(user, [100 * KIB] * 5)
    result = sweep(hs_admin, ["quota"])["quota"]
    assert result["errors"] == 0
    assert present(user, uris) == [True] * 5
    assert set_quota(hs_admin, user_id, 250 * KIB)["quota_bytes"] == 250 * KIB

    wait_for(lambda: under_quota(hs_admin, user_id, 250 * KIB), 60, "usage under 250 KiB")
    assert present(user, uris) == [False, False, False, True, True]
    assert set_quota(hs_admin, user_id, None) == {"quota_bytes": QUOTA, "used_bytes": 200 * KIB}


def test_r4_an_upload_larger_than_the_whole_quota_is_refused_at_once(
    hs: SynapseServer, hs_admin: MatrixClient
) -> None:
    """The media config says 300 KiB (or the override); one byte more is refused with
    M_TOO_LARGE and a clear message; exactly the quota is accepted."""
    user = hs.register_user(uid("u"))
    config = user.call("GET", "/_matrix/client/v1/media/config")
    assert config == {"m.upload.size": QUOTA}
    error = upload_refused(user, QUOTA + 1)
    assert (error.status, error.errcode) == (413, "M_TOO_LARGE")
    assert "larger than your whole storage quota (300 KB)" in str(error.error)
    user.upload_media(blob(QUOTA))

    set_quota(hs_admin, str(user.user_id), 400 * KIB)
    assert user.call("GET", "/_matrix/client/v1/media/config") == {"m.upload.size": 400 * KIB}
    user.upload_media(blob(QUOTA + 1))


def test_r13_a_held_user_is_never_evicted(hs: SynapseServer, hs_admin: MatrixClient) -> None:
    """A held user 100 KiB over quota keeps everything (the sweep counts the candidate as
    held); once the hold is released the oldest file goes."""
    user = hs.register_user(uid("u"))
    hold_id = uid("hold")
    status, body = hs_admin.lux(
        "PUT", f"/holds/{hold_id}", {"user_id": user.user_id, "reason": "case"}
    )
    assert status == 201, body
    uris = upload_all(user, [100 * KIB] * 4)

    forecast = sweep(hs_admin, ["quota"], dry_run=True)["quota"]
    result = sweep(hs_admin, ["quota"])["quota"]
    assert forecast["held"] >= 1 and result["held"] >= 1
    time.sleep(3)  # a pass of the eviction loop
    assert present(user, uris) == [True] * 4
    assert quota_of(hs_admin, str(user.user_id))["used_bytes"] == 400 * KIB

    status, body = hs_admin.lux("DELETE", f"/holds/{hold_id}")
    assert status == 200, body
    wait_for(lambda: under_quota(hs_admin, str(user.user_id)), 60, "eviction after the release")
    assert present(user, uris) == [False, True, True, True]


def test_r13_a_file_a_held_room_refers_to_is_never_evicted(
    hs: SynapseServer, hs_admin: MatrixClient
) -> None:
    """A user 100 KiB over quota whose oldest file is shown in a held room only through an
    ``<img>`` in a formatted message: eviction passes over that file and frees the next
    ones instead."""
    user = hs.register_user(uid("u"))
    room = hs_admin.create_room(invite=[str(user.user_id)])
    user.join(room)
    hold_id = uid("hold")
    status, body = hs_admin.lux("PUT", f"/holds/{hold_id}", {"room_id": room, "reason": "case"})
    assert status == 201, body
    try:
        shown = upload_all(user, [100 * KIB])
        html = f'<img src="{shown[0]}">'
        user.send_message(
            room, "i", extra={"format": "org.matrix.custom.html", "formatted_body": html}
        )
        others = upload_all(user, [100 * KIB] * 3)
        wait_for(lambda: not all(present(user, others)), 60, "eviction of a later file")
        assert present(user, shown) == [True]
        wait_for(lambda: under_quota(hs_admin, str(user.user_id)), 60, "usage under the quota")
    finally:
        hs_admin.lux("DELETE", f"/holds/{hold_id}")


def test_r4_counters_match_reconciliation_after_uploads_messages_redactions_purges_and_deletion(
    hs: SynapseServer, hs_admin: MatrixClient
) -> None:
    """Uploads (an image with thumbnails), messages, a redaction censored by R5, an event
    purged by R1, an upload deleted by R2 (those three backdated to 1980), and an account
    deactivated with its avatar deleted (R7): the counters equal usage recomputed from
    Synapse's tables, and reconciliation finds nothing to correct for these users."""
    db = hs.db()
    alice, bob = hs.register_user(uid("alice")), hs.register_user(uid("bob"))
    for client in (alice, bob):
        set_quota(hs_admin, str(client.user_id), 100 * 1024**2)
    room = alice.create_room(invite=[str(bob.user_id)])
    bob.join(room)
    alice.upload_media(png(256), "image/png")  # with thumbnails
    old_file = alice.upload_media(blob(20 * KIB))
    kept = alice.send_message(room, "kept " + "k" * 2000)
    redacted = alice.send_message(room, "redacted " + "r" * 3000)
    purged = alice.send_message(room, "purged " + "p" * 1000)
    reaction = {"m.relates_to": {"rel_type": "m.annotation", "event_id": kept, "key": "+"}}
    alice.send_event(room, "m.reaction", reaction)
    redaction = alice.redact(room, redacted)
    avatar = bob.upload_media(png(64), "image/png")
    bob.set_avatar_url(avatar)
    bob.send_message(room, "bob " + "b" * 1500)
    bob.upload_media(blob(10 * KIB))
    alice.send_message(room, "newest")

    backdate_events(db, [purged], LONG_AGO)
    backdate_media(db, old_file, LONG_AGO)
    db.execute("UPDATE redactions SET received_ts = ? WHERE event_id = ?", (LONG_AGO, redaction))
    done = sweep(hs_admin, ["messages", "attachments", "redacted_content"])
    assert done["attachments"]["deleted"] >= 1 and done["redacted_content"]["deleted"] >= 1
    assert done["messages"]["deleted"] >= 1
    hs_admin.synapse_admin("POST", f"/v1/deactivate/{bob.user_id}", {"erase": True})
    wait_for(lambda: not present(alice, [avatar])[0], 10, "the avatar deleted (R7)")

    def counters_right() -> bool:
        sweep(hs_admin, ["quota"])
        return all(
            int(quota_of(hs_admin, str(c.user_id))["used_bytes"]) == sum(truth(db, str(c.user_id)))
            for c in (alice, bob)
        )

    wait_for(counters_right, 20, "counters equal to Synapse's tables")
    before = {str(c.user_id): storage(hs_admin, str(c.user_id)) for c in (alice, bob)}
    status, report = hs_admin.lux("POST", "/quota/reconcile", {})
    assert status == 200, report
    assert report["users_checked"] >= 2
    corrected = {c["user_id"] for c in report["corrections"]}
    assert not corrected & set(before), report
    for user_id, fields in before.items():
        media_bytes, event_bytes = truth(db, user_id)
        assert (fields["media_bytes"], fields["event_bytes"]) == (media_bytes, event_bytes)
        assert storage(hs_admin, user_id) == fields
    assert before[str(alice.user_id)]["media_bytes"] > 0
