"""How long a sweep will take on a server's data, from a dry run and a timed sample
(pure functions; ``synapse-lux-privacy estimate`` gathers the figures).

A dry run counts every rule's candidates exactly (R1-R12: the same queries as the real
sweep). A sample is a real sweep of one rule, stopped after a few seconds: the items it
dealt with were due, and what it took measures the rule's speed on this server, with its
data, its database and its ``sweep_pace``. What is left of a rule then takes
``left / rate``. The queries are bounded by indexes (``tests/integration/test_query_plans.py``),
so the time per item does not grow with the history: a backlog ten times larger takes ten
times as long (``project``).
"""

import attrs


@attrs.frozen
class RuleForecast:
    """One rule: its candidates (dry run) and what a sample of it dealt with, how fast."""

    rule: str
    candidates: int
    held: int
    sampled: int = 0
    sample_s: float = 0.0

    @property
    def rate_per_s(self) -> float | None:
        """Items dealt with per second in the sample (None: no sample, or it did nothing)."""
        if self.sampled <= 0 or self.sample_s <= 0:
            return None
        return self.sampled / self.sample_s

    @property
    def left(self) -> int:
        """Candidates the sample did not reach."""
        return max(0, self.candidates - self.sampled)

    @property
    def estimate_s(self) -> float | None:
        """Seconds the rule needs for what is left (None: unknown, nothing was sampled)."""
        if self.left == 0:
            return 0.0
        rate = self.rate_per_s
        return None if rate is None else self.left / rate


@attrs.frozen
class BacklogEstimate:
    """Every rule's forecast, and the dry run's own time."""

    dry_run_s: float
    rules: tuple[RuleForecast, ...]

    @property
    def left_s(self) -> float | None:
        """Seconds for what the samples left of every rule (None if one is unknown)."""
        times = [r.estimate_s for r in self.rules]
        if any(t is None for t in times):
            return None
        return sum(t for t in times if t is not None)

    @property
    def whole_s(self) -> float | None:
        """Seconds the whole backlog takes a sweep, the samples' share included."""
        left = self.left_s
        return None if left is None else left + sum(r.sample_s for r in self.rules)

    def project(self, factor: float) -> float | None:
        """The time for a backlog ``factor`` times larger (every rule's items in proportion)."""
        whole = self.whole_s
        return None if whole is None else whole * factor


def worth_sampling(candidates: int, held: int) -> bool:
    """A rule is sampled when its dry run found something it would delete."""
    return candidates - held > 0
