"""The activity tracker on Synapse's hot path (R11, R12): memory only, batched writes.

Time: an injected clock (a list the test advances); nothing sleeps.
"""

from collections.abc import Mapping

import pytest
import pytest_twisted

from synapse_lux_privacy.features.accounts.tracker import WRITE_WINDOW_MS, ActivityTracker

T0 = 1_800_000_000_000


class FakeWriter:
    def __init__(self) -> None:
        self.batches: list[dict[str, int]] = []
        self.fail = False

    async def record_users(self, activity: Mapping[str, int]) -> None:
        if self.fail:
            raise RuntimeError("database unavailable")
        self.batches.append(dict(activity))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def tracker(own: bool = True) -> tuple[ActivityTracker, FakeWriter, Clock]:
    writer, clock = FakeWriter(), Clock()
    return ActivityTracker(writer, clock, lambda _user: own), writer, clock


@pytest_twisted.ensureDeferred
async def test_r12_requests_are_written_once_per_user_per_window() -> None:
    t, writer, clock = tracker()
    for _ in range(1000):
        assert await t.is_user_expired("@a:x") is None
        clock.now += 10
    await t.is_user_expired("@b:x")
    await t.flush()
    assert writer.batches == [{"@a:x": T0 + 9990, "@b:x": T0 + 10000}]

    # Within the window after the write: nothing pending, nothing written.
    clock.now = T0 + 9990 + WRITE_WINDOW_MS - 1
    await t.is_user_expired("@a:x")
    await t.flush()
    assert writer.batches[1:] == []

    # Once the window has passed, the next request is written again.
    clock.now += 1
    await t.is_user_expired("@a:x")
    assert t.pending_ts("@a:x") == clock.now
    await t.flush()
    assert writer.batches[1:] == [{"@a:x": clock.now}]


@pytest_twisted.ensureDeferred
async def test_r12_calls_outside_the_users_own_request_are_not_activity() -> None:
    """The pusher pool asks whether a user is expired before pushing to them."""
    t, writer, _ = tracker(own=False)
    assert await t.is_user_expired("@a:x") is None
    await t.flush()
    assert writer.batches == []
    assert t.pending_ts("@a:x") is None


@pytest_twisted.ensureDeferred
async def test_a_failed_flush_keeps_the_activity_for_the_next_one() -> None:
    t, writer, clock = tracker()
    t.note("@a:x")
    writer.fail = True
    with pytest.raises(RuntimeError):
        await t.flush()
    clock.now += 5
    t.note("@b:x")
    writer.fail = False
    await t.flush()
    assert writer.batches == [{"@a:x": T0, "@b:x": T0 + 5}]


@pytest_twisted.ensureDeferred
async def test_an_empty_flush_writes_nothing_and_forgets_old_writes() -> None:
    t, writer, clock = tracker()
    t.note("@a:x")
    await t.flush()
    clock.now += WRITE_WINDOW_MS + 1
    await t.flush()
    assert writer.batches == [{"@a:x": T0}]
    assert t._written == {}
