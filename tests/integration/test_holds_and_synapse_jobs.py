"""R13 with Synapse's own deleting jobs switched off, as check-config recommends.

``user_ips_max_age: null`` and ``redaction_retention_period: null``: Synapse no longer
prunes client IPs (after 28 days by default) nor censors redacted content (after 7
days) for everyone, held or not; the module's ``ip_logs`` and ``redacted_content`` rules
do that work and keep what a legal hold covers.

Time: rows are backdated (``user_ips.last_seen`` 7 months back, past Synapse's 28 days
and the module's 6 months; ``redactions.received_ts`` 30 days back, past Synapse's and
the module's 7 days); the sweep runs as of now.
"""

import pytest

from tests.conftest import StartSynapse
from tests.harness import MatrixClient, uid
from tests.integration.test_accounts_rules import (
    DAY,
    count,
    now_ms,
    sweep,
    wait_until_seen,
)
from tests.integration.test_content_support import stored_json

pytestmark = pytest.mark.integration

RECOMMENDED = {"user_ips_max_age": None, "redaction_retention_period": None}


def _hold(admin: MatrixClient, **target: str | None) -> None:
    status, body = admin.lux("PUT", f"/holds/{uid('hold')}", {**target, "reason": "a case"})
    assert status in (200, 201), body


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_r9_r5_r13_held_ips_and_redacted_content_outlive_synapse_defaults_unheld_go_on_time(
    start_synapse: StartSynapse, database: str
) -> None:
    server = start_synapse(database, {}, dict(RECOMMENDED))
    db = server.db()
    admin = server.register_user(uid("admin"), admin=True)
    # Sent by an unheld user: only the room hold keeps the held room's content.
    alice = server.register_user(uid("alice"))
    held_room, free_room = alice.create_room(), alice.create_room()
    _hold(admin, room_id=held_room)
    redacted = {
        room: alice.send_message(room, f"secret {uid('s')}") for room in (held_room, free_room)
    }
    for room, event_id in redacted.items():
        alice.redact(room, event_id)
    # IP rows: the two users make one request each, then none until the end.
    held, free = server.register_user(uid("held")), server.register_user(uid("free"))
    for client in (held, free):
        client.whoami()
        wait_until_seen(db, client)
    _hold(admin, user_id=held.user_id)

    now = now_ms()
    db.execute(
        "UPDATE user_ips SET last_seen = ? WHERE user_id IN (?, ?)",
        (now - 210 * DAY, held.user_id, free.user_id),
    )
    for event_id in redacted.values():
        db.execute(
            "UPDATE redactions SET received_ts = ? WHERE redacts = ?", (now - 30 * DAY, event_id)
        )

    results = sweep(admin, ["ip_logs", "redacted_content"], as_of=now)

    def ips(user_id: str | None) -> int:
        return count(db, "SELECT COUNT(*) FROM user_ips WHERE user_id = ?", (user_id,))

    assert (ips(held.user_id), ips(free.user_id)) == (1, 0)
    assert "secret" in str(stored_json(db, redacted[held_room]))
    assert "secret" not in str(stored_json(db, redacted[free_room]))
    assert results["ip_logs"]["held"] >= 1 and results["redacted_content"]["held"] >= 1
    assert "user_ips_max_age" not in server.log_text()  # the recommended setting: no finding
