"""Tests proving the integration harness itself works, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image

from tests.harness import MatrixClient, MatrixError, SynapseServer

pytestmark = pytest.mark.integration


def _wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def _png(width: int = 64, height: int = 48) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 90)).save(buf, format="PNG")
    return buf.getvalue()


def test_boot_register_and_whoami(synapse: SynapseServer, admin: MatrixClient) -> None:
    assert synapse.running and synapse.pid
    assert admin.whoami()["user_id"] == admin.user_id
    assert admin.user_id is not None and admin.user_id.endswith(":lux.test")
    info = admin.synapse_admin("GET", f"/v2/users/{admin.user_id}")
    assert info["admin"] is True
    assert "synapse_" in synapse.metrics_text()
    assert "Synapse now listening" in synapse.log_text()
    assert synapse.config["modules"][0]["module"] == "synapse_lux_privacy.LuxPrivacyModule"


def test_room_messages_and_media(
    synapse: SynapseServer, user: MatrixClient, unique: Callable[..., str]
) -> None:
    other = synapse.register_user(unique("bob"), displayname="Bob")
    room_id = user.create_room(name=unique("room"), encrypted=True, invite=[other.user_id or ""])
    assert other.join(room_id) == room_id
    text_id = user.send_message(room_id, "hello " + unique("w"))
    enc_id = other.send_encrypted(room_id)
    state_id = user.send_state(room_id, "m.room.topic", {"topic": "t"})
    assert user.get_event(room_id, enc_id)["type"] == "m.room.encrypted"
    redaction_id = user.redact(room_id, text_id, reason="test")
    ids = [e["event_id"] for e in other.messages(room_id)]
    assert {text_id, enc_id, state_id, redaction_id} <= set(ids)
    assert user.get_event(room_id, text_id)["content"] == {}
    assert user.context(room_id, enc_id)["event"]["event_id"] == enc_id

    png = _png()
    mxc = user.upload_media(png, "image/png", filename="a.png")
    assert mxc.startswith("mxc://lux.test/")
    download = other.download_media(mxc)
    assert download.status_code == 200 and download.content == png
    thumb = other.thumbnail(mxc, 32, 32)
    assert thumb.status_code == 200 and thumb.headers["Content-Type"].startswith("image/")
    anonymous = synapse.client()
    assert anonymous.download_media(mxc).status_code == 401


def test_login_on_named_device(synapse: SynapseServer, unique: Callable[..., str]) -> None:
    localpart = unique("dev")
    first = synapse.register_user(localpart)
    phone = synapse.login(localpart, "pw-" + localpart, device_id="LUXPHONE")
    laptop = synapse.login(
        first.user_id or "", "pw-" + localpart, initial_device_display_name="Laptop"
    )
    assert phone.device_id == "LUXPHONE" and phone.user_id == first.user_id
    devices = {d["device_id"]: d for d in first.devices()}
    assert {first.device_id, "LUXPHONE", laptop.device_id} <= set(devices)
    assert devices[laptop.device_id or ""]["display_name"] == "Laptop"
    phone.logout()
    with pytest.raises(MatrixError) as err:
        phone.whoami()
    assert err.value.status == 401 and err.value.errcode == "M_UNKNOWN_TOKEN"


def test_directory_search_profile_sync_and_search(
    synapse: SynapseServer, user: MatrixClient, admin: MatrixClient, unique: Callable[..., str]
) -> None:
    name = unique("zed")
    target = synapse.register_user(unique("dir"), displayname=f"Dir {name}")
    # R10: only consenting users are listed.
    status, _ = admin.lux("PUT", f"/users/{target.user_id}/directory_consent", {"consent": True})
    assert status == 200
    found = _wait_for(lambda: target.user_id in user.directory_search(name))
    assert found, f"{target.user_id} not in the user directory"

    avatar = target.upload_media(_png(), "image/png")
    target.set_displayname(f"Renamed {name}")
    target.set_avatar_url(avatar)
    profile = user.get_profile(target.user_id or "")
    assert profile == {"displayname": f"Renamed {name}", "avatar_url": avatar}

    room_id = user.create_room(invite=[target.user_id or ""], is_direct=True)
    word = unique("needle")
    event_id = user.send_message(room_id, f"a {word} in a haystack")
    assert [e["event_id"] for e in user.search(word)] == [event_id]
    sync = target.sync()
    assert room_id in sync["rooms"]["invite"]
    target.join(room_id)
    assert room_id in target.sync(since=sync["next_batch"])["rooms"]["join"]
    target.leave(room_id)

    status, body = user.lux("GET", "/holds")
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")

    target.deactivate(target.password or "", erase=True)
    with pytest.raises(MatrixError):
        target.whoami()


def test_database_query_and_backdating(synapse: SynapseServer, user: MatrixClient) -> None:
    db = synapse.db()
    assert {"events", "users", "local_media_repository"} <= db.tables()
    room_id = user.create_room()
    event_id = user.send_message(room_id, "100% old")
    row = db.query_one(
        "SELECT origin_server_ts, sender FROM events WHERE event_id = ?", (event_id,)
    )
    assert row is not None and row[1] == user.user_id
    old_ts = row[0] - 400 * 24 * 3600 * 1000
    assert (
        db.execute("UPDATE events SET origin_server_ts = ? WHERE event_id = ?", (old_ts, event_id))
        == 1
    )
    assert db.query_one("SELECT origin_server_ts FROM events WHERE event_id = ?", (event_id,)) == (
        old_ts,
    )
    like = db.query("SELECT name FROM users WHERE name LIKE '%' || ? || '%'", (user.user_id,))
    assert like == [(user.user_id,)]
    assert db.query_one("SELECT 1 WHERE 1 = 0") is None


def test_server_without_module_survives_kill_and_restart(start_synapse: Any) -> None:
    server: SynapseServer = start_synapse(
        "sqlite", module_config=None, extra_config={"user_directory": {"enabled": False}}
    )
    assert "modules" not in server.config
    assert server.config["user_directory"] == {"enabled": False, "search_all_users": True}
    alice = server.register_user("alice")
    room_id = alice.create_room()
    event_id = alice.send_message(room_id, "survives")
    server.kill()
    assert not server.running
    server.start()
    again = server.login("alice", "pw-alice")
    assert again.get_event(room_id, event_id)["content"]["body"] == "survives"
    server.restart()
    assert server.login("@alice:lux.test", "pw-alice").whoami()["user_id"] == "@alice:lux.test"
