"""The adaptive pace of a sweep (``sweep_adaptive_pace``; R1-R12 deletions beside live traffic).

A sweep's deletions share the database and Synapse's event loop with the users. The
controller here watches what a user's request would meet: the time of a trivial
query through Synapse's connection pool (the *probe*: it includes the wait for a free
connection, the database's own latency and the event loop's delay in handing back the
result). Probes are taken while a batch is being deleted (*busy*) and between batches
(*idle*, the baseline: the median of the recent ones, so the baseline follows the
users' own load).

After each batch, if the busy probes' median exceeded ``max_slowdown`` times the idle
baseline (plus ``PROBE_SLACK_S`` of timer noise), the batch hurt: the next batch is
halved (fewer events per purge, fewer purges at once) and the pause after each batch,
in proportion to the time the batch took, doubles. Otherwise the batch grows by an
eighth and the pause shrinks by a tenth (multiplicative back-off, gradual recovery,
as TCP's congestion control). Medians on both sides: on a loaded machine single probes
scatter, and the slowest of many would always look like harm. The pause never brings
the sweep below ``min_pace`` items per second, and never lets it go above
``sweep_pace`` when that is set.

Within a batch, each step (a room's purge, the batch's expunges or file deletions) is
followed by a rest of ``rest`` times the step's own time, whatever the probes say
(``rest_after``): on the 2-core machine of issue 22, a user's request that meets a
purge is slowed whatever the batch's size, and the probes' median does not see it (one
purge at a time rarely slows a trivial query by half). Resting keeps most requests from
meeting a purge; ``min_pace`` still bounds it.

Pure logic: no clock, no I/O; ``pacer.py`` measures (``probe.py``) and sleeps.
"""

import statistics
from collections import deque
from collections.abc import Sequence

import attrs

from synapse_lux_privacy.config import AdaptivePaceConfig

# Idle probes the baseline is the median of.
IDLE_SAMPLES = 30
# Timer noise a busy probe may exceed the threshold by without counting as harm.
PROBE_SLACK_S = 0.002
# The first batch of a sweep: small, so the first measurement costs users little.
START_SIZE = 10
# The pause, in seconds per second of deletion, at most (a duty cycle of about 1 %).
MAX_GAP = 100.0
# The pause after the first batch that hurt, per second of deletion.
FIRST_GAP = 1.0
# What a batch that did not hurt takes off the pause (a tenth) and adds to the size.
GAP_RECOVERY = 0.9
SIZE_GROWTH = 8


@attrs.define
class AdaptivePace:
    """One sweep's controller: the size of its next batch and the pause after each."""

    config: AdaptivePaceConfig
    max_size: int
    max_pace: float | None = None
    size: int = 0
    gap: float = 0.0
    hurt_batches: int = 0
    _idle: deque[float] = attrs.Factory(lambda: deque(maxlen=IDLE_SAMPLES))

    def __attrs_post_init__(self) -> None:
        self.size = max(1, min(self.max_size, START_SIZE))

    def idle_probe(self, seconds: float) -> None:
        """A probe taken while no batch was being deleted."""
        self._idle.append(seconds)

    def baseline(self) -> float | None:
        """The idle probe's median over the recent ones; None before the first."""
        return statistics.median(self._idle) if self._idle else None

    def hurt(self, busy: Sequence[float]) -> bool:
        """Whether probes taken during a batch show it slowed the server down."""
        baseline = self.baseline()
        if baseline is None or not busy:
            return False
        return statistics.median(busy) > self.config.max_slowdown * baseline + PROBE_SLACK_S

    def rest_after(self, items: int, took: float) -> float:
        """The rest (seconds) after one step of a batch that deleted ``items`` items in
        ``took`` seconds: ``rest`` times its time, never below ``min_pace``."""
        return max(0.0, min(took * self.config.rest, items / self.config.min_pace - took))

    def batch_rest(self, items: int, work: float, batch_s: float) -> float:
        """The rest (seconds) after a batch of ``items`` items that took ``batch_s`` in
        all, of which ``work`` seconds were neither steps nor pauses (finding the batch,
        reading the holds, the audit): ``rest`` times ``work``, never taking the batch
        below ``min_pace``."""
        return max(0.0, min(work * self.config.rest, items / self.config.min_pace - batch_s))

    def batch_done(self, items: int, took: float, busy: Sequence[float]) -> float:
        """Adapt to a batch of ``items`` deleted in ``took`` seconds while the probes
        measured ``busy``; the pause (seconds) before the next batch."""
        if self.hurt(busy):
            self.hurt_batches += 1
            self.size = max(1, self.size // 2)
            self.gap = min(MAX_GAP, max(FIRST_GAP, self.gap * 2))
        else:
            self.size = min(self.max_size, self.size + 1 + self.size // SIZE_GROWTH)
            self.gap = self.gap * GAP_RECOVERY if self.gap > FIRST_GAP / 8 else 0.0
        pause = min(took * self.gap, items / self.config.min_pace - took)
        if self.max_pace is not None:
            pause = max(pause, items / self.max_pace - took)
        return max(0.0, pause)
