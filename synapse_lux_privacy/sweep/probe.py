"""Measures what a user's request meets while a sweep deletes (``sweep_adaptive_pace``).

A probe is one trivial query (``SELECT 1``) through Synapse's connection pool, timed
from the call to its result: the wait for a free connection, the database's latency
and the event loop's delay in handing the result back are all in it. ``during`` runs
a piece of work (a batch's deletion) and probes again and again until it ends; the
probe in flight when the work ends is waited for, so a batch shorter than a probe
still gets one measurement. The figures go to the controller (``pace.py``).
"""

import time
from collections.abc import Awaitable, Callable
from typing import Any

from synapse_lux_privacy.db import Cursor, DbRunner

# Between two probes while a batch is deleted: a batch with rests lasts seconds, so
# this still gives the controller a dozen samples a batch; at 50 ms the probes were
# a tenth of a messages sweep's database connection time (issue 22).
PROBE_INTERVAL_S = 0.2
# Between two probes the work's end is checked this many times, so that a batch is not
# held up to a whole interval after its work ended (a quota eviction holds the sweep
# lease meanwhile).
POLLS_PER_PROBE = 4

Sleep = Callable[[float], Awaitable[None]]
Spawn = Callable[[Callable[[], Awaitable[None]]], object]


def _select_one(txn: Cursor) -> None:
    txn.execute("SELECT 1")
    txn.fetchall()


class LoadProbe:
    def __init__(
        self,
        db: DbRunner,
        spawn: Spawn,
        sleep: Sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._spawn = spawn
        self._sleep = sleep
        self._clock = clock

    async def once(self) -> float:
        """The seconds one trivial query took through Synapse's pool."""
        began = self._clock()
        await self._db("lux_privacy_load_probe", _select_one)
        return self._clock() - began

    async def during(self, work: Callable[[], Awaitable[Any]]) -> list[float]:
        """Run ``work`` (spawned) and probe until it ends; the probes' seconds.

        An exception of ``work`` is raised here once the probing stopped."""
        state: dict[str, Any] = {"done": False, "error": None}

        async def run() -> None:
            try:
                await work()
            except BaseException as error:  # handed to the caller below
                state["error"] = error
            finally:
                state["done"] = True

        self._spawn(run)
        samples = [await self.once()]
        while not state["done"]:
            for _ in range(POLLS_PER_PROBE):
                await self._sleep(PROBE_INTERVAL_S / POLLS_PER_PROBE)
                if state["done"]:
                    break
            if state["done"]:
                break
            samples.append(await self.once())
        if state["error"] is not None:
            raise state["error"]
        return samples
