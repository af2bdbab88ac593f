"""The adaptive pace's controller, its probe and the pacer (R1-R12 deletions beside users).

Pure logic: probe latencies and batch times are given as numbers, the probe's clock is
injected (a list of readings), and sleeps are recorded, never slept.
"""

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from synapse_lux_privacy.config import AdaptivePaceConfig
from synapse_lux_privacy.sweep.pace import (
    FIRST_GAP,
    MAX_GAP,
    PROBE_SLACK_S,
    START_SIZE,
    AdaptivePace,
)
from synapse_lux_privacy.sweep.pacer import START_PROBES, Pacer
from synapse_lux_privacy.sweep.probe import POLLS_PER_PROBE, PROBE_INTERVAL_S, LoadProbe
from tests.unit.orchestrators import drive

ON = AdaptivePaceConfig(enabled=True, max_slowdown=1.5, min_pace=1.0, rest=2.0)
IDLE = 0.002  # seconds of an idle probe
HURT = [0.050]  # a batch's probes when it slowed the database down
FINE = [0.0025]  # within 1.5 x idle


def controller(max_size: int = 500, max_pace: float | None = None) -> AdaptivePace:
    pace = AdaptivePace(ON, max_size, max_pace)
    for _ in range(5):
        pace.idle_probe(IDLE)
    return pace


def test_r1_r12_a_batch_that_slows_the_database_halves_the_next_and_lengthens_the_pause() -> None:
    pace = controller()
    assert pace.size == START_SIZE
    pauses = [pace.batch_done(pace.size, 0.1, HURT) for _ in range(3)]
    assert pace.size == START_SIZE // 8 == 1
    # A pause in proportion to the batch's time, doubling while batches keep hurting.
    assert pauses == pytest.approx([0.1 * FIRST_GAP, 0.2 * FIRST_GAP, 0.4 * FIRST_GAP])
    assert pace.hurt_batches == 3
    for _ in range(20):
        pace.batch_done(1, 0.001, HURT)
    assert pace.size == 1, "never below one item"
    assert pace.gap == MAX_GAP, "the pause per second of deletion is bounded"


def test_r1_r12_batches_that_do_not_hurt_grow_back_and_the_pause_fades() -> None:
    pace = controller(max_size=40)
    pace.batch_done(pace.size, 0.1, HURT)
    assert (pace.size, pace.gap) == (5, FIRST_GAP)
    sizes, pauses = [], []
    for _ in range(40):
        pauses.append(pace.batch_done(pace.size, 0.1, FINE))
        sizes.append(pace.size)
    assert sizes[:4] == [6, 7, 8, 10]
    assert sizes == sorted(sizes) and sizes[-1] == 40, "up to sweep_batch_size, no further"
    assert pauses[0] == pytest.approx(0.1 * FIRST_GAP * 0.9)
    assert pauses == sorted(pauses, reverse=True) and pauses[-1] == 0.0
    assert pace.hurt_batches == 1


def test_r1_r12_the_threshold_is_max_slowdown_times_the_median_idle_probe() -> None:
    pace = controller()
    limit = 1.5 * IDLE + PROBE_SLACK_S
    assert not pace.hurt([limit * 0.99]) and pace.hurt([0.001, limit * 1.01, limit * 1.02])
    assert not pace.hurt([0.001, 0.001, 0.5]), "one slow probe among fast ones is noise"
    # The users' own load raises the idle probes: the threshold follows them.
    for _ in range(30):
        pace.idle_probe(0.040)
    assert pace.baseline() == 0.040
    assert not pace.hurt([0.050])


def test_r1_r12_no_back_off_before_a_baseline_or_without_probes() -> None:
    pace = AdaptivePace(ON, 500)
    assert pace.baseline() is None
    pace.batch_done(10, 1.0, HURT)
    assert pace.hurt_batches == 0
    assert not controller().hurt([])


def test_r1_r12_the_pause_never_takes_the_sweep_below_min_pace_and_sweep_pace_caps_it() -> None:
    pace = controller()
    for _ in range(10):
        pace.batch_done(1, 0.01, HURT)
    # gap 100 would pause 10 s after 0.1 s of work; min_pace 1/s allows 10 items in 10 s.
    assert pace.batch_done(1, 0.1, HURT) == pytest.approx(1 / ON.min_pace - 0.1)
    assert pace.batch_done(1, 2.0, HURT) == 0.0, "a batch slower than min_pace: no pause"
    capped = controller(max_pace=5.0)
    # Nothing hurts and no pause is due, but 10 items at 5/s take at least 2 s.
    assert capped.batch_done(10, 0.5, FINE) == pytest.approx(1.5)
    assert controller(max_size=3).size == 3


def test_r1_r12_each_step_rests_rest_times_its_own_time_never_below_min_pace() -> None:
    """Issue 22: a purge is followed by ``rest`` times its time (2 here), whatever the
    probes say; a step slower than ``min_pace`` allows is followed by none."""
    pace = controller()
    assert pace.rest_after(1, 0.1) == pytest.approx(0.2)
    assert pace.rest_after(1, 0.6) == pytest.approx(1 / ON.min_pace - 0.6), "min_pace bounds it"
    assert pace.rest_after(1, 2.0) == 0.0
    assert pace.rest_after(100, 0.1) == pytest.approx(0.2)
    for _ in range(10):
        pace.batch_done(1, 0.01, HURT)
    assert pace.rest_after(100, 0.1) == pytest.approx(0.2), "the rest does not follow the harm"
    resting = AdaptivePace(AdaptivePaceConfig(rest=0.0), 500)
    assert resting.rest_after(100, 0.1) == 0.0


def test_r1_r12_the_pacer_rests_after_each_step_but_never_in_a_dry_run_or_unpaced() -> None:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def purge() -> str:
        return "purged"

    probe = LoadProbe(FakeDb(), spawn, _no_sleep, readings())
    pacer = Pacer(
        500,
        None,
        ON,
        probe,
        sleep,
        False,
        readings(10.0, 10.25, 10.25, 10.75, 20.0, 20.1, 20.1, 20.3),
    )
    assert drive(pacer.step(5, purge)) == "purged"
    assert drive(pacer.step(5, purge)) == "purged"
    assert sleeps == pytest.approx([0.5, 0.2])
    off = AdaptivePaceConfig(enabled=False)
    for quiet in (
        Pacer(500, None, ON, probe, sleep, True),
        Pacer(500, None, off, probe, sleep, False),
    ):
        assert drive(quiet.step(5, purge)) == "purged"
    assert len(sleeps) == 2, "a dry run and an unpaced sweep never rest"


def test_r1_r12_a_batch_rests_after_its_finding_and_bookkeeping_never_below_min_pace() -> None:
    """Issue 22: what a batch spends neither in steps nor in pauses (finding it, the
    holds, the audit) is followed by ``rest`` times its time too, bounded so that the
    batch as a whole stays at or above ``min_pace``; none when the steps do not rest.
    Time: an injected clock (readings), sleeps recorded."""
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def purge() -> None:
        return None

    probe = LoadProbe(FakeDb(), spawn, _no_sleep, readings())
    # Begins at 0.0; a step from 0.1 to 0.2, its rest from 0.2 to 0.4; the batch ends
    # at 0.5: 0.5 - 0.1 (step) - 0.2 (rest) = 0.2 s of other work, so a rest of 0.4.
    clock = readings(0.0, 0.1, 0.2, 0.2, 0.4, 0.5, 0.5, 0.9)
    pacer = Pacer(500, None, ON, probe, sleep, False, clock)
    pacer.begin_batch()
    drive(pacer.step(5, purge))
    drive(pacer.end_batch(5))
    assert sleeps == pytest.approx([0.2, 0.4])
    # One item at min_pace 1: the batch may last 1 s. A step from 0.1 to 0.5 (its rest
    # bounded to 0.6, timed from 0.5 to 1.0) leaves no time for a rest after the batch.
    sleeps.clear()
    clock = readings(0.0, 0.1, 0.5, 0.5, 1.0, 1.0)
    pacer = Pacer(500, None, ON, probe, sleep, False, clock)
    pacer.begin_batch()
    drive(pacer.step(1, purge))
    drive(pacer.end_batch(1))
    assert sleeps == pytest.approx([0.6])
    # A batch without steps (a quota eviction's) does not rest.
    sleeps.clear()
    pacer = Pacer(500, None, ON, probe, sleep, False, readings(0.0, 5.0))
    pacer.begin_batch()
    drive(pacer.end_batch(5))
    assert sleeps == []
    sleeps.clear()
    off = AdaptivePaceConfig(enabled=True, rest=0.0)
    for quiet in (
        Pacer(500, None, ON, probe, sleep, True, readings(0.0, 5.0)),
        Pacer(500, None, off, probe, sleep, False, readings(0.0, 5.0)),
    ):
        quiet.begin_batch()
        drive(quiet.end_batch(5))
    assert sleeps == [], "a dry run and steps without rests never rest after a batch"


class FakeDb:
    """Answers the probe's query at once; the probe's clock gives its time."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    async def __call__(self, desc: str, func: Callable[..., Any], *args: Any) -> Any:
        self.queries.append(desc)


def readings(*values: float) -> Callable[[], float]:
    """A clock that returns ``values`` in turn."""
    it = iter(values)
    return lambda: next(it)


def spawn(func: Callable[[], Awaitable[None]]) -> object:
    drive(func())  # type: ignore[arg-type]
    return None


def test_r1_r12_a_probe_is_one_query_through_the_pool_timed_by_the_clock() -> None:
    db = FakeDb()
    probe = LoadProbe(db, spawn, _no_sleep, readings(10.0, 10.25))
    assert drive(probe.once()) == 0.25
    assert db.queries == ["lux_privacy_load_probe"]


async def _no_sleep(seconds: float) -> None:
    raise AssertionError("nothing should sleep here")


def test_r1_r12_probes_are_taken_until_the_work_ends_and_its_error_is_raised() -> None:
    db = FakeDb()
    done: list[str] = []

    async def work() -> None:
        done.append("deleted")

    # The work ends at once (spawned first): one probe, taken while it ran.
    probe = LoadProbe(db, spawn, _no_sleep, readings(0.0, 0.03))
    assert drive(probe.during(work)) == [0.03] and done == ["deleted"]

    async def failing() -> None:
        raise RuntimeError("purge failed")

    with pytest.raises(RuntimeError, match="purge failed"):
        drive(LoadProbe(db, spawn, _no_sleep, readings(0.0, 0.01)).during(failing))


def test_r1_r12_probes_repeat_every_interval_while_the_work_lasts() -> None:
    """A spawn that keeps the work pending until the first check after the second probe:
    two probes, an interval's checks between them, and one more."""
    db = FakeDb()
    sleeps: list[float] = []
    pending: list[Callable[[], Awaitable[None]]] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == POLLS_PER_PROBE + 1:
            drive(pending.pop()())

    async def work() -> None:
        return None

    def later(func: Callable[[], Awaitable[None]]) -> object:
        pending.append(func)
        return None

    probe = LoadProbe(db, later, sleep, readings(0, 0.1, 1, 1.2, 2, 2.3))
    samples = drive(probe.during(work))
    assert samples == pytest.approx([0.1, 0.2])
    assert sleeps == [PROBE_INTERVAL_S / POLLS_PER_PROBE] * (POLLS_PER_PROBE + 1)


def test_r1_r12_the_pacer_probes_the_baseline_first_and_pauses_after_a_batch_that_hurt() -> None:
    db = FakeDb()
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    # Start: three idle probes of 2 ms. Batch: began 100.0, probe 50 ms, done at 100.1;
    # then the pause (timed from 100.1 to 100.2).
    probe_clock = readings(0, IDLE, 0, IDLE, 0, IDLE, 1, 1.05, 2, 2 + IDLE)
    probe = LoadProbe(db, spawn, sleep, probe_clock)
    clock = readings(100.0, 100.1, 100.1, 100.1, 100.2)
    pacer = Pacer(500, None, ON, probe, sleep, False, clock)
    drive(pacer.start())
    assert db.queries == ["lux_privacy_load_probe"] * START_PROBES
    assert pacer.batch_size() == START_SIZE

    async def work() -> None:
        return None

    drive(pacer.delete(10, work))
    assert pacer.batch_size() == START_SIZE // 2
    assert sleeps == pytest.approx([0.1 * FIRST_GAP])
    assert len(db.queries) == START_PROBES + 2, "one probe during the batch, one after"


def test_r1_r12_dry_runs_and_disabled_adaptive_pace_never_probe() -> None:
    db = FakeDb()
    probe = LoadProbe(db, spawn, _no_sleep, readings())
    for pacer in (
        Pacer(500, None, ON, probe, _no_sleep, True),
        Pacer(500, None, AdaptivePaceConfig(enabled=False), probe, _no_sleep, False),
    ):
        drive(pacer.start())
        assert pacer.batch_size() == 500 and pacer.controller is None

        async def work() -> None:
            return None

        drive(pacer.delete(10, work))
    assert db.queries == []
    off = AdaptivePaceConfig(enabled=False)
    assert Pacer(500, 20.0, off, None, _no_sleep, False).batch_size() == 20
    assert Pacer(500, 20.0, ON, probe, _no_sleep, True).batch_size() == 500, "dry run: no pace"
