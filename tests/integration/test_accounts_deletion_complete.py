"""An R12 account deletion is complete when the sweep says so (R12, R7), on SQLite and
PostgreSQL: Synapse has parted the user from every room, and each avatar file was
deleted once.

Time: the user's registration time and the module's last activity are backdated to
1y + 1d ago (their only device deleted first, so no session holds the date back); the
sweep runs "as of" the test's own "now" on the accounts rule only.
"""

from collections.abc import Callable

import pytest

from tests.harness import MatrixClient, SynapseServer
from tests.harness.client import q
from tests.integration.test_accounts_rules import (
    ACCOUNT_MS,
    DAY,
    PNG,
    backdate_user,
    media_path,
    media_rows,
    now_ms,
    sweep,
)

pytestmark = pytest.mark.integration


def test_r12_deleted_account_is_parted_from_all_its_rooms_when_the_sweep_returns(
    synapse: SynapseServer, admin: MatrixClient, unique: Callable[..., str]
) -> None:
    """A user in four rooms, with a display name and an avatar shown in each: right after
    the sweep, no room lists them as joined; the avatar file went once (no warning from
    Synapse's media repository in the log)."""
    db = synapse.db()
    owner = synapse.register_user(unique("owner"))
    gone = synapse.register_user(unique("gone"), displayname="Jean Dupont")
    assert gone.user_id is not None and gone.device_id is not None
    avatar = gone.upload_media(PNG, "image/png", "me.png")
    gone.set_avatar_url(avatar)
    rooms = [owner.create_room(name=f"r{i}", invite=[gone.user_id]) for i in range(4)]
    for room_id in rooms:
        gone.join(room_id)
        members = owner.call("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/joined_members")
        assert members["joined"][gone.user_id]["display_name"] == "Jean Dupont"
    admin.synapse_admin("DELETE", f"/v2/users/{q(gone.user_id)}/devices/{q(gone.device_id)}")
    now = now_ms()
    backdate_user(db, gone.user_id, now - ACCOUNT_MS - DAY)
    log_start = len(synapse.log_text())

    results = sweep(admin, ["accounts"], as_of=now)

    assert results["accounts"]["deleted"] >= 1
    for room_id in rooms:
        members = owner.call("GET", f"/_matrix/client/v3/rooms/{q(room_id)}/joined_members")
        assert gone.user_id not in members["joined"], room_id
    assert not media_path(synapse, avatar).exists() and media_rows(db, avatar) == 0
    log = synapse.log_text()[log_start:]
    assert "User parter finished parting " + repr(gone.user_id) in log
    assert "Failed to remove file" not in log
