"""How fast one sweep deletes: ``sweep_pace`` and ``sweep_adaptive_pace`` (R1-R12).

The orchestrator asks the pacer, before each page, how many items the batch may hold,
and hands it each batch's deletion to run. Dry runs are never paced (they delete
nothing).

- ``sweep_pace`` (items per second at most): a batch holds at most a second's worth of
  items, and after each batch that went faster the sweep pauses for the rest.
- ``sweep_adaptive_pace``: the database is probed while each batch is deleted and once
  after each pause (``probe.py``); the controller (``pace.py``) halves the batches and
  lengthens the pauses when the probes show the batch slowed the server down, and
  grows them back when not, and each step of a batch (a room's purge, the batch's
  expunges or file deletions) is followed by a rest in proportion to its time
  (``step``). ``sweep_pace`` still caps it.
"""

import logging
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from synapse_lux_privacy.config import AdaptivePaceConfig
from synapse_lux_privacy.sweep.pace import AdaptivePace
from synapse_lux_privacy.sweep.probe import LoadProbe

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")

# Idle probes taken before a sweep's first batch, for the controller's baseline.
START_PROBES = 3


class Pacer:
    def __init__(
        self,
        batch_size: int,
        pace: float | None,
        adaptive: AdaptivePaceConfig,
        probe: LoadProbe | None,
        sleep: Sleep,
        dry_run: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pace = None if dry_run else pace
        if self._pace is not None:
            # A batch is deleted in one go: with a pace, at most a second's worth of it.
            batch_size = max(1, min(batch_size, int(self._pace)))
        # The largest batch this sweep deletes, whatever the adaptive pace's size.
        self.max_batch_size = batch_size
        self._probe = probe if adaptive.enabled and not dry_run else None
        self.controller = (
            AdaptivePace(adaptive, batch_size, self._pace) if self._probe is not None else None
        )
        self._sleep = sleep
        self._clock = clock
        # The current batch: when it began, its steps, and its seconds in steps and pauses.
        self._batch_began = 0.0
        self._steps = 0
        self._stepped = 0.0
        self._paused = 0.0

    @property
    def rests(self) -> bool:
        """Whether ``step`` rests after each step (the adaptive pace, in a real sweep)."""
        return self.controller is not None and self.controller.config.rest > 0

    async def start(self) -> None:
        """Measure the idle baseline before the first batch (adaptive pace only)."""
        if self._probe is not None and self.controller is not None:
            for _ in range(START_PROBES):
                self.controller.idle_probe(await self._probe.once())

    def begin_batch(self) -> None:
        """A batch begins: its finding, bookkeeping, steps and pauses are timed from here."""
        self._batch_began = self._clock()
        self._steps = 0
        self._stepped = self._paused = 0.0

    async def end_batch(self, items: int) -> None:
        """A batch of ``items`` items ended: if it ran steps (the content rules), rest
        after what was neither a step nor a pause (finding the batch, reading the holds,
        the audit), as after a step; the adaptive pace only (issue 22: those
        transactions, unrested, set the tail of users' requests once the steps rested).
        A batch without steps (another rule's, a quota eviction's) does not rest: it
        would hold the sweep lease longer for work the probes already pace."""
        if not self.rests or self.controller is None or self._steps == 0:
            return
        batch_s = self._clock() - self._batch_began
        work = max(0.0, batch_s - self._stepped - self._paused)
        rest = self.controller.batch_rest(items, work, batch_s)
        logger.debug(
            "lux_privacy: batch of %d items: %.3f s besides its steps, rest %.3f s",
            items,
            work,
            rest,
        )
        await self._pause(rest)

    def batch_size(self) -> int:
        """The most items the next batch may hold."""
        return self.controller.size if self.controller is not None else self.max_batch_size

    async def delete(self, items: int, work: Callable[[], Awaitable[None]]) -> None:
        """Run a batch's deletion of ``items`` items, then pause as the pace asks."""
        began = self._clock()
        if self._probe is None or self.controller is None:
            await work()
            if self._pace is not None:
                await self._pause(items / self._pace - (self._clock() - began))
            return
        busy = await self._probe.during(work)
        pause = self.controller.batch_done(items, self._clock() - began, busy)
        logger.debug(
            "lux_privacy: batch of %d in %.3f s, probes %.4f s median (idle %.4f s): "
            "next batch %d, pause %.3f s",
            items,
            self._clock() - began,
            statistics.median(busy),
            self.controller.baseline() or 0.0,
            self.controller.size,
            pause,
        )
        await self._pause(pause)
        self.controller.idle_probe(await self._probe.once())

    async def step(self, items: int, work: Callable[[], Awaitable[T]]) -> T:
        """Run one step of a batch's deletion (``items`` items: a room's purge, the
        batch's expunges or file deletions), then rest as the adaptive pace asks
        (``SweepContext.step``)."""
        if self.controller is None:
            return await work()
        began = self._clock()
        done = await work()
        took = self._clock() - began
        self._steps += 1
        self._stepped += took
        rest = self.controller.rest_after(items, took)
        logger.debug("lux_privacy: step of %d items in %.3f s, rest %.3f s", items, took, rest)
        await self._pause(rest)
        return done

    async def _pause(self, seconds: float) -> None:
        if seconds > 0:
            began = self._clock()
            await self._sleep(seconds)
            self._paused += self._clock() - began
