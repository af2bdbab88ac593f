"""The cost model of a sweep's time (R1-R12 sweeps; ``sweep/cost_model.py``): pure logic
over injected counts, unit costs and pace settings (no server, no clock)."""

import attrs
import pytest

from synapse_lux_privacy.sweep.cost_model import (
    BENCHMARK_COSTS,
    BENCHMARK_SOURCE,
    Pace,
    RecordedRule,
    RuleWork,
    UnitCost,
    calibrate,
    estimate,
    estimate_rule,
    purges,
)
from synapse_lux_privacy.sweep.pace import MAX_GAP

UNPACED = Pace(batch_size=500)
PURGE_50MS = UnitCost((0.0, 0.0), (0.05, 0.05), "test")


def test_r1_the_messages_rule_costs_per_purge_not_per_event() -> None:
    """1,000 due events in 50 rooms at 50 ms a purge: 2.5 s, whatever the events."""
    few = estimate_rule(RuleWork("messages", 1_000, rooms=50), UNPACED, PURGE_50MS)
    many = estimate_rule(
        RuleWork("messages", 100_000, rooms=50, batch_size=500), UNPACED, PURGE_50MS
    )
    assert few.rooms == 50 and few.seconds == pytest.approx(2.5)
    # 100,000 events in 50 rooms: the dry run's batches of 500 already split the rooms.
    assert many.rooms == 50 and many.seconds == pytest.approx(2.5)
    assert few.source == "test"


def test_r1_the_benchmarks_give_a_range_and_say_so() -> None:
    result = estimate_rule(
        RuleWork("messages", 1_000, rooms=100), UNPACED, BENCHMARK_COSTS["messages"]
    )
    assert result.low_s == pytest.approx(3.0) and result.high_s == pytest.approx(7.0)
    # The geometric middle: ranges span up to two orders of magnitude (accounts).
    assert result.seconds == pytest.approx((3.0 * 7.0) ** 0.5)
    assert result.source == BENCHMARK_SOURCE and "benchmarks" in result.source


def test_r1_a_real_sweep_takes_at_least_the_dry_runs_time() -> None:
    result = estimate_rule(
        RuleWork("messages", 1_000, rooms=10, dry_run_s=30.0), UNPACED, PURGE_50MS
    )
    assert result.seconds == 30.0


def test_r1_sweep_pace_bounds_the_rate_and_makes_more_purges() -> None:
    """``sweep_pace: 20``: batches of 20 items (48 more room boundaries than the dry run's
    two batches of 500), and never above 20 items per second: at least 50 s."""
    pace = Pace(batch_size=500, sweep_pace=20)
    work = RuleWork("messages", 1_000, rooms=50, batch_size=500)
    assert purges(work, pace) == 98
    assert estimate_rule(work, pace, PURGE_50MS).seconds == pytest.approx(50.0)
    fast = UnitCost((0.001, 0.001), source="test")
    assert estimate_rule(RuleWork("ip_logs", 100), pace, fast).seconds == pytest.approx(5.0)


def test_r1_adaptive_pace_rests_after_each_purge_and_lies_below_min_pace_at_worst() -> None:
    """Unpaced 2.5 s (50 purges of 50 ms). Issue 22: with no sweep recorded under this
    pace, the point figure adds the rests, ``rest`` (4) times each purge's time: 12.5 s,
    as the benchmarks ran with one purge at a time (no back-off); the high end, every
    batch hurting, is the sweep at ``min_pace``: 1,000 items at 2/s, 500 s. The rests
    never take the sweep below ``min_pace``, and the pauses never exceed ``1 + MAX_GAP``
    times the time of batches of one item."""
    pace = Pace(batch_size=500, adaptive=True, min_pace=2, rest=4)
    result = estimate_rule(RuleWork("messages", 1_000, rooms=50), pace, PURGE_50MS)
    assert (result.low_s, result.seconds, result.high_s) == pytest.approx((12.5, 12.5, 500.0))
    assert "adaptive pace: rests after each step and batch" in result.source
    no_rest = estimate_rule(
        RuleWork("messages", 1_000, rooms=50), attrs.evolve(pace, rest=0), PURGE_50MS
    )
    assert no_rest.seconds == pytest.approx(2.5)
    quick = estimate_rule(
        RuleWork("messages", 1_000, rooms=50),
        Pace(500, adaptive=True, min_pace=100, rest=4),
        PURGE_50MS,
    )
    # 12.5 s of purges and rests, but 1,000 items at 100/s take 10 s: the rests stop there;
    # one purge per item at 50 ms: 50 s at worst.
    assert quick.seconds == pytest.approx(10.0)
    assert quick.high_s == pytest.approx(50.0)
    capped = estimate_rule(
        RuleWork("ip_logs", 1_000),
        Pace(500, adaptive=True, min_pace=0.001, rest=4),
        UnitCost((0.001, 0.001)),
    )
    assert capped.seconds == pytest.approx(1.0), "no steps, so no rests"
    files = estimate_rule(
        RuleWork("attachments", 100),
        Pace(500, adaptive=True, min_pace=2, rest=4),
        UnitCost((0.01, 0.01)),
    )
    assert files.seconds == pytest.approx(5.0), "1 s of file deletions and 4 s of rests"
    assert capped.high_s == pytest.approx(1.0 * (1 + MAX_GAP))


def test_r1_nothing_to_delete_takes_nothing_and_an_unmeasured_rule_is_unknown() -> None:
    done = estimate([RuleWork("sessions", 0)], UNPACED, [])
    assert done.seconds == 0.0
    unknown = estimate([RuleWork("directory", 3), RuleWork("sessions", 0)], UNPACED, [])
    assert unknown.rules[0].seconds is None and unknown.seconds is None


def test_r1_recorded_sweeps_under_the_same_pace_calibrate_first() -> None:
    adaptive = Pace(500, adaptive=True, min_pace=2)
    history = [
        RecordedRule("messages", 400, 20, 4.0, UNPACED),
        RecordedRule("messages", 600, 30, 30.0, adaptive),
        RecordedRule("sessions", 10, 0, 1.0, Pace(500, sweep_pace=5)),
    ]
    same = calibrate(history, "messages", adaptive)
    assert same is not None and same.paced and same.per_purge_s == (1.0, 1.0)
    assert "under the pace now in force" in same.source and "600 items" in same.source
    # The same sweep's figure already holds the adaptive pauses: no factor on top.
    result = estimate([RuleWork("messages", 1_000, rooms=50)], adaptive, history)
    assert result.seconds == pytest.approx(50.0)
    # Under no pace, the unpaced records (10 ms a purge... 4 s / 20 purges = 0.2 s).
    unpaced = calibrate(history, "messages", UNPACED)
    assert unpaced is not None and unpaced.per_purge_s == (0.2, 0.2)
    # A sweep recorded under another pace (sweep_pace 5) does not measure the rule.
    assert calibrate(history, "sessions", UNPACED) is None
    # Without any record: the benchmarks.
    fallback = estimate([RuleWork("sessions", 100)], UNPACED, history)
    assert fallback.rules[0].source == BENCHMARK_SOURCE


def test_r1_an_unpaced_record_is_paced_by_the_model() -> None:
    """A sweep recorded without pace, now ``sweep_pace: 10``: the model adds the pace."""
    history = [RecordedRule("ip_logs", 100, 0, 1.0, UNPACED)]
    paced = Pace(500, sweep_pace=10)
    result = estimate([RuleWork("ip_logs", 100)], paced, history)
    assert result.seconds == pytest.approx(10.0)
    assert "without a pace" in result.rules[0].source


def test_pace_reads_the_settings_endpoint() -> None:
    settings = {
        "dry_run": False,
        "sweep_batch_size": 200,
        "sweep_pace": 50,
        "sweep_adaptive_pace": {"enabled": True, "max_slowdown": 1.5, "min_pace": 2},
    }
    pace = Pace.from_json(settings)
    assert pace == Pace(200, 50.0, True, 2.0)
    assert pace.batch == 50
    assert "min_pace 2" in pace.describe() and "sweep_pace 50" in pace.describe()


def test_r12_an_accounts_cost_follows_the_rooms_it_is_parted_from() -> None:
    """Deactivation sends one leave per room: at 1 s an account and 0.5 s a room, 10
    accounts in 4 rooms each take 30 s; in 160 rooms each, 810 s."""
    cost = UnitCost((1.0, 1.0), (0.5, 0.5), "test")
    few = estimate_rule(RuleWork("accounts", 10, rooms=40), UNPACED, cost)
    many = estimate_rule(RuleWork("accounts", 10, rooms=1_600), UNPACED, cost)
    assert few.rooms == 40 and few.seconds == pytest.approx(30.0)
    assert many.seconds == pytest.approx(810.0)
    # The benchmarks' fit: 494 accounts in 2 rooms each took 352 s at 12.5k events.
    fallback = estimate_rule(
        RuleWork("accounts", 494, rooms=988), UNPACED, BENCHMARK_COSTS["accounts"]
    )
    assert fallback.low_s is not None and fallback.high_s is not None
    assert fallback.low_s < 352 < fallback.high_s
