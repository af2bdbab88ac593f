"""Keeps the sweep lease alive on a timer for as long as a sweep runs.

The lease (``store/sweep_lock.py``) expires unless renewed. Renewing it only
between batches would let one slow step (a rule listing its candidates over years
of history, a long purge) outlive it, and another process would then start a
second sweep beside this one. The keeper renews it every third of its length,
whatever the sweep is doing; if a renewal finds the lease taken, ``lost`` is set
and the sweep stops after its current batch.
"""

import logging
from collections.abc import Awaitable, Callable

from synapse_lux_privacy.store.sweep_lock import SWEEP_LOCK, SweepLockStore

logger = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(
        self,
        lock: SweepLockStore,
        holder: str,
        clock_ms: Callable[[], int],
        lease_ms: int,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._lock = lock
        self._holder = holder
        self._clock_ms = clock_ms
        self._lease_ms = lease_ms
        self._sleep = sleep
        self._stopped = False
        self.lost = False
        self.renewals = 0

    async def keep(self) -> None:
        """Renew until ``stop``; a failed renewal (database error) is tried again."""
        while not self._stopped:
            await self._sleep(self._lease_ms / 3 / 1000)
            if self._stopped:
                return
            try:
                renewed = await self._lock.renew(
                    SWEEP_LOCK, self._holder, self._clock_ms(), self._lease_ms
                )
            except Exception:
                logger.warning("lux_privacy: could not renew the sweep lease", exc_info=True)
                continue
            if not renewed:
                logger.error("lux_privacy: the sweep lease was lost; the sweep stops")
                self.lost = True
                return
            self.renewals += 1

    def stop(self) -> None:
        self._stopped = True
