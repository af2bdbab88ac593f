"""Signed certificates and their offline verification (proof/, admin_cli/verify_command.py;
R13, R14). Keys are generated here; the integration tests use a real server's key.

Time: the clock is injected (a fixed instant); no test waits.
"""

import json
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key

from synapse_lux_privacy import cli
from synapse_lux_privacy.proof import certificate
from synapse_lux_privacy.proof.service import CertificateService
from synapse_lux_privacy.proof.verify import VerificationFailed, check_export, check_signature
from synapse_lux_privacy.store.audit import AuditStore
from synapse_lux_privacy.sweep.report import COMPLETED, RuleResult, SweepReport
from tests.unit.orchestrators import build, drive
from tests.unit.sqlite_runner import migrated_runner
from tests.unit.test_sweep_orchestrator import AGED_ITEMS_TABLE, AgedItemsRule, add_items
from tests.unit.test_sweep_orchestrator import NOW as ORCHESTRATOR_NOW

SERVER = "lux.test"
NOW = 1_767_225_600_000


def published(key: Any, server: str = SERVER) -> dict[str, Any]:
    """What ``/_matrix/key/v2/server`` answers for ``key`` (without its self-signature)."""
    return {
        "server_name": server,
        "verify_keys": {
            certificate.key_id(key): {"key": encode_verify_key_base64(get_verify_key(key))}
        },
        "old_verify_keys": {},
        "valid_until_ts": NOW + 86_400_000,
    }


def completed_sweep() -> SweepReport:
    report = SweepReport("a" * 32, as_of=NOW - 5, dry_run=False, started_ts=NOW - 10)
    report.results["messages"] = RuleResult(candidates=4, deleted=3, held=1)
    report.results["quota"] = RuleResult(enforced=False)
    report.status, report.finished_ts = COMPLETED, NOW - 1
    return report


def service(tmp_path: Path, key: Any, mails: list[tuple[str, str, str, str]]) -> Any:
    db = migrated_runner(tmp_path / "db")

    async def send_mail(to: str, subject: str, html: str, text: str) -> None:
        mails.append((to, subject, html, text))

    certs = CertificateService(db, SERVER, key, "1.163.2", lambda: NOW, ["dpo@lux.test"], send_mail)
    return db, certs


def test_r14_a_sweep_certificate_carries_counts_and_the_chain_head_and_is_mailed(
    tmp_path: Path,
) -> None:
    key = generate_signing_key("a_test")
    mails: list[tuple[str, str, str, str]] = []
    db, certs = service(tmp_path, key, mails)
    drive(AuditStore(db).record("s", "audit", NOW - 3, 2))
    drive(certs.sweep_finished(completed_sweep()))
    signed = drive(certs.get(certificate.SWEEP, "a" * 32))
    assert signed["results"] == {
        "messages": {"candidates": 4, "deleted": 3, "held": 1, "errors": 0, "skipped": 0}
    }
    head = db.query("SELECT chain_seq, row_hash FROM lux_privacy_audit")[0]
    assert signed["audit_chain"] == {"seq": head[0], "hash": head[1]}
    assert (signed["server_name"], signed["kind"], signed["issued_ts"]) == (SERVER, "sweep", NOW)
    assert set(signed["versions"]) == {"module", "synapse"}
    assert "@" not in json.dumps(signed)  # counts only: no user ID
    assert check_signature(signed, published(key)).key_id == "ed25519:a_test"
    [(to, subject, _, text)] = mails
    assert to == "dpo@lux.test" and "a" * 32 in subject
    mailed = json.loads(text[text.index("{") :])
    assert check_signature(mailed, published(key)).server_name == SERVER


def test_r14_dry_runs_and_unfinished_sweeps_are_not_certified(tmp_path: Path) -> None:
    key = generate_signing_key("a_test")
    mails: list[tuple[str, str, str, str]] = []
    _, certs = service(tmp_path, key, mails)
    dry = completed_sweep()
    dry.dry_run = True
    cancelled = completed_sweep()
    cancelled.status = "cancelled"
    for report in (dry, cancelled):
        drive(certs.sweep_finished(report))
    assert drive(certs.get(certificate.SWEEP, "a" * 32)) is None and mails == []


def test_r14_an_erasure_payload_cannot_overwrite_what_the_service_sets(tmp_path: Path) -> None:
    _, certs = service(tmp_path, generate_signing_key("a_test"), [])
    with pytest.raises(ValueError, match="audit_chain"):
        drive(certs.issue(certificate.ERASURE, "e1", {"audit_chain": {"seq": 0}}))
    signed = drive(certs.issue(certificate.ERASURE, "e1", {"user_id": "@a:lux.test"}))
    assert (signed["kind"], signed["subject_id"], signed["user_id"]) == (
        "erasure",
        "e1",
        "@a:lux.test",
    )


def signed_certificate() -> tuple[Any, dict[str, Any]]:
    key = generate_signing_key("a_test")
    body = certificate.build(
        SERVER, "sweep", "s1", {"results": {}}, {"seq": 1, "hash": "ab"}, {"module": "0"}, NOW
    )
    return key, certificate.sign(body, SERVER, key)


def test_r14_changing_any_byte_of_a_certificate_breaks_its_signature() -> None:
    """Every letter or digit of the signed content, in turn, replaced (keys included)."""
    key, signed = signed_certificate()
    signatures = signed.pop("signatures")
    text = json.dumps(signed, sort_keys=True)
    changed = 0
    for position, char in enumerate(text):
        if not char.isalnum():
            continue
        altered = text[:position] + ("1" if char != "1" else "2") + text[position + 1 :]
        forged = {**json.loads(altered), "signatures": signatures}
        with pytest.raises(VerificationFailed):
            check_signature(forged, published(key))
        changed += 1
    assert changed > 100
    assert check_signature({**signed, "signatures": signatures}, published(key))


def test_r14_a_certificate_signed_with_another_servers_key_is_refused() -> None:
    key, signed = signed_certificate()
    other = generate_signing_key("a_test")  # same key ID, another key
    with pytest.raises(VerificationFailed, match="does not match"):
        check_signature(signed, published(other))
    with pytest.raises(VerificationFailed, match="keys are those of"):
        check_signature(signed, published(key, "other.test"))


def test_r14_an_expired_key_vouches_only_for_what_it_signed_before_expiring() -> None:
    key, signed = signed_certificate()
    keys = published(key)
    keys["old_verify_keys"] = keys.pop("verify_keys")
    keys["old_verify_keys"]["ed25519:a_test"]["expired_ts"] = NOW + 1
    assert check_signature(signed, keys).key_id == "ed25519:a_test"
    keys["old_verify_keys"]["ed25519:a_test"]["expired_ts"] = NOW
    with pytest.raises(VerificationFailed, match="publishes none"):
        check_signature(signed, keys)


def export_rows(tmp_path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """An audit of three chained rows as ``GET /audit`` lists them, and a certificate
    whose chain head is the second."""
    db = migrated_runner(tmp_path / "db")
    audit = AuditStore(db)
    for i in range(3):
        drive(audit.record("s", "audit", NOW + i, i + 1))
    rows = [e.to_json() for e in drive(audit.list_entries(0, 10))]
    second = next(r for r in rows if r["seq"] == 2)
    return {"audit_chain": {"seq": 2, "hash": second["hash"]}}, rows


def test_r14_the_chain_head_is_found_in_an_audit_export(tmp_path: Path) -> None:
    cert, rows = export_rows(tmp_path)
    proof = check_export(cert, rows)
    assert (proof.rows, proof.head_id) == (3, next(r["id"] for r in rows if r["seq"] == 2))
    edited = [dict(r, count=9) if r["seq"] == 1 else r for r in rows]
    with pytest.raises(VerificationFailed, match="does not match its hash"):
        check_export(cert, edited)
    with pytest.raises(VerificationFailed, match="holds no audit row with seq 2"):
        check_export(cert, [r for r in rows if r["seq"] != 2])
    with pytest.raises(VerificationFailed, match="not the certificate's chain head"):
        check_export({"audit_chain": {"seq": 2, "hash": "0" * 64}}, rows)


def test_r14_verify_command_says_in_one_line_what_it_proved(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, signed = signed_certificate()
    cert_file, key_file = tmp_path / "cert.json", tmp_path / "key.json"
    cert_file.write_text(json.dumps(signed))
    key_file.write_text(json.dumps(published(key)))
    assert cli.main(["verify", str(cert_file), "--key", str(key_file)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("PROVED: sweep certificate s1 was signed by")
    signed["results"] = {"messages": {"deleted": 1}}
    cert_file.write_text(json.dumps(signed))
    assert cli.main(["verify", str(cert_file), "--key", str(key_file)]) == 1
    assert capsys.readouterr().out.startswith("REFUSED: the signature ed25519:a_test")
    assert cli.main(["verify", str(tmp_path / "missing.json"), "--key", str(key_file)]) == 2
    assert "cannot read" in capsys.readouterr().err


@pytest_twisted.ensureDeferred
async def test_r14_the_sweeps_completion_hook_certifies_it_and_a_failing_hook_changes_nothing(
    tmp_path: Path,
) -> None:
    """A real sweep of a rule on SQLite (items aged against the injected clock,
    ``test_sweep_orchestrator``): its certificate covers its audit rows."""
    mails: list[tuple[str, str, str, str]] = []
    db, certs = service(tmp_path, generate_signing_key("a_test"), mails)
    db.conn.execute(AGED_ITEMS_TABLE)
    add_items(db, 12, 31, "@a:lux.test", "!r:lux.test", "old")
    orchestrator = build(db, {"messages": AgedItemsRule(db)}, lambda: ORCHESTRATOR_NOW, 5)

    async def broken(report: SweepReport) -> None:
        raise RuntimeError("mailer down")

    orchestrator.add_finished_hook(broken)
    orchestrator.add_finished_hook(certs.sweep_finished)
    report = await orchestrator.run(as_of_ms=None, dry_run=False)
    assert report.status == COMPLETED
    signed = await certs.get(certificate.SWEEP, report.sweep_id)
    assert signed is not None and signed["results"]["messages"]["deleted"] == 12
    head = db.query("SELECT MAX(chain_seq) FROM lux_privacy_audit")[0][0]
    assert signed["audit_chain"]["seq"] == head >= 1
