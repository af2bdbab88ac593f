"""The purge window (R1, R3 "at the latest") on a real Synapse, SQLite and PostgreSQL.

This module's own homeserver runs with ``retention.purge_window: 1d``. Time: each
test backdates its own events (``events.origin_server_ts``/``received_ts``) into its
own era, then sweeps "as of" times in that era, an hour apart for the steady state.
Purges are counted from the rule's log line, one per purge.
"""

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import DATABASES
from tests.harness import MatrixClient, SynapseServer, uid
from tests.integration.test_content_support import (
    HOUR,
    MODULE_CONFIG,
    MONTH,
    backdate_events,
    era,
    own_content_server,
    stored_events,
    sweep,
)

pytestmark = pytest.mark.integration

LIFETIME = 24 * MONTH  # retention.messages, the default
WINDOWED: dict[str, Any] = {
    **MODULE_CONFIG,
    "sweep_batch_size": 100,
    "retention": {**MODULE_CONFIG["retention"], "purge_window": "1d"},
}


@pytest.fixture(scope="module", params=DATABASES, ids=DATABASES)
def hs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SynapseServer]:
    yield from own_content_server(request, tmp_path_factory, "window", WINDOWED)


@pytest.fixture
def hs_admin(hs: SynapseServer) -> MatrixClient:
    return hs.register_user(uid("admin"), admin=True)


def room_with_messages(hs: SynapseServer, count: int) -> tuple[MatrixClient, str, list[str]]:
    """A new room with ``count`` messages and one more, the newest, that stays."""
    alice = hs.register_user(uid("alice"))
    room = alice.create_room()
    sent = [alice.send_message(room, f"m{n}") for n in range(count)]
    alice.send_message(room, "newest")
    return alice, room, sent


def purges(hs: SynapseServer, room: str) -> int:
    return hs.log_text().count(f"lux_privacy: purged {room} below depth")


def test_r1_a_purge_takes_what_falls_due_within_a_day_and_nothing_goes_for_no_purge(
    hs: SynapseServer, hs_admin: MatrixClient
) -> None:
    """Era 1: six messages six hours apart. An hour before the first is due, nothing goes
    (the window would cover four of them, but nothing is due). When the first is due,
    one purge takes it and the next four (due within 24 hours, the last one exactly at
    the window's end); the sixth, due in 30 hours, stays; the dry run counted the same."""
    db = hs.db()
    _, room, sent = room_with_messages(hs, 6)
    base = era(1)
    for n, event_id in enumerate(sent):
        backdate_events(db, [event_id], base + n * 6 * HOUR)

    early = sweep(hs_admin, base + LIFETIME - HOUR, ["messages"])
    assert early["messages"]["candidates"] == 0
    assert stored_events(db, sent) == set(sent)
    forecast = sweep(hs_admin, base + LIFETIME, ["messages"], dry_run=True)
    done = sweep(hs_admin, base + LIFETIME, ["messages"])
    assert forecast["messages"]["candidates"] == done["messages"]["deleted"] == 5
    assert stored_events(db, sent) == {sent[5]}
    assert purges(hs, room) == 1


def test_r1_an_active_rooms_hourly_sweeps_purge_it_once_a_day(
    hs: SynapseServer, hs_admin: MatrixClient
) -> None:
    """Era 2: a message an hour for 60 hours; sweeps every hour for 48 hours from when
    the first is due. Two purges (hours 0 and 25, each taking 25 messages), where the
    same sweeps without a window purge the room at each of the 48 (the unit test
    ``test_content_purge_window``); after each sweep nothing due is left, and nothing
    went more than a day before its time."""
    db = hs.db()
    _, room, sent = room_with_messages(hs, 60)
    base = era(2)
    for n, event_id in enumerate(sent):
        backdate_events(db, [event_id], base + n * HOUR)
    for hour in range(48):
        as_of = base + LIFETIME + hour * HOUR
        sweep(hs_admin, as_of, ["messages"])
        stored = stored_events(db, sent)
        for n, event_id in enumerate(sent):
            sent_at = base + n * HOUR
            if event_id in stored:
                assert sent_at + LIFETIME > as_of, (hour, n, "left past its time")
            else:
                assert sent_at + LIFETIME <= as_of + 24 * HOUR, (hour, n, "went too early")
    assert purges(hs, room) == 2
