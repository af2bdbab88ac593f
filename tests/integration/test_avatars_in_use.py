"""Avatars in use stay past their upload's lifetime (R2, R7), whichever table names them.

This module owns its homeserver (one per database): the sweep here really deletes.
Time: uploads are backdated in the database (``local_media_repository.created_ts``)
to 13 months before now, past the attachments' 12; the sweep runs "as of" now.
"""

import time
from collections.abc import Iterator

import pytest

from tests.conftest import DATABASES
from tests.harness import SynapseServer, uid, wait_for
from tests.integration.test_content_support import (
    MONTH,
    backdate_media,
    local_media_rows,
    own_content_server,
    png,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=DATABASES, ids=DATABASES)
def hs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SynapseServer]:
    """This module's own homeserver (destructive sweeps never touch the shared one)."""
    yield from own_content_server(request, tmp_path_factory, "avatars")


def test_r7_every_avatar_in_use_stays_and_former_ones_go(hs: SynapseServer) -> None:
    """Five uploads of one user, all 13 months old: her profile avatar (``profiles``,
    ``user_directory``), her current per-room avatar in one room (only in that room's
    current member event), and the room's avatar (``room_stats_state``) stay and
    download; her former per-room avatar and a plain upload go. The per-room avatar is
    named by none of the tables asked before ``room_memberships``."""
    db = hs.db()
    admin = hs.register_user(uid("admin"), admin=True)
    alice = hs.register_user(uid("alice"))
    user_id = str(alice.user_id)
    room = alice.create_room()
    profile, per_room, former, room_avatar, plain = (
        alice.upload_media(png(), "image/png") for _ in range(5)
    )
    alice.set_avatar_url(profile)
    alice.send_state(room, "m.room.member", {"membership": "join", "avatar_url": former}, user_id)
    alice.send_state(room, "m.room.member", {"membership": "join", "avatar_url": per_room}, user_id)
    alice.send_state(room, "m.room.avatar", {"url": room_avatar})
    # Synapse's stats handler writes room_stats_state after the event, in the background.
    stats = "SELECT avatar FROM room_stats_state WHERE room_id = ?"
    wait_for(lambda: db.query(stats, (room,)) == [(room_avatar,)], 30, "the room's avatar")
    for mxc in (profile, per_room, former, room_avatar, plain):
        backdate_media(db, mxc, int(time.time() * 1000) - 13 * MONTH)

    status, report = admin.lux("POST", "/sweep", {"rules": ["attachments"]})

    assert status == 200, report
    assert report["results"]["attachments"]["deleted"] == 2
    for mxc in (profile, per_room, room_avatar):
        assert local_media_rows(db, mxc)[0] == 1, mxc
        assert alice.download_media(mxc).status_code == 200, mxc
    for mxc in (former, plain):
        assert local_media_rows(db, mxc)[0] == 0, mxc
