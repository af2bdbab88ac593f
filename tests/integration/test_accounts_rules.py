"""Sessions (R11), accounts (R12, R8), profile erasure (R7) and IP logs (R9) on the shared
Synapse with the module's defaults (6M, 1y, 6M), on SQLite and PostgreSQL.

Time: rows are backdated in Synapse's tables (``devices.last_seen``, ``users.creation_ts``,
``user_ips.last_seen``, ``ui_auth_sessions.creation_time``, ``user_daily_visits.timestamp``)
and in the module's activity tables, one day either side of each limit; sweeps then run
"as of" the test's own "now" and only on the rule under test, so only this test's
backdated data is due.
"""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Database, MatrixClient, MatrixError, SynapseServer, wait_for
from tests.harness.client import parse_mxc, q

pytestmark = pytest.mark.integration

DAY = 86_400_000
SESSION_MS = 180 * DAY  # sessions.inactive_logout_after: 6M
ACCOUNT_MS = 365 * DAY  # accounts.inactive_delete_after: 1y
IP_MS = 180 * DAY  # logs.ip_retention: 6M
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005050202a3c1a4"
    "f90000000049454e44ae426082"
)


def now_ms() -> int:
    return int(time.time() * 1000)


def sweep(
    admin: MatrixClient, rules: list[str], as_of: int | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Run a sweep of these rules; return its results per rule."""
    status, report = admin.lux(
        "POST", "/sweep", {"rules": rules, "as_of": as_of, "dry_run": dry_run}
    )
    assert status == 200, report
    for name in rules:
        assert report["results"][name]["errors"] == 0, report
    results: dict[str, Any] = report["results"]
    return results


def count(db: Database, sql: str, params: tuple[Any, ...] = ()) -> int:
    row = db.query_one(sql, params)
    assert row is not None
    return int(row[0])


def wait_until_seen(db: Database, client: MatrixClient) -> None:
    """Wait for Synapse's client-IP batch (every 5 s) to write the device's last_seen."""
    wait_for(
        lambda: (
            count(
                db,
                "SELECT COUNT(*) FROM devices WHERE user_id = ? AND device_id = ?"
                " AND last_seen IS NOT NULL",
                (client.user_id, client.device_id),
            )
            == 1
        ),
        what=f"Synapse to record {client.device_id}'s activity",
    )


def backdate_device(db: Database, user_id: str, device_id: str, ts: int) -> None:
    """Synapse's last_seen and the module's record of the device (it must exist)."""
    db.execute(
        "UPDATE devices SET last_seen = ? WHERE user_id = ? AND device_id = ?",
        (ts, user_id, device_id),
    )
    updated = db.execute(
        "UPDATE lux_privacy_device_activity SET first_seen_ts = ?, last_seen_ts = ?"
        " WHERE user_id = ? AND device_id = ?",
        (ts, ts, user_id, device_id),
    )
    assert updated == 1, f"the module has not recorded {device_id}"


def backdate_user(db: Database, user_id: str, ts: int) -> None:
    """Registration time in Synapse and the module's last activity (it must exist)."""
    db.execute("UPDATE users SET creation_ts = ? WHERE name = ?", (ts // 1000, user_id))
    updated = db.execute(
        "UPDATE lux_privacy_user_activity SET last_active_ts = ? WHERE user_id = ?",
        (ts, user_id),
    )
    assert updated == 1, f"the module has no activity record for {user_id}"


def media_path(server: SynapseServer, mxc: str) -> Path:
    """Where Synapse's local media store keeps an upload."""
    media_id = parse_mxc(mxc)[1]
    return (
        server.dir / "media_store" / "local_content" / media_id[:2] / media_id[2:4] / media_id[4:]
    )


def media_rows(db: Database, mxc: str) -> int:
    return count(
        db,
        "SELECT COUNT(*) FROM local_media_repository WHERE media_id = ?",
        (parse_mxc(mxc)[1],),
    )


def report(admin: MatrixClient, user_id: str) -> dict[str, Any]:
    status, body = admin.lux("GET", f"/users/{q(user_id)}")
    assert status == 200, body
    result: dict[str, Any] = body
    return result


def test_r11_idle_device_is_logged_out_after_6_months_an_active_one_stays(
    synapse: SynapseServer, admin: MatrixClient, unique: Callable[..., str]
) -> None:
    """Four devices of one user: used now, idle 6M - 1d, idle 6M + 1d (with keys and a
    pusher), and the registration device idle 6M + 1d."""
    db = synapse.db()
    localpart = unique("sess")
    registered = synapse.register_user(localpart)
    user_id = registered.user_id
    assert user_id is not None
    active, near, idle = (synapse.login(localpart, registered.password or "") for _ in range(3))
    for client in (active, near, idle):
        client.whoami()
    idle.call(
        "POST",
        "/_matrix/client/v3/keys/upload",
        {
            "device_keys": {
                "user_id": user_id,
                "device_id": idle.device_id,
                "algorithms": ["m.olm.v1.curve25519-aes-sha2"],
                "keys": {
                    f"curve25519:{idle.device_id}": "Y3VydmU",
                    f"ed25519:{idle.device_id}": "ZWQ",
                },
                "signatures": {},
            },
            "one_time_keys": {"curve25519:AAAAAQ": "b3Rr"},
        },
    )
    idle.call(
        "POST",
        "/_matrix/client/v3/pushers/set",
        {
            "kind": "http",
            "app_id": "lu.lux.test",
            "pushkey": unique("pk"),
            "app_display_name": "Lux",
            "device_display_name": "phone",
            "lang": "en",
            "data": {"url": "http://127.0.0.1:9/_matrix/push/v1/notify"},
        },
    )
    for client in (active, near, idle):
        wait_until_seen(db, client)
    sweep(admin, ["sessions"], dry_run=True)  # the module records every device it sees
    now = now_ms()
    backdate_device(db, user_id, registered.device_id or "", now - SESSION_MS - DAY)
    backdate_device(db, user_id, near.device_id or "", now - SESSION_MS + DAY)
    backdate_device(db, user_id, idle.device_id or "", now - SESSION_MS - DAY)
    keys_sql = "SELECT COUNT(*) FROM {} WHERE user_id = ? AND device_id = ?"
    key_tables = ("e2e_device_keys_json", "e2e_one_time_keys_json")
    for table in key_tables:
        assert count(db, keys_sql.format(table), (user_id, idle.device_id)) == 1
    assert count(db, "SELECT COUNT(*) FROM pushers WHERE user_name = ?", (user_id,)) == 1

    results = sweep(admin, ["sessions"], as_of=now)

    assert results["sessions"]["deleted"] >= 2
    assert {d["device_id"] for d in active.devices()} == {active.device_id, near.device_id}
    gone = idle.request("GET", "/_matrix/client/v3/account/whoami")
    assert (gone.status_code, gone.json()["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    for table in key_tables:
        assert count(db, keys_sql.format(table), (user_id, idle.device_id)) == 0
    assert count(db, "SELECT COUNT(*) FROM pushers WHERE user_name = ?", (user_id,)) == 0
    sessions = {s["device_id"]: s for s in report(admin, user_id)["sessions"]}
    assert set(sessions) == {active.device_id, near.device_id}
    assert sessions[near.device_id]["last_seen_ts"] == now - SESSION_MS + DAY
    assert sessions[near.device_id]["logout_due_ts"] == now + DAY
    assert sessions[active.device_id]["logout_due_ts"] > now + SESSION_MS - DAY


def test_r12_account_without_devices_is_erased_after_1_year_and_its_id_stays_taken(
    synapse: SynapseServer, admin: MatrixClient, unique: Callable[..., str]
) -> None:
    """Two users whose only device an admin deleted: inactive 1y - 1d (kept) and
    1y + 1d (deactivated and erased; the ID can never be registered again, R8)."""
    db = synapse.db()
    kept_localpart, gone_localpart = unique("keep"), unique("gone")
    kept, gone = synapse.register_user(kept_localpart), synapse.register_user(gone_localpart)
    for client in (kept, gone):
        assert client.user_id is not None and client.device_id is not None
        admin.synapse_admin(
            "DELETE", f"/v2/users/{q(client.user_id)}/devices/{q(client.device_id)}"
        )
    now = now_ms()
    backdate_user(db, kept.user_id or "", now - ACCOUNT_MS + DAY)
    backdate_user(db, gone.user_id or "", now - ACCOUNT_MS - DAY)
    before = report(admin, gone.user_id or "")
    assert (before["sessions"], before["account_deletion_due_ts"]) == ([], now - DAY)

    results = sweep(admin, ["accounts"], as_of=now)

    assert results["accounts"]["deleted"] >= 1
    gone_info = admin.synapse_admin("GET", f"/v2/users/{q(gone.user_id or '')}")
    assert (gone_info["deactivated"], gone_info["erased"]) == (True, True)
    assert admin.synapse_admin("GET", f"/v2/users/{q(kept.user_id or '')}")["deactivated"] is False
    with pytest.raises(MatrixError) as taken:
        synapse.register_user(gone_localpart)
    assert taken.value.errcode == "M_USER_IN_USE"
    kept_report = report(admin, kept.user_id or "")
    assert kept_report["last_active_ts"] == now - ACCOUNT_MS + DAY
    assert kept_report["account_deletion_due_ts"] == now + DAY
    gone_report = report(admin, gone.user_id or "")
    assert (gone_report["deactivated"], gone_report["account_deletion_due_ts"]) == (True, None)
    status, audit = admin.lux("GET", f"/audit?since={now}&limit=1000")
    assert status == 200
    assert any(e["rule"] == "accounts" and e["user_id"] == gone.user_id for e in audit)


@pytest.mark.parametrize("path", ["self-service", "admin API"])
def test_r7_deactivation_by_any_path_erases_profile_and_avatar_file(
    synapse: SynapseServer, admin: MatrixClient, unique: Callable[..., str], path: str
) -> None:
    """Deactivation without erasure (Synapse would keep the profile): the module erases
    the profile and deletes the avatar file at once. Other uploads follow R2/R12."""
    db = synapse.db()
    localpart = unique("r7")
    user = synapse.register_user(localpart, displayname="Marie Muster")
    assert user.user_id is not None
    avatar = user.upload_media(PNG, "image/png", "me.png")
    other = user.upload_media(b"minutes of the meeting", "text/plain", "notes.txt")
    user.set_avatar_url(avatar)
    if path == "admin API":  # a room, so the avatar is also in a membership event
        user.create_room(name="r7")
    assert media_path(synapse, avatar).is_file() and media_rows(db, avatar) == 1

    if path == "self-service":
        user.deactivate(user.password or "", erase=False)
    else:
        admin.synapse_admin("POST", f"/v1/deactivate/{q(user.user_id)}", {"erase": False})

    assert (
        db.query(
            "SELECT displayname, avatar_url FROM profiles WHERE full_user_id = ?", (user.user_id,)
        )
        == []
    )
    assert not media_path(synapse, avatar).exists() and media_rows(db, avatar) == 0
    assert media_path(synapse, other).is_file() and media_rows(db, other) == 1
    with pytest.raises(MatrixError) as taken:
        synapse.register_user(localpart)
    assert taken.value.errcode == "M_USER_IN_USE"


def _old_ip_rows(db: Database, cutoff: int) -> dict[str, int]:
    """Rows anywhere in Synapse that still hold an IP or user agent recorded by ``cutoff``."""
    return {
        "user_ips": count(db, "SELECT COUNT(*) FROM user_ips WHERE last_seen <= ?", (cutoff,)),
        "devices": count(
            db,
            "SELECT COUNT(*) FROM devices WHERE (ip IS NOT NULL OR user_agent IS NOT NULL)"
            " AND (last_seen IS NULL OR last_seen <= ?)",
            (cutoff,),
        ),
        "ui_auth_sessions_ips": count(
            db,
            "SELECT COUNT(*) FROM ui_auth_sessions_ips AS i JOIN ui_auth_sessions AS s"
            " ON s.session_id = i.session_id WHERE s.creation_time <= ?",
            (cutoff,),
        ),
        "user_daily_visits": count(
            db,
            "SELECT COUNT(*) FROM user_daily_visits WHERE user_agent IS NOT NULL"
            " AND timestamp <= ?",
            (cutoff,),
        ),
    }


def test_r9_no_ip_or_user_agent_older_than_6_months_remains_in_any_table(
    synapse: SynapseServer, admin: MatrixClient, unique: Callable[..., str]
) -> None:
    """Two sessions of one user: one recorded 6M + 1d ago, one 6M - 1d ago, in every
    table that holds IPs or user agents (docs/sessions-and-accounts.md lists them)."""
    db = synapse.db()
    localpart = unique("ip")
    registered = synapse.register_user(localpart)
    user_id = registered.user_id
    old, recent = (synapse.login(localpart, registered.password or "") for _ in range(2))
    for client in (old, recent):
        client.whoami()
    challenge = old.request("POST", "/_matrix/client/v3/account/password", json={})
    assert challenge.status_code == 401
    session = challenge.json()["session"]
    for client in (old, recent):
        wait_until_seen(db, client)
    now = now_ms()
    cutoff = now - IP_MS
    for client, ts in ((old, cutoff - DAY), (recent, cutoff + DAY)):
        db.execute(
            "UPDATE user_ips SET last_seen = ? WHERE user_id = ? AND device_id = ?",
            (ts, user_id, client.device_id),
        )
        db.execute(
            "UPDATE devices SET last_seen = ? WHERE user_id = ? AND device_id = ?",
            (ts, user_id, client.device_id),
        )
        db.execute(
            "INSERT INTO user_daily_visits (user_id, device_id, timestamp, user_agent)"
            " VALUES (?, ?, ?, 'Lux/1.0')",
            (user_id, client.device_id, ts),
        )
    db.execute(
        "UPDATE ui_auth_sessions SET creation_time = ? WHERE session_id = ?",
        (cutoff - DAY, session),
    )
    assert all(n > 0 for n in _old_ip_rows(db, cutoff).values()), _old_ip_rows(db, cutoff)

    sweep(admin, ["ip_logs"], as_of=now)

    assert _old_ip_rows(db, cutoff) == dict.fromkeys(_old_ip_rows(db, cutoff), 0)
    recent_rows = (user_id, recent.device_id)
    assert (
        count(db, "SELECT COUNT(*) FROM user_ips WHERE user_id = ? AND device_id = ?", recent_rows)
        == 1
    )
    assert (
        count(
            db,
            "SELECT COUNT(*) FROM devices WHERE user_id = ? AND device_id = ? AND ip IS NOT NULL",
            recent_rows,
        )
        == 1
    )
    assert (
        count(
            db,
            "SELECT COUNT(*) FROM user_daily_visits WHERE user_id = ? AND device_id = ?"
            " AND user_agent IS NOT NULL",
            recent_rows,
        )
        == 1
    )
    # The old session's activity itself stays: only its IP and user agent go.
    assert (
        count(
            db,
            "SELECT COUNT(*) FROM devices WHERE user_id = ? AND device_id = ? AND last_seen = ?",
            (user_id, old.device_id, cutoff - DAY),
        )
        == 1
    )
