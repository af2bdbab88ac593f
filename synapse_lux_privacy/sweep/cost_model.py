"""How long a sweep of a backlog takes: the cost model behind ``synapse-lux-privacy
estimate`` (R1-R12 sweeps; pure logic, every figure injected).

The work comes from a dry run, which deletes nothing and counts exactly what a real
sweep would take (``RuleWork``): per rule the items it would delete, and the rooms they
touch. For ``messages`` those are the purges (Synapse purges one room's history below a
point at a time, about 60-90 ms each whatever the number of events: the messages rule's
cost follows the rooms with due events, not the events); for ``accounts`` the rooms the
accounts are parted from (R12: Synapse's deactivation sends one leave event per room, so
an account in 162 rooms takes about 30 s, one in 2 rooms under a second).

The unit costs (``UnitCost``) come, in this order of preference, from this server's own
recorded sweeps (``calibrate``: the per-rule ``seconds`` that ``GET /sweeps`` stores), or
from the range measured on the project's benchmarks (``BENCHMARK_COSTS``), labelled as
such. Every ``RuleEstimate`` carries the text of what its figure was measured on.

Then the pace (``Pace``, from ``GET /sweep/settings``), as ``sweep/pacer.py`` and
``sweep/pace.py`` apply it:

- ``sweep_pace`` P: a batch holds at most P items, and the sweep pauses so as never to
  go above P items per second: at least ``items / P`` seconds; smaller batches mean more
  purges.
- ``sweep_adaptive_pace`` (on by default): each deleting step of the messages and media
  rules (a purge, a batch's expunges or file deletions), and what each of their batches
  does besides its steps (finding it, the audit), is followed by a rest of ``rest``
  times its time, never below ``min_pace`` items per second
  (``rested_s``). Without
  harm the batches grow to ``sweep_batch_size`` and there is no other pause (the low
  end, and the point figure: with one purge at a time, the probes rarely see harm; at
  12.5k and 1M events the controller backed off after one batch or none); when every
  batch hurts, the pause grows to ``MAX_GAP`` times the batch's time but never takes
  the sweep below ``min_pace`` items per second, and the batches shrink to one item
  (the high end). Recorded sweeps under the same settings, when there are some, give
  the point figure instead.

A real sweep also finds its candidates as the dry run did: a rule never takes less than
the dry run's time for it.
"""

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from synapse_lux_privacy.sweep.pace import MAX_GAP

# The rule whose cost follows the purges (one per room and batch), not the items.
PURGING_RULE = "messages"
# The rules whose batches rest under the adaptive pace (``SweepContext.step``).
RESTING_RULES = frozenset({PURGING_RULE, "attachments", "remote_media"})
# The rules whose cost has a part per room (``RuleWork.rooms``): purges, rooms parted.
ROOM_RULES = frozenset({PURGING_RULE, "accounts"})
BENCHMARK_SOURCE = (
    "no sweep recorded on this server: the range measured on the project's benchmarks"
    " (benchmarks/README.md; PostgreSQL, a shared 2-core machine, 12.5k and 1M events)"
)


@attrs.frozen
class Pace:
    """The settings that decide a sweep's pace (``GET /sweep/settings``)."""

    batch_size: int
    sweep_pace: float | None = None
    adaptive: bool = False
    min_pace: float = 10.0
    rest: float = 0.0

    @staticmethod
    def from_json(settings: Mapping[str, Any]) -> "Pace":
        adaptive = settings.get("sweep_adaptive_pace") or {}
        pace = settings.get("sweep_pace")
        return Pace(
            batch_size=int(settings["sweep_batch_size"]),
            sweep_pace=None if pace is None else float(pace),
            adaptive=bool(adaptive.get("enabled", False)),
            min_pace=float(adaptive.get("min_pace", 10.0)),
            rest=float(adaptive.get("rest", 0.0)),
        )

    def describe(self) -> str:
        parts = [f"sweep_batch_size {self.batch_size}"]
        parts.append(
            "no sweep_pace" if self.sweep_pace is None else f"sweep_pace {self.sweep_pace:g}"
        )
        if self.adaptive:
            parts.append(f"sweep_adaptive_pace on, min_pace {self.min_pace:g}, rest {self.rest:g}")
        else:
            parts.append("sweep_adaptive_pace off")
        return ", ".join(parts)

    @property
    def batch(self) -> int:
        """The largest batch a real sweep deletes at once (``Pacer``)."""
        if self.sweep_pace is None:
            return self.batch_size
        return max(1, min(self.batch_size, int(self.sweep_pace)))


@attrs.frozen
class RuleWork:
    """What a dry run found for one rule: the items a sweep would delete, the rooms they
    lie in summed per batch of ``batch_size`` (for ``messages``: the purges), and the
    dry run's own time for the rule (finding the candidates)."""

    rule: str
    items: int
    rooms: int = 0
    dry_run_s: float = 0.0
    batch_size: int = 500


@attrs.frozen
class UnitCost:
    """Seconds per item and per room (a purge, a room parted), unpaced, as a range, and
    what they were measured on."""

    per_item_s: tuple[float, float]
    per_purge_s: tuple[float, float] = (0.0, 0.0)
    source: str = BENCHMARK_SOURCE
    # True: measured under the pace now in force (its pauses are in the figure).
    paced: bool = False


def _per_second(low: float, high: float) -> tuple[float, float]:
    """Seconds per item from the slowest and fastest rates measured (items/s)."""
    return (1 / high, 1 / low)


# benchmarks/README.md: "Backlog estimate", "Throughput of the messages rule",
# "Database time of each side at 12.5k" and s3_deletion.py's sweeps without a provider.
BENCHMARK_COSTS: Mapping[str, UnitCost] = {
    # 207 purges in 6.3-14.5 s at 12.5k, about 16,000 in 945 s at 1M: 30-70 ms a purge.
    "messages": UnitCost((0.0, 0.0), (0.030, 0.070)),
    "attachments": UnitCost(_per_second(55.5, 149.0)),
    "remote_media": UnitCost(_per_second(55.5, 149.0)),
    "redacted_content": UnitCost(_per_second(55.5, 149.0)),
    "quota": UnitCost(_per_second(55.5, 149.0)),
    "sessions": UnitCost(_per_second(16.4, 17.9)),
    # A deactivation parts the user from every room: 0.7 s an account in 2 rooms (12.5k),
    # about 30 s in 162 rooms (1M): about 0.34 s an account and 0.18 s a room.
    "accounts": UnitCost((0.2, 0.5), (0.12, 0.25)),
    "ip_logs": UnitCost(_per_second(155.0, 294.0)),
}


@attrs.frozen
class RuleEstimate:
    """One rule's time: a point figure within a range (seconds), and its source."""

    rule: str
    items: int
    rooms: int
    seconds: float | None
    low_s: float | None
    high_s: float | None
    source: str


def purges(work: RuleWork, pace: Pace) -> int:
    """The rooms a real sweep's cost follows: for ``messages`` the purges (the dry run's
    rooms per batch, plus one more room boundary per extra batch when the pace makes
    batches smaller than the dry run's); for ``accounts`` the rooms parted."""
    if work.rule not in ROOM_RULES or work.items == 0:
        return 0
    if work.rule != PURGING_RULE:
        return work.rooms
    extra = math.ceil(work.items / pace.batch) - math.ceil(work.items / max(1, work.batch_size))
    return work.rooms + max(0, extra)


def unpaced_s(work: RuleWork, pace: Pace, per_item_s: float, per_purge_s: float) -> float:
    """The time without pauses, never below the dry run's (finding the candidates)."""
    return max(work.dry_run_s, work.items * per_item_s + purges(work, pace) * per_purge_s)


def paced_s(work: RuleWork, pace: Pace, unpaced: float) -> float:
    """``sweep_pace``: never more than P items per second."""
    if pace.sweep_pace is None or work.items == 0:
        return unpaced
    return max(unpaced, work.items / pace.sweep_pace)


def rested_s(work: RuleWork, pace: Pace, unpaced: float) -> float:
    """The adaptive pace's rests after each deleting step (purges, expunges, file
    deletions) and after the rest of each batch's work: ``rest`` times the rule's time,
    never taking the sweep below ``min_pace`` items per second
    (``AdaptivePace.rest_after`` and ``batch_rest``)."""
    if not pace.adaptive or work.rule not in RESTING_RULES:
        return unpaced
    return max(unpaced, min(unpaced * (1 + pace.rest), work.items / pace.min_pace))


def adaptive_worst_s(work: RuleWork, pace: Pace, per_item_s: float, per_purge_s: float) -> float:
    """Every batch hurts: batches of one item (one purge each for ``messages``), each
    followed by a pause of up to ``MAX_GAP`` times its time, never below ``min_pace``."""
    rooms = work.items if work.rule == PURGING_RULE else purges(work, pace)
    one_by_one = work.items * per_item_s + rooms * per_purge_s
    slowest = max(one_by_one, min(one_by_one * (1 + MAX_GAP), work.items / pace.min_pace))
    return paced_s(work, pace, max(work.dry_run_s, slowest))


def estimate_rule(work: RuleWork, pace: Pace, cost: UnitCost | None) -> RuleEstimate:
    """One rule's time under ``pace`` at ``cost`` (None: no figure for this rule)."""
    count = purges(work, pace)
    if work.items == 0:
        return RuleEstimate(work.rule, 0, 0, 0.0, 0.0, 0.0, "nothing to delete")
    if cost is None:
        return RuleEstimate(
            work.rule, work.items, count, None, None, None, "no measurement for this rule"
        )
    fast, slow = (
        paced_s(work, pace, unpaced_s(work, pace, cost.per_item_s[i], cost.per_purge_s[i]))
        for i in (0, 1)
    )
    # The middle of a range that spans up to two orders of magnitude (accounts: a few
    # rooms or 162 per user) is its geometric mean.
    mid = math.sqrt(fast * slow)
    if cost.paced or not pace.adaptive:
        return RuleEstimate(work.rule, work.items, count, mid, fast, slow, cost.source)
    fast, slow = (rested_s(work, pace, t) for t in (fast, slow))
    worst = adaptive_worst_s(work, pace, cost.per_item_s[1], cost.per_purge_s[1])
    point = min(worst, math.sqrt(fast * slow))
    source = f"{cost.source}; adaptive pace: rests after each step and batch, no back-off"
    return RuleEstimate(work.rule, work.items, count, point, fast, max(worst, slow), source)


@attrs.frozen
class RecordedRule:
    """One rule of one recorded real sweep: what it dealt with, in what time, how paced."""

    rule: str
    items: int
    rooms: int
    seconds: float
    pace: Pace | None


def calibrate(history: Iterable[RecordedRule], rule: str, pace: Pace) -> UnitCost | None:
    """The unit cost of ``rule`` on this server, from its recorded real sweeps: those run
    under the pace now in force first (their pauses are in the figure), else those run
    without any pace (the model adds the pace). None: no usable record."""
    mine = [r for r in history if r.rule == rule and r.items > 0 and r.seconds > 0]
    same = [r for r in mine if r.pace == pace]
    unpaced = [
        r for r in mine if r.pace is not None and r.pace.sweep_pace is None and not r.pace.adaptive
    ]
    for chosen, paced in ((same, True), (unpaced, False)):
        if not chosen:
            continue
        items = sum(r.items for r in chosen)
        seconds = sum(r.seconds for r in chosen)
        count = sum(r.rooms for r in chosen)
        how = "under the pace now in force" if paced else "without a pace"
        source = (
            f"this server's {len(chosen)} recorded sweep(s) {how}: {items} items in {seconds:.1f} s"
        )
        if rule == PURGING_RULE and count > 0:
            return UnitCost((0.0, 0.0), (seconds / count,) * 2, source + f", {count} purges", paced)
        return UnitCost((seconds / items,) * 2, (0.0, 0.0), source, paced)
    return None


@attrs.frozen
class SweepEstimate:
    """Every rule's estimate, and the whole sweep's (rules run one after the other)."""

    rules: tuple[RuleEstimate, ...]
    pace: Pace

    def _total(self, field: str) -> float | None:
        values = [getattr(r, field) for r in self.rules]
        return None if any(v is None for v in values) else sum(values)

    @property
    def seconds(self) -> float | None:
        return self._total("seconds")

    @property
    def low_s(self) -> float | None:
        return self._total("low_s")

    @property
    def high_s(self) -> float | None:
        return self._total("high_s")


def estimate(
    work: Sequence[RuleWork], pace: Pace, history: Sequence[RecordedRule]
) -> SweepEstimate:
    """The whole sweep: each rule at this server's calibrated cost, else the benchmarks'."""
    rules = []
    for w in work:
        cost = calibrate(history, w.rule, pace) or BENCHMARK_COSTS.get(w.rule)
        rules.append(estimate_rule(w, pace, cost))
    return SweepEstimate(tuple(rules), pace)
