"""Keeps the sweep lease alive on a timer, and says when the sweep may no longer delete.

The lease (``store/sweep_lock.py``) expires unless renewed. Renewing it only
between batches would let one slow step (a rule listing its candidates over years
of history, a long purge) outlive it, and another process would then start a
second sweep beside this one. The keeper renews it every third of its length,
whatever the sweep is doing, and again every ``RETRY_FRACTION`` of it after a
failed renewal (a database error, or a renewal that does not answer).

``lost`` turns true when a renewal finds the lease taken, and also, by the clock
alone, once less than a third of the lease is left since the last renewal that
succeeded: the sweep then deletes nothing more (it stops after its current batch,
or its current item for a batch deleted item by item), so the last third of the
lease is left for that batch to end before another process can take the lease.
Two sweeps never delete at once, however long renewals fail or stall.
"""

import logging
from collections.abc import Awaitable, Callable

from synapse_lux_privacy.store.sweep_lock import SWEEP_LOCK, SweepLockStore

logger = logging.getLogger(__name__)

# After a failed renewal, the next try comes after this fraction of the lease.
RETRY_FRACTION = 30


class LeaseKeeper:
    def __init__(
        self,
        lock: SweepLockStore,
        holder: str,
        clock_ms: Callable[[], int],
        lease_ms: int,
        sleep: Callable[[float], Awaitable[None]],
        acquired_ms: int,
    ) -> None:
        self._lock = lock
        self._holder = holder
        self._clock_ms = clock_ms
        self._lease_ms = lease_ms
        self._sleep = sleep
        self._stopped = False
        self._taken = False
        # The lease runs at least until then (it was taken or renewed before the call).
        self._expires_ms = acquired_ms + lease_ms
        self.renewals = 0

    @property
    def lost(self) -> bool:
        """The sweep must delete nothing more: the lease was taken, or too little of
        it is left to be sure that it still holds when a batch ends."""
        return self._taken or self._clock_ms() >= self.deadline_ms

    @property
    def deadline_ms(self) -> int:
        """When the sweep stops deleting unless the lease is renewed before."""
        return self._expires_ms - self._lease_ms // 3

    async def keep(self) -> None:
        """Renew until ``stop``; a failed renewal (database error) is tried again soon."""
        wait_s = self._lease_ms / 3 / 1000
        while not self._stopped:
            await self._sleep(wait_s)
            if self._stopped:
                return
            asked = self._clock_ms()
            try:
                renewed = await self._lock.renew(SWEEP_LOCK, self._holder, asked, self._lease_ms)
            except Exception:
                logger.warning(
                    "lux_privacy: could not renew the sweep lease; the sweep stops deleting"
                    " in %d s unless a renewal succeeds",
                    max(0, self.deadline_ms - self._clock_ms()) // 1000,
                    exc_info=True,
                )
                wait_s = self._lease_ms / RETRY_FRACTION / 1000
                continue
            if not renewed:
                logger.error("lux_privacy: the sweep lease was lost; the sweep stops")
                self._taken = True
                return
            self._expires_ms = asked + self._lease_ms
            self.renewals += 1
            wait_s = self._lease_ms / 3 / 1000

    def stop(self) -> None:
        self._stopped = True
