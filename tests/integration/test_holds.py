"""Legal holds that hold (R13) and a report that agrees with them (R14), SQLite and PostgreSQL.

These tests own their homeserver (one per database): the sweeps here really delete.
Time: uploads and events are backdated in the database
(``local_media_repository.created_ts``, ``events.origin_server_ts``/``received_ts``)
to a year and more before now; sweeps run "as of" now.
"""

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import DATABASES
from tests.harness import MatrixClient, SynapseServer, uid
from tests.harness.client import parse_mxc, q
from tests.integration.test_content_support import (
    DAY,
    MONTH,
    backdate_events,
    backdate_media,
    local_media_rows,
    own_content_server,
    png,
    provider_dir,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=DATABASES, ids=DATABASES)
def hs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SynapseServer]:
    """This module's own homeserver (destructive sweeps never touch the shared one)."""
    yield from own_content_server(request, tmp_path_factory, "holds")


@pytest.fixture
def hs_admin(hs: SynapseServer) -> MatrixClient:
    return hs.register_user(uid("admin"), admin=True)


def hold(admin: MatrixClient, **target: str) -> str:
    hold_id = uid("hold")
    code, body = admin.lux("PUT", f"/holds/{hold_id}", {**target, "reason": "a case"})
    assert code == 201, body
    return hold_id


def html_image(mxc: str) -> dict[str, Any]:
    """An m.text whose only reference to the file is an <img> in its formatted body."""
    return {
        "msgtype": "m.text",
        "body": "i",
        "format": "org.matrix.custom.html",
        "formatted_body": f'<p>look <img src="{mxc}" alt="i"></p>',
    }


def test_r13_a_held_room_keeps_every_file_its_events_refer_to(
    hs: SynapseServer, hs_admin: MatrixClient
) -> None:
    """Uploads backdated by 13 months, attachments swept as of now. In the held room the
    files are referred to only by an <img> in a formatted body, a member event's former
    per-room avatar and a custom nested field: all stay, with their rows, and download.
    The same references in a room without a hold do not keep their files."""
    db = hs.db()
    alice, bob = hs.register_user(uid("alice")), hs.register_user(uid("bob"))
    held_room = alice.create_room(invite=[str(bob.user_id)])
    free_room = alice.create_room(invite=[str(bob.user_id)])
    bob.join(held_room)
    bob.join(free_room)
    kept: list[str] = []
    gone: list[str] = []
    for room, files in ((held_room, kept), (free_room, gone)):
        inline, face, custom = (bob.upload_media(png(), "image/png") for _ in range(3))
        bob.send_message(room, "i", extra=html_image(inline))
        member = {"membership": "join", "avatar_url": face}
        bob.send_state(room, "m.room.member", member, str(bob.user_id))
        bob.send_state(room, "m.room.member", {"membership": "join"}, str(bob.user_id))
        bob.send_event(room, "org.example.evidence", {"x": [{"y": {"file": f"see {custom}."}}]})
        files += [inline, face, custom]
    old = int(time.time() * 1000) - 13 * MONTH
    for mxc in kept + gone:
        backdate_media(db, mxc, old)
    hold_id = hold(hs_admin, room_id=held_room)
    try:
        code, report = hs_admin.lux("POST", "/sweep", {"rules": ["attachments"]})
        assert code == 200, report
        assert report["results"]["attachments"]["held"] == 3
        for mxc in kept:
            assert local_media_rows(db, mxc)[0] == 1, mxc
            assert alice.download_media(mxc).status_code == 200, mxc
        for mxc in gone:
            assert local_media_rows(db, mxc)[0] == 0, mxc
    finally:
        hs_admin.lux("DELETE", f"/holds/{hold_id}")


def _entities(text: str) -> str:
    return "".join(f"&#x{ord(c):x};" for c in text)


def _escaped(text: str) -> str:
    return "".join(f"%{ord(c):02X}" for c in text)


def encoded_references(mxc: str) -> list[dict[str, Any]]:
    """Contents referring to the file ``mxc`` in an encoded form, one form each: HTML
    entities (decimal, hex, named), percent escapes in the media ID, the scheme in upper
    or mixed case, in a formatted body or a custom field (R13)."""
    server, media_id = parse_mxc(mxc)
    return [
        html_image(f"&#109;xc://{server}/{media_id}"),
        html_image(f"mxc://{server}/{media_id[:3]}{_entities(media_id[3:])}"),
        html_image(f"mxc&colon;&sol;&sol;{server}/{media_id}"),
        html_image(f"mxc://{server}/%{ord(media_id[0]):02X}{media_id[1:]}"),
        html_image(f"MXC://{server}/{media_id}"),
        {"org.example.evidence": {"file": f"mxc://{server}/{_escaped(media_id)}"}},
        {"org.example.evidence": [f"see MxC://{server}/{media_id[:2]}%"
                                  f"{ord(media_id[2]):02x}{media_id[3:]}."]},
        {"org.example.evidence": f"&#x4D;XC://{server}/{_escaped(media_id[:4])}{media_id[4:]}"},
    ]  # fmt: skip


def set_room_account_data(client: MatrixClient, room_id: str, kind: str, content: Any) -> None:
    path = f"/user/{q(str(client.user_id))}/rooms/{q(room_id)}/account_data/{kind}"
    client.call("PUT", "/_matrix/client/v3" + path, json=content)


def test_r13_r14_a_held_room_keeps_files_referred_to_in_every_encoded_form(
    hs: SynapseServer, hs_admin: MatrixClient
) -> None:
    """Uploads backdated by 13 months, attachments swept as of now. In the held room each
    file is referred to only in one encoded form (``encoded_references``) of an event, or
    by a room account data of a member (plain, or entity- and percent-encoded). The
    report counts every one of them held, and the sweep deletes none of them; the same
    references in a room without a hold do not keep their files (issue 25, point 2)."""
    db = hs.db()
    bob = hs.register_user(uid("bob"))
    held_room, free_room = bob.create_room(), bob.create_room()
    kept: list[str] = []
    gone: list[str] = []
    for room, files in ((held_room, kept), (free_room, gone)):
        forms = len(encoded_references("mxc://s/abcdef"))
        for n in range(forms):  # a file of its own for each form
            mxc = bob.upload_media(png(), "image/png")
            content = {"msgtype": "m.text", "body": "i", **encoded_references(mxc)[n]}
            bob.send_event(room, "m.room.message", content)
            files.append(mxc)
        plain, encoded = (bob.upload_media(png(), "image/png") for _ in range(2))
        set_room_account_data(bob, room, "org.example.attached", {"file": plain})
        server, media_id = parse_mxc(encoded)
        note = f'<img src="{_entities("mxc")}://{server}/%{ord(media_id[0]):02x}{media_id[1:]}">'
        set_room_account_data(bob, room, "org.example.note", {"html": note})
        files += [plain, encoded]
    old = int(time.time() * 1000) - 13 * MONTH
    for mxc in kept + gone:
        backdate_media(db, mxc, old)
    hold_id = hold(hs_admin, room_id=held_room)
    try:
        _, report = hs_admin.lux("GET", f"/users/{q(str(bob.user_id))}")
        assert report["media"]["held_count"] == len(kept), report["media"]
        code, result = hs_admin.lux("POST", "/sweep", {"rules": ["attachments"]})
        assert code == 200, result
        assert result["results"]["attachments"]["held"] >= len(kept)
        for mxc in kept:
            assert local_media_rows(db, mxc)[0] == 1, mxc
            assert bob.download_media(mxc).status_code == 200, mxc
        for mxc in gone:
            assert local_media_rows(db, mxc)[0] == 0, mxc
    finally:
        hs_admin.lux("DELETE", f"/holds/{hold_id}")


def test_r14_the_report_gives_held_items_no_deletion_date(
    hs: SynapseServer, hs_admin: MatrixClient
) -> None:
    """Events and uploads backdated a few days before now. Alice's items in a held room
    (a message, a file shown there, the room's avatar) are older than those elsewhere:
    the report's next deletion is that of the unheld ones, and counts the held ones.
    Bob, who wrote only in the held room, has nothing due at all."""
    db = hs.db()
    alice, bob = hs.register_user(uid("alice")), hs.register_user(uid("bob"))
    held_room = alice.create_room(invite=[str(bob.user_id)])
    free_room = alice.create_room()
    bob.join(held_room)
    held_file, free_file, room_avatar = (alice.upload_media(png(), "image/png") for _ in range(3))
    held_events = [alice.send_message(held_room, "held", extra=html_image(held_file))]
    free_events = [alice.send_message(free_room, "free", extra=html_image(free_file))]
    alice.send_state(held_room, "m.room.avatar", {"url": room_avatar})
    bobs = [bob.send_message(held_room, "bob's")]
    base = int(time.time() * 1000) - 10 * DAY
    backdate_events(db, held_events + bobs, base - DAY)
    backdate_events(db, free_events, base)
    backdate_media(db, held_file, base - DAY)
    backdate_media(db, room_avatar, base - DAY)
    backdate_media(db, free_file, base)
    hold_ids = [hold(hs_admin, room_id=held_room)]
    try:
        _, report = hs_admin.lux("GET", f"/users/{alice.user_id}")
        assert report["messages"] == {
            "count": 2,
            "oldest_ts": base - DAY,
            "next_deletion_ts": base + 24 * MONTH,
            "held_count": 1,
        }
        assert report["media"] == {
            "count": 3,
            "oldest_ts": base - DAY,
            "next_deletion_ts": base + 12 * MONTH,
            "held_count": 2,
            "provider_copies": {f"file:{provider_dir(hs)}": 3},
        }
        assert (report["account_deletion_due_ts"], report["account_held"]) == (None, True)
        _, report = hs_admin.lux("GET", f"/users/{bob.user_id}")
        assert report["messages"]["next_deletion_ts"] is None
        assert report["messages"]["held_count"] == report["messages"]["count"] == 1

        hold_ids.append(hold(hs_admin, user_id=str(alice.user_id)))
        _, report = hs_admin.lux("GET", f"/users/{alice.user_id}")
        for kind, count in (("messages", 2), ("media", 3)):
            assert report[kind]["next_deletion_ts"] is None
            assert report[kind]["held_count"] == report[kind]["count"] == count
    finally:
        for hold_id in hold_ids:
            hs_admin.lux("DELETE", f"/holds/{hold_id}")
    _, report = hs_admin.lux("GET", f"/users/{alice.user_id}")
    assert report["messages"]["next_deletion_ts"] == base - DAY + 24 * MONTH
    assert report["media"]["held_count"] == 0
    assert report["account_held"] is False
