"""E-mail warnings before an R12 deletion (``notify.account_deletion``: 30d and 7d), through
Synapse's own mailer to a real SMTP server on loopback, on SQLite and PostgreSQL.

Time: the deletion date is brought near by backdating rows, never by waiting. Each user's
registration time (``users.creation_ts``) and the module's last activity
(``lux_privacy_user_activity``) are set to "now - 1y + 30d", so the deletion date is 30 days
ahead (their registration device is deleted first, so no session holds the date back).
Time passing is simulated by shifting every time of a user back by the same amount:
the activity rows above, ``devices.last_seen``, ``lux_privacy_device_activity`` and the
module's record of the warnings sent (``lux_privacy_account_warnings.sent_ts``).
"""

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import DATABASES, StartSynapse
from tests.harness import Database, MatrixClient, SynapseServer
from tests.harness.client import q
from tests.harness.smtp import Mail, SmtpSink
from tests.harness.waiting import wait_for
from tests.integration.test_accounts_rules import ACCOUNT_MS, DAY, backdate_user, now_ms, report

pytestmark = pytest.mark.integration

ENDPOINT = "/notifications/account_deletion"
HOUR = 3_600_000


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


def day(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y-%m-%d")


def with_mailer(smtp: SmtpSink) -> dict[str, Any]:
    return {
        "email": {
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "notif_from": "Luxchat <noreply@lux.test>",
            "enable_notifs": False,
            "enable_tls": False,
        }
    }


def shift_back(db: Database, user_id: str, ms: int) -> None:
    """Every time the module and Synapse keep about the user's activity, ``ms`` earlier."""
    db.execute(
        "UPDATE users SET creation_ts = creation_ts - ? WHERE name = ?", (ms // 1000, user_id)
    )
    db.execute(
        "UPDATE lux_privacy_user_activity SET last_active_ts = last_active_ts - ?"
        " WHERE user_id = ?",
        (ms, user_id),
    )
    db.execute(
        "UPDATE devices SET last_seen = last_seen - ? WHERE user_id = ? AND last_seen IS NOT NULL",
        (ms, user_id),
    )
    db.execute(
        "UPDATE lux_privacy_device_activity SET first_seen_ts = first_seen_ts - ?,"
        " last_seen_ts = last_seen_ts - ? WHERE user_id = ?",
        (ms, ms, user_id),
    )
    db.execute(
        "UPDATE lux_privacy_account_warnings SET sent_ts = sent_ts - ? WHERE user_id = ?",
        (ms, user_id),
    )


def warnings_pass(admin: MatrixClient, method: str) -> dict[str, Any]:
    status, body = admin.lux(method, ENDPOINT)
    assert status == 200, body
    assert body["enabled"] is True and body["failed"] == 0, body
    result: dict[str, Any] = body
    return result


def module_started(db: Database, user_id: str) -> bool:
    """The module's start-up (in the background after ``/health`` answers) has created
    its tables and written the activity of ``user_id``, registered before it ended."""
    try:
        row = db.query_one(
            "SELECT COUNT(*) FROM lux_privacy_user_activity WHERE user_id = ?", (user_id,)
        )
    except Exception:  # the table is not there yet
        return False
    return row == (1,)


def idle_user(
    server: SynapseServer, admin: MatrixClient, localpart: str, addresses: list[str], due: int
) -> MatrixClient:
    """A user with these e-mail addresses, no session, whose deletion date is ``due``."""
    user = server.register_user(localpart)
    assert user.user_id is not None and user.device_id is not None
    user_id = user.user_id
    wait_for(lambda: module_started(server.db(), user_id), 60, "the module's start-up")
    if addresses:
        threepids = [{"medium": "email", "address": a} for a in addresses]
        admin.synapse_admin("PUT", f"/v2/users/{q(user.user_id)}", {"threepids": threepids})
    admin.synapse_admin("DELETE", f"/v2/users/{q(user.user_id)}/devices/{q(user.device_id)}")
    backdate_user(server.db(), user.user_id, due - ACCOUNT_MS)
    return user


def by_recipient(mails: list[Mail]) -> dict[str, Mail]:
    return {m.recipient: m for m in mails}


@pytest.mark.parametrize("database", DATABASES)
def test_r12_users_are_emailed_30_and_7_days_before_deletion_once_and_a_login_resets(
    start_synapse: StartSynapse,
    smtp: SmtpSink,
    unique: Callable[..., str],
    database: str,
) -> None:
    exempt_localpart = unique("exempt")
    server = start_synapse(
        database,
        {"accounts": {"exempt": [f"@{exempt_localpart}:lux.test"]}},
        with_mailer(smtp),
    )
    db = server.db()
    admin = server.register_user(unique("admin"), admin=True)
    now = now_ms()
    due = now + 30 * DAY
    marie = idle_user(server, admin, unique("marie"), ["marie@a.lu", "marie@b.lu"], due)
    paul = idle_user(server, admin, unique("paul"), ["paul@a.lu"], due)
    idle_user(server, admin, exempt_localpart, ["exempt@a.lu"], due)
    held = idle_user(server, admin, unique("held"), ["held@a.lu"], due)
    idle_user(server, admin, unique("noaddr"), [], due)
    status, _ = admin.lux(
        "PUT", f"/holds/{unique('hold')}", {"user_id": held.user_id, "reason": "c"}
    )
    assert status == 201

    # Dry run: counted, nothing sent or recorded.
    counted = warnings_pass(admin, "GET")
    assert (counted["dry_run"], counted["warnings"], counted["total"]) == (
        True,
        {"30d": 2, "7d": 0},
        2,
    )
    assert smtp.mails() == []
    assert report(admin, marie.user_id or "")["account_deletion_warnings"] == []

    sent = warnings_pass(admin, "POST")
    assert (sent["dry_run"], sent["warnings"], sent["total"]) == (False, {"30d": 2, "7d": 0}, 2)
    mails = by_recipient(smtp.wait_for(3))
    assert set(mails) == {"marie@a.lu", "marie@b.lu", "paul@a.lu"}
    first = mails["marie@a.lu"]
    assert first.subject == (
        f"Votre compte {marie.user_id} sera supprimé le {day(due)}"
        f" / Your account {marie.user_id} will be deleted on {day(due)}"
    )
    text = first.text
    last_active = day(due - ACCOUNT_MS)
    assert text.index("n'est plus utilisé depuis le " + last_active) < text.index(
        "has not been used since " + last_active
    )
    assert "depuis n'importe quel appareil" in text and "from any device" in text
    assert f"on {day(due)}" in first.html
    warned = report(admin, marie.user_id or "")["account_deletion_warnings"]
    assert [(w["lead_ms"], w["deletion_due_ts"], w["addresses"]) for w in warned] == [
        (30 * DAY, due, 2)
    ]

    # Nothing twice.
    assert warnings_pass(admin, "POST")["total"] == 0
    assert warnings_pass(admin, "GET")["total"] == 0
    assert len(smtp.mails()) == 3

    # Paul signs in; then 23 days pass for both: the 7-day warning goes to Marie only.
    server.login(paul.user_id or "", paul.password or "")
    for user in (marie, paul):
        shift_back(db, user.user_id or "", 23 * DAY)
    sent = warnings_pass(admin, "POST")
    assert (sent["warnings"], sent["total"]) == ({"30d": 0, "7d": 1}, 1)
    later = smtp.wait_for(5)[3:]
    assert {m.recipient for m in later} == {"marie@a.lu", "marie@b.lu"}
    assert all(f"le {day(due - 23 * DAY)}" in m.subject for m in later)
    assert warnings_pass(admin, "POST")["total"] == 0
    assert report(admin, paul.user_id or "")["account_deletion_due_ts"] > now + 300 * DAY

    # Paul idle again until 30 days before his new deletion date: a new round starts.
    paul_due = report(admin, paul.user_id or "")["account_deletion_due_ts"]
    shift_back(db, paul.user_id or "", paul_due - now_ms() - 29 * DAY)
    sent = warnings_pass(admin, "POST")
    assert (sent["warnings"], sent["total"]) == ({"30d": 1, "7d": 0}, 1)
    assert [m.recipient for m in smtp.wait_for(6)[5:]] == ["paul@a.lu"]
    assert len(smtp.mails()) == 6


@pytest.mark.parametrize("database", DATABASES)
def test_r12_r14_a_warning_claimed_by_a_killed_pass_is_sent_later_and_reported_once_sent(
    start_synapse: StartSynapse, unique: Callable[..., str], database: str
) -> None:
    """Issue 25: Synapse is killed (SIGKILL) after a pass claimed Marie's warning and while
    it waits on the mail server (a socket that never greets). After the restart the R14
    report lists no warning (none went out; it used to list the claim as sent), and once
    the claim is older than a pass can take (``CLAIM_STALE_MS``; backdated two hours), a
    pass sends it and the report lists it. Time: the deletion date is 30 days ahead
    through backdated rows; the claim's age through ``sent_ts``, backdated."""
    sink = SmtpSink()  # started later: its port first answers nothing
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    silent.bind(("127.0.0.1", sink.port))
    silent.listen(8)
    try:
        server = start_synapse(database, {}, with_mailer(sink))
        db = server.db()
        admin = server.register_user(unique("admin"), admin=True)
        marie = idle_user(server, admin, unique("marie"), ["marie@a.lu"], now_ms() + 30 * DAY)
        marie_id = marie.user_id or ""

        def blocked_pass() -> None:
            with contextlib.suppress(Exception):  # the server dies under the request
                admin.lux("POST", ENDPOINT)

        threading.Thread(target=blocked_pass, daemon=True).start()
        claims = "SELECT COUNT(*) FROM lux_privacy_account_warnings WHERE user_id = ?"
        wait_for(lambda: db.query_one(claims, (marie_id,)) == (1,), 60, "the warning claimed")
        server.kill()
    finally:
        silent.close()
    sink.start()
    try:
        server.start()
        assert report(admin, marie_id)["account_deletion_warnings"] == []
        assert warnings_pass(admin, "POST")["total"] == 0  # the claim may still be sending
        server.db().execute(
            "UPDATE lux_privacy_account_warnings SET sent_ts = sent_ts - ? WHERE user_id = ?",
            (2 * HOUR, marie_id),
        )
        sent = warnings_pass(admin, "POST")
        assert (sent["warnings"], sent["total"]) == ({"30d": 1, "7d": 0}, 1)
        assert [m.recipient for m in sink.wait_for(1)] == ["marie@a.lu"]
        warned = report(admin, marie_id)["account_deletion_warnings"]
        assert [(w["lead_ms"], w["addresses"]) for w in warned] == [(30 * DAY, 1)]
        assert warnings_pass(admin, "POST")["total"] == 0
        assert len(sink.mails()) == 1
    finally:
        sink.stop()


def test_r12_without_synapse_mailer_warnings_are_off(
    synapse: SynapseServer, admin: MatrixClient, unique: Callable[..., str]
) -> None:
    """The shared server has no ``email:`` settings: nothing is counted or sent, and the
    start-up check names the missing setting."""
    idle_user(synapse, admin, unique("marie"), ["marie@a.lu"], now_ms() + 30 * DAY)
    for method in ("GET", "POST"):
        status, body = admin.lux(method, ENDPOINT)
        assert status == 200, body
        assert (body["enabled"], body["total"]) == (False, 0)
    assert "email.notif_from is absent" in synapse.log_text()


@pytest.mark.parametrize("database", DATABASES)
def test_r12_with_the_module_dry_run_warnings_are_counted_never_sent(
    start_synapse: StartSynapse, smtp: SmtpSink, unique: Callable[..., str], database: str
) -> None:
    """``dry_run: true`` deletes nothing, so no one is told their account will go."""
    server = start_synapse(database, {"dry_run": True}, with_mailer(smtp))
    admin = server.register_user(unique("admin"), admin=True)
    marie = idle_user(server, admin, unique("marie"), ["marie@a.lu"], now_ms() + 7 * DAY)
    for method in ("GET", "POST"):
        body = warnings_pass(admin, method)
        assert (body["dry_run"], body["warnings"], body["total"]) == (
            True,
            {"30d": 0, "7d": 1},
            1,
        )
    assert report(admin, marie.user_id or "")["account_deletion_warnings"] == []
    assert smtp.mails() == []  # a pass awaits each delivery before it answers
