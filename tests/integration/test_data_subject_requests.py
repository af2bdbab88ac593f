"""Data-subject requests (R14: GDPR articles 15 and 17) on SQLite and PostgreSQL.

A real Synapse with the module and the real synapse-s3-storage-provider on moto's S3
server. Alice has messages in a room in clear and in an encrypted room, an edited
and a redacted message, a file in the local store and one only in the bucket (its
local copy removed, as a provider's local-cache cleanup does), and devices with IPs.
Time: nothing depends on the clock (exports and erasures act now; the archive's
expiry is checked as the record's ``expires_ts``, never waited for).
"""

import io
import json
import os
import zipfile
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from synapse_lux_privacy.features.rights.exporter import EVENTS_PER_PAGE
from synapse_lux_privacy.proof import verify
from tests.conftest import StartSynapse
from tests.harness import MatrixClient
from tests.harness.client import parse_mxc, q
from tests.harness.s3 import S3Server
from tests.harness.waiting import wait_for
from tests.integration.test_accounts_rules import media_path

pytestmark = pytest.mark.integration

BUCKET = "lux-rights"
PREFIX = "media/"
DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    server = S3Server()
    server.start()
    server.create_bucket(BUCKET)
    yield server
    server.stop()


def _s3_keys(s3: S3Server, media_id: str) -> set[str]:
    tail = f"/{media_id[0:2]}/{media_id[2:4]}/{media_id[4:]}"
    return {k for k in s3.keys(BUCKET, PREFIX) if tail in k}


def _export(admin: MatrixClient, user_id: str) -> tuple[dict[str, Any], bytes]:
    """Ask for an export, wait for it, download the archive: (status, archive bytes)."""
    status, body = admin.lux("POST", f"/users/{q(user_id)}/exports")
    assert status == 202, body
    path = f"/users/{q(user_id)}/exports/{body['export_id']}"
    found: dict[str, Any] = {}

    def done() -> bool:
        code, record = admin.lux("GET", path)
        assert code == 200, record
        found.update(record)
        return record["status"] in ("completed", "failed")

    wait_for(done, 120, "the export")
    assert found["status"] == "completed", found
    resp = admin.request("GET", "/_synapse/client/lux_privacy/v1" + path + "/archive", expect=200)
    assert resp.headers["Content-Type"] == "application/zip"
    return found, resp.content


def _texts(archive: zipfile.ZipFile) -> dict[str, str]:
    return {
        n: archive.read(n).decode("utf-8", errors="replace")
        for n in archive.namelist()
        if not n.startswith("media/")
    }


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_r14_export_holds_every_category_and_erasure_runs_the_r12_chain(
    start_synapse: StartSynapse, s3: S3Server, database: str
) -> None:
    """The archive holds every category, each message of a room that takes more than
    two pages of the exporter's reads once and oldest first, the media bytes as uploaded
    (local store and bucket), no message of another user; a held user's archive says nothing of the
    hold and their erasure is 409 M_LUX_HELD; alice's erasure leaves her deactivated
    and erased, parted, her files gone from every store, her directory entry gone, an
    audited record with the reason, and a certificate signed with the server's published
    key whose chain head covers the erasure's audit row (issue #24)."""
    server = start_synapse(database, {}, s3.provider_config(BUCKET, PREFIX))
    db = server.db()
    admin = server.register_user("boss", admin=True)
    alice = server.register_user("alice", displayname="Alice Martin")
    bob = server.register_user("bob")
    assert alice.user_id and bob.user_id
    second = server.login("alice", "pw-alice")  # a second session, with its own IP row

    clear = alice.create_room(name="Clear", invite=[bob.user_id])
    secret = alice.create_room(name="Secret", encrypted=True, invite=[bob.user_id])
    bob.join(clear)
    bob.join(secret)
    hello = alice.send_message(clear, "bonjour tout le monde")
    edit = alice.send_message(
        clear,
        "* bonjour à tous",
        extra={
            "m.new_content": {"msgtype": "m.text", "body": "bonjour à tous"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": hello},
        },
    )
    oops = alice.send_message(clear, "message regretté")
    redaction = alice.redact(clear, oops)
    bob.send_message(clear, "bob's own words")
    cipher = second.send_encrypted(secret, "QUxJQ0VTLUNJUEhFUlRFWFQ")
    # More than two pages of the exporter's reads, with bob's words among them.
    long_room = alice.create_room(name="Long", invite=[bob.user_id])
    bob.join(long_room)
    long_sent = []
    for n in range(2 * EVENTS_PER_PAGE + 7):
        long_sent.append(alice.send_message(long_room, f"page test {n}"))
        if n % 20 == 0:
            bob.send_message(long_room, f"bob interrupts {n}")

    local_bytes = os.urandom(300_000)
    in_bucket_bytes = os.urandom(200_000)
    local_mxc = alice.upload_media(local_bytes, "application/pdf", "contrat.pdf")
    bucket_mxc = alice.upload_media(in_bucket_bytes, "application/octet-stream", "notes.bin")
    local_id, bucket_id = parse_mxc(local_mxc)[1], parse_mxc(bucket_mxc)[1]
    wait_for(lambda: bool(_s3_keys(s3, bucket_id)), 20, "the upload in the bucket")
    media_path(server, bucket_mxc).unlink()  # now only the bucket has it
    wait_for(
        lambda: db.number("SELECT COUNT(*) FROM user_ips WHERE user_id = ?", (alice.user_id,)) > 0,
        30,
        "Synapse's IP log of alice",
    )

    # -- Article 15: the export ------------------------------------------------------
    record, raw = _export(admin, alice.user_id)
    assert record["bytes"] == len(raw) and record["files"] > 0
    assert record["expires_ts"] - record["finished_ts"] == 7 * DAY_MS  # exports.retention
    archive = zipfile.ZipFile(io.BytesIO(raw))
    names = set(archive.namelist())
    clear_file = f"messages/{quote(clear, safe='')}.jsonl"
    secret_file = f"messages/{quote(secret, safe='')}.jsonl"
    for name in (
        "README.txt",
        "report.json",
        "profile.json",
        "account.json",
        "sessions.json",
        "rooms.json",
        "media.json",
        clear_file,
        secret_file,
    ):
        assert name in names, (name, sorted(names))
    texts = _texts(archive)
    assert "bob's own words" not in "".join(texts.values())
    readme = texts["README.txt"]
    assert "RGPD" in readme and "GDPR" in readme and "24M" in readme

    assert json.loads(texts["profile.json"])["displayname"] == "Alice Martin"
    account = json.loads(texts["account.json"])
    assert account["user_id"] == alice.user_id and "threepids" in account
    sessions = json.loads(texts["sessions.json"])
    assert {d["device_id"] for d in sessions["devices"]} >= {alice.device_id, second.device_id}
    assert sessions["ips"] and all(r["ip"] and r["user_agent"] for r in sessions["ips"])
    rooms = {r["room_id"]: r for r in json.loads(texts["rooms.json"])}
    assert rooms[secret]["encryption"] == "m.megolm.v1.aes-sha2" and rooms[secret]["note"]
    assert rooms[clear]["encryption"] is None

    events = {e["event_id"]: e for e in map(json.loads, texts[clear_file].splitlines())}
    assert set(events) == {hello, edit, oops, redaction}  # hers only, never bob's
    assert events[hello]["content"]["body"] == "bonjour tout le monde"
    assert events[edit]["content"]["m.relates_to"]["rel_type"] == "m.replace"
    assert events[oops]["content"] == {}  # redacted: pruned as clients receive it
    assert all(e["sender"] == alice.user_id for e in events.values())
    long_events = [
        json.loads(line)
        for line in texts[f"messages/{quote(long_room, safe='')}.jsonl"].splitlines()
    ]
    long_ids = [e["event_id"] for e in long_events]
    assert len(long_ids) == len(set(long_ids)) and set(long_ids) == set(long_sent)  # each once
    stamps = [e["origin_server_ts"] for e in long_events]
    assert stamps == sorted(stamps)  # oldest first, across the pages
    (encrypted,) = map(json.loads, texts[secret_file].splitlines())
    assert encrypted["event_id"] == cipher and encrypted["type"] == "m.room.encrypted"
    assert encrypted["content"]["ciphertext"] == "QUxJQ0VTLUNJUEhFUlRFWFQ"

    listed = {parse_mxc(m["mxc"])[1]: m for m in json.loads(texts["media.json"])}
    assert archive.read(listed[local_id]["file"]) == local_bytes
    assert archive.read(listed[bucket_id]["file"]) == in_bucket_bytes
    assert listed[local_id]["read_from"] == "local"
    assert listed[bucket_id]["read_from"] == f"s3:{BUCKET}/{PREFIX}"
    status, audit = admin.lux("GET", "/audit", params={"since": 0, "limit": 100})
    assert status == 200, audit
    exported = [a for a in audit if a["rule"] == "export" and a["user_id"] == alice.user_id]
    assert exported and exported[0]["bytes"] == len(raw)

    # -- R13: a held user's export reveals no hold; their erasure is refused ------------
    status, _ = admin.lux("PUT", "/holds/case-77", {"user_id": bob.user_id, "reason": "enquête"})
    assert status == 201
    _, bob_raw = _export(admin, bob.user_id)
    bob_text = "".join(_texts(zipfile.ZipFile(io.BytesIO(bob_raw))).values()).lower()
    for word in ("hold", "held", "case-77", "enquête", "legal"):
        assert word not in bob_text, word
    status, body = admin.lux("POST", f"/users/{q(bob.user_id)}/erase", {"reason": "art. 17"})
    assert (status, body["errcode"]) == (409, "M_LUX_HELD")

    # -- Article 17: erasure on request ------------------------------------------------
    status, body = admin.lux(
        "POST", f"/users/{q(alice.user_id)}/erase", {"reason": "demande art. 17 du 2026-12-06"}
    )
    assert status == 202, body
    path = f"/users/{q(alice.user_id)}/erasures/{body['erasure_id']}"
    erasure: dict[str, Any] = {}

    def erased() -> bool:
        erasure.update(admin.lux("GET", path)[1])
        return erasure["status"] in ("completed", "failed")

    wait_for(erased, 120, "the erasure")
    assert erasure["status"] == "completed", erasure
    assert erasure["reason"] == "demande art. 17 du 2026-12-06"
    assert erasure["requested_by"] == admin.user_id
    assert erasure["media_deleted"] == 2
    user = admin.synapse_admin("GET", f"/v2/users/{q(alice.user_id)}")
    assert user["deactivated"] is True and user["erased"] is True
    members = bob.call("GET", f"/_matrix/client/v3/rooms/{q(clear)}/joined_members")
    assert alice.user_id not in members["joined"]
    for media_id in (local_id, bucket_id):
        assert (
            db.number("SELECT COUNT(*) FROM local_media_repository WHERE media_id = ?", (media_id,))
            == 0
        )
        assert _s3_keys(s3, media_id) == set()
    assert not media_path(server, local_mxc).exists()
    assert db.number("SELECT COUNT(*) FROM user_directory WHERE user_id = ?", (alice.user_id,)) == 0
    assert (
        db.number(
            "SELECT COUNT(*) FROM lux_privacy_account_deletions WHERE user_id = ?",
            (alice.user_id,),
        )
        == 0
    )
    status, audit = admin.lux("GET", "/audit", params={"since": 0, "limit": 100})
    rows = [a for a in audit if a["rule"] == "erasure" and a["user_id"] == alice.user_id]
    assert len(rows) == 1 and rows[0]["status"] == "done"
    assert rows[0]["sweep_id"] == body["erasure_id"]
    assert rows[0]["bytes"] == len(local_bytes) + len(in_bucket_bytes)

    # -- the erasure's signed certificate (issue #24) ------------------------------------
    status, signed = admin.lux("GET", f"{path}/certificate")
    assert status == 200, signed
    assert signed["kind"] == "erasure" and signed["subject_id"] == body["erasure_id"]
    assert signed["user_id"] == alice.user_id and signed["media"]["deleted"] == 2
    assert "reason" not in signed
    keys = MatrixClient(server.base_url).request("GET", "/_matrix/key/v2/server").json()
    assert verify.check_signature(signed, keys).server_name == server.server_name
    assert signed["audit_chain"]["seq"] >= rows[0]["seq"]
    status, export = admin.lux("GET", "/audit", params={"since": 0, "limit": 100})
    assert verify.check_export(signed, export).rows >= 1
    tampered = json.loads(json.dumps(signed))
    tampered["media"]["deleted"] = 3
    with pytest.raises(verify.VerificationFailed):
        verify.check_signature(tampered, keys)


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_r14_request_errors_are_matrix_errors(start_synapse: StartSynapse, database: str) -> None:
    """Bad input gives Matrix errors, never a 500: unknown user, remote user, a body on
    an export, a missing reason, an unknown or another user's export ID."""
    server = start_synapse(database)
    admin = server.register_user("boss", admin=True)
    carol = server.register_user("carol")
    dave = server.register_user("dave")
    assert carol.user_id and dave.user_id
    assert admin.lux("POST", f"/users/{q('@nobody:' + server.server_name)}/exports")[0] == 404
    assert admin.lux("POST", f"/users/{q('@x:elsewhere.example')}/erase", {"reason": "r"})[0] == 404
    status, body = admin.lux("POST", f"/users/{q(carol.user_id)}/exports", {"x": 1})
    assert status == 400 and body["errcode"] in ("M_INVALID_PARAM", "M_BAD_JSON")
    status, body = admin.lux("POST", f"/users/{q(carol.user_id)}/erase", {})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    assert admin.lux("GET", f"/users/{q(carol.user_id)}/exports/nothex")[0] == 404
    status, body = admin.lux("POST", f"/users/{q(carol.user_id)}/exports")
    assert status == 202
    other = f"/users/{q(dave.user_id)}/exports/{body['export_id']}"
    assert admin.lux("GET", other)[0] == 404
    assert admin.lux("GET", other + "/archive")[0] == 404
    assert carol.lux("POST", f"/users/{q(carol.user_id)}/exports")[0] == 403
