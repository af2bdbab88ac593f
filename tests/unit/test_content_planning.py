"""Where a room's purge stops (R1, R13): the pure planner of bounded purge batches.

Time: events carry an explicit "due" flag; no clock.
"""

import attrs

from synapse_lux_privacy.features.content.planning import plan_prefix


@attrs.frozen
class Ev:
    name: str
    depth: int
    due: bool = True
    held: bool = False


def blocks(e: Ev) -> bool:
    return e.held or not e.due


def names(events: tuple[Ev, ...]) -> list[str]:
    return [e.name for e in events]


def test_r1_everything_due_below_the_newest_extremity_is_purged() -> None:
    events = [Ev("a", 5), Ev("b", 6), Ev("c", 7)]
    plan = plan_prefix(events, cap=10, extremity_depth=9, blocks=blocks)
    assert (names(plan.prefix), plan.floor) == (["a", "b", "c"], 9)


def test_the_newest_events_stay_even_when_due() -> None:
    events = [Ev("a", 5), Ev("b", 6), Ev("last", 7)]
    plan = plan_prefix(events, cap=10, extremity_depth=7, blocks=blocks)
    assert (names(plan.prefix), plan.floor) == (["a", "b"], 7)


def test_r13_the_purge_stops_at_a_held_user_s_event() -> None:
    events = [Ev("a", 5), Ev("held", 6, held=True), Ev("c", 7)]
    plan = plan_prefix(events, cap=10, extremity_depth=20, blocks=blocks)
    assert (names(plan.prefix), plan.floor) == (["a"], 6)


def test_the_purge_stops_at_an_event_not_due_and_never_splits_its_depth() -> None:
    # "b" shares depth 6 with the event that is not due: a purge to 6 keeps both.
    events = [Ev("a", 5), Ev("b", 6), Ev("young", 6, due=False)]
    plan = plan_prefix(events, cap=10, extremity_depth=20, blocks=blocks)
    assert (names(plan.prefix), plan.floor) == (["a"], 6)


def test_a_batch_holds_at_most_cap_events_and_the_walk_goes_on() -> None:
    events = [Ev(str(d), d) for d in range(1, 5)]  # cap + 1 events
    plan = plan_prefix(events, cap=3, extremity_depth=20, blocks=blocks)
    assert (names(plan.prefix), plan.floor) == (["1", "2", "3"], None)


def test_a_batch_cut_never_splits_a_depth() -> None:
    events = [Ev("a", 1), Ev("b", 2), Ev("c", 3), Ev("d", 3)]
    plan = plan_prefix(events, cap=3, extremity_depth=20, blocks=blocks)
    assert (names(plan.prefix), plan.floor) == (["a", "b"], None)


def test_a_fork_wider_than_a_batch_stops_the_purge_there() -> None:
    events = [Ev(f"f{i}", 4) for i in range(4)]
    plan = plan_prefix(events, cap=3, extremity_depth=20, blocks=blocks)
    assert (names(plan.prefix), plan.floor) == ([], 4)


def test_an_empty_history_purges_nothing() -> None:
    plan = plan_prefix([], cap=3, extremity_depth=20, blocks=blocks)
    assert (plan.prefix, plan.floor) == ((), 20)


def test_r1_a_room_that_does_not_fit_what_is_left_of_a_batch_waits_whole_for_the_next() -> None:
    """Issue 22: a room is purged once, not split between two batches."""
    events = [Ev(n, d) for n, d in (("a", 1), ("b", 2), ("c", 3), ("d", 4))]
    plan = plan_prefix(events, cap=3, extremity_depth=20, blocks=blocks, whole_batch=False)
    assert (names(plan.prefix), plan.floor) == ([], None)
    fits = plan_prefix(events[:3], cap=3, extremity_depth=20, blocks=blocks, whole_batch=False)
    assert (names(fits.prefix), fits.floor) == (["a", "b", "c"], 20)


def test_a_depth_that_does_not_fit_what_is_left_of_a_batch_waits_for_the_next_batch() -> None:
    events = [Ev(f"f{i}", 4) for i in range(4)]
    plan = plan_prefix(events, cap=3, extremity_depth=20, blocks=blocks, whole_batch=False)
    assert (names(plan.prefix), plan.floor) == ([], None)
