"""Proof for the data-protection officer (issue #24; R13, R14) on a real Synapse, SQLite and
PostgreSQL: the audit's hash chain (``GET /audit/verify``), signed sweep certificates
(``GET /sweeps/{id}/certificate``, mailed to ``audit.certificates_to`` through Synapse's
mailer to a real SMTP server on loopback) and ``synapse-lux-privacy verify``.

These tests own their homeserver (one per database): they edit audit rows directly.
Time: messages are backdated into the far past and swept "as of" 25 months later, so
the audit rows are real deletions. The pruning test is the exception: ``audit.retention``
is 2 seconds here (``allow_short_periods``), and it waits those 2 seconds of real time
before the full sweep that prunes.
"""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from signedjson.key import generate_signing_key

from synapse_lux_privacy import cli
from synapse_lux_privacy.proof import certificate
from tests.conftest import DATABASES
from tests.harness import MatrixClient, PostgresCluster, SynapseServer, uid
from tests.harness.smtp import SmtpSink
from tests.integration.test_content_support import MONTH, backdate_events

pytestmark = pytest.mark.integration

DPO = "dpo@lux.test"
BASE = 946_684_800_000  # 2000-01-01: long before anything else on this server


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture(scope="module", params=DATABASES, ids=DATABASES)
def hs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, smtp: SmtpSink
) -> Iterator[SynapseServer]:
    """This module's own homeserver: audit rows are edited here, never on the shared one."""
    database: str = request.param
    pg_params = None
    if database == "postgres":
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        pg_params = cluster.create_database(uid("proof_"))
    server = SynapseServer(
        tmp_path_factory.mktemp(f"proof-{database}"),
        database,  # type: ignore[arg-type]
        pg_params,
        {
            "allow_short_periods": True,
            "sweep_batch_size": 2,
            "audit": {"retention": "2s", "certificates_to": [DPO]},
        },
        {
            "email": {
                "smtp_host": "127.0.0.1",
                "smtp_port": smtp.port,
                "notif_from": "Luxchat <noreply@lux.test>",
                "enable_notifs": False,
                "enable_tls": False,
            }
        },
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def admin(hs: SynapseServer) -> MatrixClient:
    return hs.register_user(uid("admin"), admin=True)


def deletions(hs: SynapseServer, admin: MatrixClient, messages: int = 5) -> dict[str, Any]:
    """Messages of two users, backdated to BASE, deleted by a real sweep of the messages
    rule as of 25 months later (batches of 2: several audit rows); the sweep's report."""
    alice = hs.register_user(uid("alice"))
    bob = hs.register_user(uid("bob"))
    room = alice.create_room(invite=[str(bob.user_id)])
    bob.join(room)
    sent = [(alice if i % 2 else bob).send_message(room, f"m{i}") for i in range(messages)]
    backdate_events(hs.db(), sent, BASE)
    status, report = admin.lux(
        "POST", "/sweep", {"as_of": BASE + 25 * MONTH, "rules": ["messages"]}
    )
    assert status == 200, report
    assert report["results"]["messages"]["deleted"] >= messages - 1  # the newest event stays
    result: dict[str, Any] = report
    return result


def verify(admin: MatrixClient) -> dict[str, Any]:
    status, body = admin.lux("GET", "/audit/verify")
    assert status == 200, body
    result: dict[str, Any] = body
    return result


def audit_row(hs: SynapseServer, seq: int) -> tuple[Any, ...]:
    row = hs.db().query_one(
        "SELECT id, ts, sweep_id, rule, status, count, bytes, user_id, room_id,"
        " provider_objects, chain_seq, prev_hash, row_hash FROM lux_privacy_audit"
        " WHERE chain_seq = ?",
        (seq,),
    )
    assert row is not None
    return row


def test_r14_a_row_edited_deleted_or_inserted_in_the_database_is_named(
    hs: SynapseServer, admin: MatrixClient
) -> None:
    deletions(hs, admin)
    clean = verify(admin)
    assert clean["ok"] is True and clean["rows"] >= 3, clean
    db = hs.db()
    seq = clean["head"]["seq"] - 1
    row = audit_row(hs, seq)

    db.execute("UPDATE lux_privacy_audit SET count = count + 1 WHERE chain_seq = ?", (seq,))
    edited = verify(admin)
    assert edited["ok"] is False
    assert edited["first_mismatch"] == {"problem": "edited", "seq": seq, "id": row[0]}
    db.execute("UPDATE lux_privacy_audit SET count = ? WHERE chain_seq = ?", (row[5], seq))
    assert verify(admin)["ok"] is True

    db.execute("DELETE FROM lux_privacy_audit WHERE chain_seq = ?", (seq,))
    missing = verify(admin)
    assert missing["first_mismatch"]["problem"] == "missing"
    assert missing["first_mismatch"]["seq"] == seq
    columns = (
        "id, ts, sweep_id, rule, status, count, bytes, user_id, room_id, provider_objects,"
        " chain_seq, prev_hash, row_hash"
    )
    db.execute(f"INSERT INTO lux_privacy_audit ({columns}) VALUES ({', '.join('?' * 13)})", row)
    assert verify(admin)["ok"] is True

    db.execute(
        "INSERT INTO lux_privacy_audit (ts, rule, status, count, bytes, user_id)"
        " VALUES (?, 'messages', 'done', 1, 10, '@mallory:lux.test')",
        (int(time.time() * 1000),),
    )
    inserted = db.query_one("SELECT MAX(id) FROM lux_privacy_audit")
    assert inserted is not None
    stray = verify(admin)
    assert stray["first_mismatch"] == {"problem": "unchained", "seq": None, "id": inserted[0]}
    db.execute("DELETE FROM lux_privacy_audit WHERE id = ?", (inserted[0],))
    assert verify(admin)["ok"] is True


def published_keys(hs: SynapseServer, tmp_path: Path, name: str) -> Path:
    """The server's ``/_matrix/key/v2/server`` answer, saved as a key file."""
    anonymous = MatrixClient(hs.base_url)
    response = anonymous.request("GET", "/_matrix/key/v2/server")
    assert response.status_code == 200
    path = tmp_path / name
    path.write_text(response.text)
    return path


def run_verify(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(["verify", *argv])
    captured = capsys.readouterr()
    return code, (captured.out + captured.err).strip()


def test_r14_a_sweep_certificate_verifies_with_the_published_key_and_nothing_else(
    hs: SynapseServer,
    admin: MatrixClient,
    smtp: SmtpSink,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = deletions(hs, admin)
    status, signed = admin.lux("GET", f"/sweeps/{report['sweep_id']}/certificate")
    assert status == 200, signed
    assert signed["results"]["messages"]["deleted"] == report["results"]["messages"]["deleted"]
    assert "@" not in json.dumps(signed["results"])  # counts only
    assert signed["audit_chain"]["seq"] == verify(admin)["head"]["seq"]
    cert = tmp_path / "certificate.json"
    cert.write_text(json.dumps(signed))

    # Against the key the server publishes for federation, fetched or saved.
    code, out = run_verify(capsys, str(cert), "--server", hs.base_url)
    assert code == 0 and out.startswith("PROVED: sweep certificate"), out
    assert "\n" not in out
    keys = published_keys(hs, tmp_path, "keys.json")
    assert run_verify(capsys, str(cert), "--key", str(keys))[0] == 0

    # With an export of the audit: the certificate's chain head is one of its rows.
    status, rows = admin.lux("GET", "/audit", params={"limit": 1000})
    assert status == 200
    export = tmp_path / "audit.json"
    export.write_text(json.dumps(rows))
    code, out = run_verify(capsys, str(cert), "--key", str(keys), "--audit", str(export))
    assert code == 0 and f"chain head (seq {signed['audit_chain']['seq']})" in out, out
    export.write_text(json.dumps([dict(r, count=r["count"] + 1) for r in rows]))
    code, out = run_verify(capsys, str(cert), "--key", str(keys), "--audit", str(export))
    assert code == 1 and "does not match its hash" in out, out

    # One byte changed: refused.
    text = cert.read_text()
    deleted = f'"deleted": {signed["results"]["messages"]["deleted"]}'
    assert deleted in text
    cert.write_text(text.replace(deleted, deleted + "0", 1))
    code, out = run_verify(capsys, str(cert), "--key", str(keys))
    assert code == 1 and out.startswith("REFUSED"), out

    # Signed by another server's key under the same name and key ID: refused.
    forged = {k: v for k, v in signed.items() if k != "signatures"}
    certificate.sign(forged, hs.server_name, generate_signing_key("a_lux"))
    cert.write_text(json.dumps(forged))
    code, out = run_verify(capsys, str(cert), "--key", str(keys))
    assert code == 1 and "does not match" in out, out

    # The DPO's copy, mailed through Synapse's mailer, verifies on its own.
    mails = [m for m in smtp.mails() if report["sweep_id"] in m.subject]
    assert [m.recipient for m in mails] == [DPO]
    mailed = tmp_path / "mailed.json"
    mailed.write_text(mails[0].text[mails[0].text.index("{") :])
    assert run_verify(capsys, str(mailed), "--key", str(keys))[0] == 0


def test_r14_dry_runs_have_no_certificate(admin: MatrixClient) -> None:
    status, report = admin.lux("POST", "/sweep", {"dry_run": True, "rules": ["messages"]})
    assert status == 200
    status, body = admin.lux("GET", f"/sweeps/{report['sweep_id']}/certificate")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")
    assert "dry run" in body["error"]
    status, body = admin.lux("GET", "/sweeps/nonsense/certificate")
    assert (status, body["errcode"]) == (404, "M_NOT_FOUND")


def test_r14_pruning_by_audit_retention_keeps_the_chain_verifiable(
    hs: SynapseServer, admin: MatrixClient
) -> None:
    deletions(hs, admin)
    before = verify(admin)
    assert before["ok"] is True
    time.sleep(2.5)  # audit.retention is 2 s here: every row so far is past it
    status, report = admin.lux("POST", "/sweep", {})
    assert status == 200, report
    after = verify(admin)
    assert after["ok"] is True, after
    assert after["anchor"]["seq"] >= before["head"]["seq"] > before["anchor"]["seq"]
    remaining = hs.db().query_one(
        "SELECT COUNT(*) FROM lux_privacy_audit WHERE chain_seq <= ?", (before["head"]["seq"],)
    )
    assert remaining == (0,)
