"""The module added to an existing server (first-start backfill), then sweeps "as of" the
future on it: who R11 and R12 never touch, devices never seen, erasure of media (R7, R8,
R11, R12, R13), on SQLite and PostgreSQL.

One server per database, booted twice: first without the module (users with a history),
then with it (``allow_future_sweeps: true``, an exempt pattern, an application service
and server notices sent by an account made before they were configured).

Time: the pre-existing history is backdated in Synapse's tables while Synapse is stopped
(``users.creation_ts``, ``devices.last_seen``, ``user_ips.last_seen``); the other tests
sweep "as of" a future instant (limit + 1 day, or limit - 1 day to show what stays).
The server's admin is on legal hold, so that these sweeps never log it out.
"""

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml

from tests.harness import (
    MatrixClient,
    MatrixError,
    PostgresCluster,
    SynapseServer,
    uid,
    wait_for,
)
from tests.harness.client import q
from tests.integration.test_accounts_rules import (
    ACCOUNT_MS,
    DAY,
    PNG,
    SESSION_MS,
    count,
    media_path,
    media_rows,
    now_ms,
    report,
    sweep,
    wait_until_seen,
)

pytestmark = pytest.mark.integration

EXEMPT = r"re:@exempt-[a-z0-9]+:lux\.test"
YEAR_AND_A_DAY = ACCOUNT_MS + DAY


@attrs.frozen
class ExistingServer:
    server: SynapseServer
    admin: MatrixClient
    as_token: str
    # What the first start recorded, read before any test swept: user -> last_active_ts.
    backfilled: dict[str, int]
    # The Synapse data it came from: user -> the time the test wrote there.
    evidence: dict[str, int]
    # The accounts rule's forecast "as of" the first start, and the reports then.
    forecast_candidates: int
    reports: dict[str, dict[str, Any]]


def _appservice(directory: Path) -> tuple[Path, str]:
    token = secrets.token_hex(16)
    registration = {
        "id": "luxbridge",
        "url": None,
        "as_token": token,
        "hs_token": secrets.token_hex(16),
        "sender_localpart": "luxbridge",
        "rate_limited": False,
        "namespaces": {
            "users": [{"exclusive": True, "regex": r"@bridge_.*:lux\.test"}],
            "aliases": [],
            "rooms": [],
        },
    }
    path = directory / "appservice.yaml"
    path.write_text(yaml.safe_dump(registration))
    return path, token


def _history(server: SynapseServer, admin: MatrixClient) -> dict[str, str]:
    """Users registered before the module, by kind of evidence of their activity."""
    db = server.db()
    users: dict[str, str] = {}
    for kind in ("idle", "device", "ips"):
        client = server.register_user(uid(kind))
        assert client.user_id is not None and client.device_id is not None
        users[kind] = client.user_id
        admin.synapse_admin(
            "DELETE", f"/v2/users/{q(client.user_id)}/devices/{q(client.device_id)}"
        )
        if kind != "idle":
            session = server.login(client.user_id, client.password or "")
            session.whoami()
            wait_until_seen(db, session)
            if kind == "ips":
                session.logout()  # the device goes, its IP log stays
    return users


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def existing(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ExistingServer]:
    database: str = request.param
    directory = tmp_path_factory.mktemp(f"accounts-{database}")
    pg_params = None
    if database == "postgres":
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        pg_params = cluster.create_database(uid("synapse_"))
    appservice, as_token = _appservice(directory)
    extra: dict[str, Any] = {"app_service_config_files": [str(appservice)]}
    home = directory / "hs"
    before = SynapseServer(home, database, pg_params, None, extra)  # type: ignore[arg-type]
    before.start()
    try:
        admin = before.register_user(uid("admin"), admin=True)
        # Synapse 1.163 sends server notices without a users row and reserves the name
        # once configured; an account made before is what the exemption protects.
        before.register_user("notices")
        users = _history(before, admin)
    finally:
        before.stop()

    # Backdate the history while Synapse is stopped (nothing in memory can overwrite it).
    now = now_ms()
    evidence = {
        users["idle"]: (now - 2 * ACCOUNT_MS) // 1000 * 1000,
        users["device"]: now - 10 * DAY,
        users["ips"]: now - 20 * DAY,
    }
    db = before.db()
    for user_id in users.values():
        db.execute(
            "UPDATE users SET creation_ts = ? WHERE name = ?",
            ((now - 2 * ACCOUNT_MS) // 1000, user_id),
        )
    db.execute(
        "UPDATE devices SET last_seen = ? WHERE user_id = ?",
        (evidence[users["device"]], users["device"]),
    )
    for user_id in (users["device"], users["ips"]):
        db.execute(
            "UPDATE user_ips SET last_seen = ? WHERE user_id = ?", (evidence[user_id], user_id)
        )
    assert count(db, "SELECT COUNT(*) FROM user_ips WHERE user_id = ?", (users["ips"],)) > 0
    db.close()

    module = {"allow_future_sweeps": True, "accounts": {"exempt": [EXEMPT]}}
    extra["server_notices"] = {"system_mxid_localpart": "notices"}
    server = SynapseServer(home, database, pg_params, module, extra)  # type: ignore[arg-type]
    server.start()
    try:
        admin = MatrixClient(server.base_url, admin.access_token, admin.user_id, admin.device_id)
        wait_for(
            lambda: (
                "lux_privacy_user_activity" in server.db().tables()
                and count(
                    server.db(),
                    "SELECT COUNT(*) FROM lux_privacy_user_activity WHERE user_id IN (?, ?, ?)",
                    tuple(users.values()),
                )
                == 3
            ),
            what="the first-start backfill",
        )
        rows = server.db().query(
            "SELECT user_id, last_active_ts FROM lux_privacy_user_activity"
            " WHERE user_id IN (?, ?, ?)",
            tuple(users.values()),
        )
        forecast = sweep(admin, ["accounts"], dry_run=True)["accounts"]["candidates"]
        reports = {u: report(admin, u) for u in users.values()}
        status, _ = admin.lux("PUT", "/holds/test-admin", {"user_id": admin.user_id, "reason": "t"})
        assert status == 201
        yield ExistingServer(
            server=server,
            admin=admin,
            as_token=as_token,
            backfilled={str(u): int(ts) for u, ts in rows},
            evidence=evidence,
            forecast_candidates=forecast,
            reports=reports,
        )
    finally:
        server.stop()


def _deactivated(admin: MatrixClient, user_id: str) -> bool:
    return bool(admin.synapse_admin("GET", f"/v2/users/{q(user_id)}")["deactivated"])


def _devices(admin: MatrixClient, user_id: str) -> set[str]:
    listing = admin.synapse_admin("GET", f"/v2/users/{q(user_id)}/devices")
    return {d["device_id"] for d in listing["devices"]}


def test_first_start_backfills_the_activity_record_from_synapse_data(
    existing: ExistingServer,
) -> None:
    """Registration only, a device's last_seen, or only an IP log: each user's record is
    the latest of them, so only the user idle since registering 2 years ago is due."""
    assert existing.backfilled == existing.evidence
    assert existing.forecast_candidates == 1
    for user_id, last_active in existing.evidence.items():
        report = existing.reports[user_id]
        assert report["last_active_ts"] == last_active
        assert report["account_deletion_due_ts"] >= last_active + ACCOUNT_MS


def test_r12_exempt_held_appservice_and_server_notices_users_are_kept(
    existing: ExistingServer, unique: Callable[..., str]
) -> None:
    """A sweep as of 1 year + 1 day from now: only the ordinary user goes. The exempt user
    keeps the account but not the idle session (R11 still applies); a held user (R13) keeps
    both; so does a member of a held room (the account; the session follows R11)."""
    server, admin = existing.server, existing.admin
    ordinary = server.register_user(unique("ordinary"))
    exempt = server.register_user(unique("exempt-"))
    held = server.register_user(unique("held"))
    member = server.register_user(unique("member"))
    room = member.create_room(name="inquiry")
    bridge_data = MatrixClient(server.base_url, existing.as_token).call(
        "POST",
        "/_matrix/client/v3/register",
        {"type": "m.login.application_service", "username": unique("bridge_")},
    )
    admin.synapse_admin(
        "POST",
        "/v1/send_server_notice",
        {"user_id": exempt.user_id, "content": {"msgtype": "m.text", "body": "Bonjour"}},
    )
    notices = f"@notices:{server.server_name}"
    user_hold, room_hold = unique("case"), unique("room")
    assert admin.lux("PUT", f"/holds/{user_hold}", {"user_id": held.user_id, "reason": "c"})[0]
    assert admin.lux("PUT", f"/holds/{room_hold}", {"room_id": room, "reason": "c"})[0] == 201
    try:
        results = sweep(admin, ["sessions", "accounts"], as_of=now_ms() + YEAR_AND_A_DAY)
        assert results["accounts"]["held"] >= 1 and results["sessions"]["held"] >= 1
        assert _deactivated(admin, ordinary.user_id or "")
        for user_id in (exempt.user_id, held.user_id, member.user_id, bridge_data["user_id"]):
            assert not _deactivated(admin, user_id or ""), user_id
        assert not _deactivated(admin, notices) and len(_devices(admin, notices)) == 1
        assert _devices(admin, exempt.user_id or "") == set()
        assert _devices(admin, member.user_id or "") == set()
        assert _devices(admin, held.user_id or "") == {held.device_id}
        assert _devices(admin, bridge_data["user_id"]) == {bridge_data["device_id"]}
        assert report(admin, exempt.user_id or "")["account_deletion_due_ts"] is None
        assert report(admin, held.user_id or "")["sessions"][0]["logout_due_ts"] is None
    finally:
        admin.lux("DELETE", f"/holds/{user_hold}")
        admin.lux("DELETE", f"/holds/{room_hold}")


def test_r11_a_device_synapse_never_saw_counts_from_when_the_module_first_saw_it(
    existing: ExistingServer, unique: Callable[..., str]
) -> None:
    """A device logged in and never used (null last_seen): kept as of 6M - 1d after the
    login (when the module recorded it), logged out as of 6M + 1d."""
    server, admin, db = existing.server, existing.admin, existing.server.db()
    localpart = unique("never")
    registered = server.register_user(localpart)
    phone = server.login(localpart, registered.password or "")
    row = db.query_one(
        "SELECT a.first_seen_ts, d.last_seen FROM lux_privacy_device_activity AS a"
        " JOIN devices AS d ON d.user_id = a.user_id AND d.device_id = a.device_id"
        " WHERE a.user_id = ? AND a.device_id = ?",
        (phone.user_id, phone.device_id),
    )
    assert row is not None and row[1] is None
    first_seen = int(row[0])
    assert abs(first_seen - now_ms()) < 60_000

    sweep(admin, ["sessions"], as_of=first_seen + SESSION_MS - DAY)
    assert phone.device_id in _devices(admin, phone.user_id or "")
    sweep(admin, ["sessions"], as_of=first_seen + SESSION_MS + DAY)
    assert phone.device_id not in _devices(admin, phone.user_id or "")


def test_r12_erases_profile_avatar_and_every_upload_and_keeps_the_id_reserved(
    existing: ExistingServer, unique: Callable[..., str]
) -> None:
    """As of 1 year + 1 day from now: deactivated with erasure, every upload deleted
    (avatar included, files and rows), the ID never registrable again (R8)."""
    server, admin, db = existing.server, existing.admin, existing.server.db()
    localpart = unique("erase")
    user = server.register_user(localpart, displayname="Jean Dupont")
    avatar = user.upload_media(PNG, "image/png", "me.png")
    voice = user.upload_media(b"OggS" + b"\0" * 60, "audio/ogg", "voice.ogg")
    user.set_avatar_url(avatar)
    user.create_room(name="family")

    results = sweep(admin, ["sessions", "accounts"], as_of=now_ms() + YEAR_AND_A_DAY)

    assert results["accounts"]["bytes"] >= len(PNG) + 64
    info = admin.synapse_admin("GET", f"/v2/users/{q(user.user_id or '')}")
    assert (info["deactivated"], info["erased"]) == (True, True)
    assert db.query("SELECT 1 FROM profiles WHERE full_user_id = ?", (user.user_id,)) == []
    for mxc in (avatar, voice):
        assert media_rows(db, mxc) == 0 and not media_path(server, mxc).exists()
    with pytest.raises(MatrixError) as taken:
        server.register_user(localpart)
    assert taken.value.errcode == "M_USER_IN_USE"
    assert (
        db.query("SELECT 1 FROM lux_privacy_user_activity WHERE user_id = ?", (user.user_id,)) == []
    )
