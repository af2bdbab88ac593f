"""The purge window (R1, R3 "at the latest", R13) over the fake Synapse of
``test_content_messages_rule``: a purge that takes a due message also takes what falls
due within ``retention.purge_window``, and nothing goes early for a purge that takes
nothing due. Time: events carry explicit timestamps and each sweep an explicit "as
of"; the steady state advances "as of" an hour per sweep; no clock.
"""

import pytest_twisted

from synapse_lux_privacy.config import parse_config
from synapse_lux_privacy.features.content.messages import MessagesRule
from synapse_lux_privacy.features.content.policy import ContentPolicy
from synapse_lux_privacy.store.holds import HoldSet
from synapse_lux_privacy.units import DAY_MS, HOUR_MS, MONTH_MS
from tests.unit.test_content_messages_rule import (
    OLD,
    FakeExpunger,
    FakeSynapse,
    ids,
    module_db,
    run,
    synapse,
)

__all__ = ["synapse"]  # the fixture, used by name

LIFETIME = 24 * MONTH_MS  # retention.messages, the default


def windowed(fake: FakeSynapse, window: str) -> MessagesRule:
    policy = ContentPolicy(parse_config({"retention": {"purge_window": window}}).retention)
    return MessagesRule(object(), module_db(), "sqlite", policy, FakeExpunger(fake))  # type: ignore[arg-type]


def room_of_four(fake: FakeSynapse, room: str = "A") -> list[str]:
    """A room at "as of" ``OLD + LIFETIME``: one message due now, one due in 12 hours, one
    in 2 days, and the newest (the extremity, which stays)."""
    offsets = (0, 12 * HOUR_MS, 2 * DAY_MS)
    events = [fake.add(room, "@alice:x", depth, ts=OLD + off)
              for depth, off in enumerate(offsets, 1)]  # fmt: skip
    fake.add(room, "@alice:x", 4, ts=OLD + 30 * DAY_MS)
    return events


@pytest_twisted.ensureDeferred
async def test_r1_a_purge_takes_what_falls_due_within_the_window_and_no_more(
    synapse: FakeSynapse,
) -> None:
    """Window 1d: the purge that takes the due message also takes the one due in 12 hours,
    not the one due in 2 days; the dry run counts the same. Window 0 (the default) takes
    only the due one."""
    due, in_window, later = room_of_four(synapse)
    forecast, _ = await run(synapse, HoldSet(), dry_run=True, batch=10,
                            r=windowed(synapse, "1d"), as_of=OLD + LIFETIME)  # fmt: skip
    seen, deleted = await run(synapse, HoldSet(), dry_run=False, batch=10,
                              r=windowed(synapse, "1d"), as_of=OLD + LIFETIME)  # fmt: skip
    assert ids(forecast) == ids(seen) == ids(deleted) == [due, in_window]
    assert [(room, n) for room, _, n in synapse.purges] == [("A", 2)]
    assert later in synapse.rows and later not in synapse.expunged

    kept = room_of_four(synapse, "B")
    _, deleted = await run(synapse, HoldSet(), dry_run=False, batch=10,
                           r=windowed(synapse, "0d"), as_of=OLD + LIFETIME)  # fmt: skip
    assert ids(deleted) == kept[:1]


@pytest_twisted.ensureDeferred
async def test_r1_nothing_goes_early_when_nothing_in_the_room_is_due(
    synapse: FakeSynapse,
) -> None:
    """An hour before the oldest message is due, the window covers two of them. The room
    is judged (its old name, a replaced state event, is due) but no purge runs: only the
    old name is expunged."""
    events = room_of_four(synapse)
    old_name = synapse.add("A", "@alice:x", 1, ts=OLD - 10 * DAY_MS, state=True)
    synapse.add("A", "@alice:x", 2, ts=OLD - 9 * DAY_MS, state=True, current=True)
    an_hour_early = OLD + LIFETIME - HOUR_MS
    seen, deleted = await run(synapse, HoldSet(), dry_run=False, batch=10,
                              r=windowed(synapse, "1d"), as_of=an_hour_early)  # fmt: skip
    assert ids(seen) == ids(deleted) == [old_name]
    assert synapse.purges == [] and synapse.expunged == {old_name}
    assert set(events) <= set(synapse.rows)


@pytest_twisted.ensureDeferred
async def test_r1_a_room_whose_window_does_not_fit_what_is_left_of_a_batch_waits_whole(
    synapse: FakeSynapse,
) -> None:
    """Batches of 3: room A's due message comes first; room B's due message and the two
    within its window do not fit in what A left, so B waits for the next batch and is
    purged once, with all three (not its due one alone, then the rest a day later)."""
    synapse.add("A", "@alice:x", 1, ts=OLD)
    synapse.add("A", "@alice:x", 2, ts=OLD + 30 * DAY_MS)
    b = [synapse.add("B", "@alice:x", d, ts=OLD + (d - 1) * HOUR_MS) for d in (1, 2, 3)]
    synapse.add("B", "@alice:x", 4, ts=OLD + 30 * DAY_MS)
    _, deleted = await run(synapse, HoldSet(), dry_run=False, batch=3,
                           r=windowed(synapse, "1d"), as_of=OLD + LIFETIME)  # fmt: skip
    assert set(b) <= set(ids(deleted))
    assert [(room, n) for room, _, n in synapse.purges] == [("A", 1), ("B", 3)]


@pytest_twisted.ensureDeferred
async def test_r13_a_held_users_message_in_the_window_stops_the_purge(
    synapse: FakeSynapse,
) -> None:
    """Bob is held: his message, due within the window, stays, and so does the message
    above it; only the due one before it goes."""
    due = synapse.add("A", "@alice:x", 1, ts=OLD)
    bobs = synapse.add("A", "@bob:x", 2, ts=OLD + HOUR_MS)
    above = synapse.add("A", "@alice:x", 3, ts=OLD + 2 * HOUR_MS)
    synapse.add("A", "@alice:x", 4, ts=OLD + 30 * DAY_MS)
    held = HoldSet(user_ids=frozenset({"@bob:x"}))
    _, deleted = await run(synapse, held, dry_run=False, batch=10,
                           r=windowed(synapse, "1d"), as_of=OLD + LIFETIME)  # fmt: skip
    assert ids(deleted) == [due]
    assert {bobs, above} <= set(synapse.rows) and not {bobs, above} & synapse.expunged


async def hourly_week(fake: FakeSynapse, room: str, window: str) -> int:
    """``room`` receives a message an hour for 9 days; sweeps run hourly for a week from
    when its first message falls due ("as of" advanced an hour per sweep, the same rule
    and scan marks throughout). After each sweep nothing due is left and nothing went
    before its time minus the window. The number of the room's purges."""
    sent = {fake.add(room, "@alice:x", n + 1, ts=OLD + n * HOUR_MS): OLD + n * HOUR_MS
            for n in range(9 * 24)}  # fmt: skip
    width = parse_config({"retention": {"purge_window": window}}).retention.purge_window_ms
    r = windowed(fake, window)
    newest = max(sent, key=sent.__getitem__)
    for hour in range(7 * 24):
        as_of = OLD + LIFETIME + hour * HOUR_MS
        await run(fake, HoldSet(), dry_run=False, batch=100, r=r, as_of=as_of)
        for event_id, ts in sent.items():
            if event_id in fake.rows:
                assert ts + LIFETIME > as_of or event_id == newest, "left past its time"
            else:
                assert ts + LIFETIME <= as_of + width, "went before its time minus the window"
    return sum(1 for purged, _, _ in fake.purges if purged == room)


@pytest_twisted.ensureDeferred
async def test_r1_an_active_room_is_purged_once_per_window_not_once_per_sweep(
    synapse: FakeSynapse,
) -> None:
    """The steady state of hourly sweeps over a week: without a window, one purge per
    sweep (168); with 1d, at most one a day (7: each purge takes the 25 messages of
    hours h to h + 24, both included, so the next one runs 25 hours later); with 6h,
    one every 7 hours (24)."""
    assert await hourly_week(synapse, "A", "0d") == 7 * 24
    assert await hourly_week(synapse, "B", "1d") == 7
    assert await hourly_week(synapse, "C", "6h") == 24
