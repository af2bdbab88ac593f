"""Delivery of the national directory outbox (R10): in order, with retries and backoff.

One deliverer at a time on the whole deployment: a lease in ``lux_privacy_lock`` held
in the name of the instance (so a restarted instance takes its lease back at once) and,
inside the process, a busy flag. As only one change of a user is ever in flight and the
next is sent only after it is acknowledged, changes reach the service in order.

A change stays in the outbox until the service acknowledges it: a crash or restart
in the middle only means it is sent again, which the idempotent API absorbs. A failed
attempt is retried with exponential backoff; a run stops at its first failure (the
service is most likely down) instead of waiting on every change in turn.
"""

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from synapse_lux_privacy.features.directory import metrics
from synapse_lux_privacy.features.directory.national_client import DeliveryResult, Outcome
from synapse_lux_privacy.features.directory.outbox_store import Backlog, OutboxEntry, OutboxStore
from synapse_lux_privacy.store.sweep_lock import SweepLockStore

logger = logging.getLogger(__name__)

# How often the background-tasks instance looks for due changes; a change is also sent
# at once by the instance that queued it.
DELIVERY_INTERVAL_MS = 10_000
LOCK_NAME = "directory_outbox"
LOCK_LEASE_MS = 5 * 60_000
RETRY_BASE_MS = 5_000
RETRY_MAX_MS = 10 * 60_000
PAGE_SIZE = 100
_WAIT_STEP_S = 0.25


def retry_delay_ms(attempts: int) -> int:
    """Wait after the n-th failed attempt (n >= 1): 5 s, 10 s, 20 s, ... at most 10 minutes."""
    return min(RETRY_BASE_MS << min(max(attempts, 1) - 1, 20), RETRY_MAX_MS)


class Sender(Protocol):
    async def send(self, entry: OutboxEntry) -> DeliveryResult: ...


class OutboxDelivery:
    """Sends due outbox changes to the national directory."""

    def __init__(
        self,
        outbox: OutboxStore,
        locks: SweepLockStore,
        sender: Sender,
        clock_ms: Callable[[], int],
        sleep: Callable[[float], Awaitable[None]],
        instance_name: str,
        server_name: str,
    ) -> None:
        self._outbox = outbox
        self._locks = locks
        self._sender = sender
        self._clock_ms = clock_ms
        self._sleep = sleep
        self._holder = f"directory/{instance_name}"
        self._server_name = server_name
        self._busy = False

    async def deliver_due(self) -> int:
        """Deliver every change due now, oldest first; return how many were delivered.

        Does nothing when another delivery runs (here or on another instance).
        """
        if not await self._acquire():
            return 0
        delivered = 0
        try:
            # Every change sent leaves the outbox, and a run stops at its first failure,
            # so asking again for what is due always makes progress.
            while page := await self._outbox.next_due(self._clock_ms(), PAGE_SIZE):
                for entry in page:
                    outcome = await self._deliver_current(entry.id)
                    if outcome is Outcome.RETRY or not await self._renew():
                        return delivered
                    delivered += outcome is Outcome.DELIVERED
            return delivered
        finally:
            await self._release()

    async def deliver(self, entry_ids: Sequence[int], wait_s: float = 30) -> set[int]:
        """Deliver these changes in this order (a sweep's batch); return those delivered.

        Waits up to ``wait_s`` for a delivery running elsewhere to finish. A change no
        longer in the outbox (already delivered or replaced) is skipped.
        """
        if not await self._acquire_waiting(wait_s):
            logger.info("lux_privacy: the directory outbox is busy; the sweep leaves it")
            return set()
        delivered: set[int] = set()
        try:
            for entry_id in entry_ids:
                outcome = await self._deliver_current(entry_id)
                if outcome is Outcome.RETRY or not await self._renew():
                    break
                if outcome is Outcome.DELIVERED:
                    delivered.add(entry_id)
            return delivered
        finally:
            await self._release()

    async def refresh_metrics(self) -> Backlog:
        """Update the outbox gauges (R10 removal deadline) and return the backlog."""
        backlog = await self._outbox.backlog()
        age_ms = 0
        if backlog.oldest_removal_ts is not None:
            age_ms = max(0, self._clock_ms() - backlog.oldest_removal_ts)
        metrics.oldest_pending_removal_age_seconds.labels(self._server_name).set(age_ms / 1000)
        metrics.outbox_pending.labels(self._server_name).set(backlog.pending)
        return backlog

    async def _deliver_current(self, entry_id: int) -> Outcome | None:
        """Deliver a change as it is now; None when it left the outbox meanwhile.

        Read again just before sending: a change replaced by a newer one of the same user
        (a withdrawal replacing an upsert) must not be sent after all.
        """
        entry = await self._outbox.get(entry_id)
        if entry is None:
            return None
        result = await self._sender.send(entry)
        metrics.deliveries_total.labels(self._server_name, entry.action, result.outcome.value).inc()
        if result.outcome is Outcome.RETRY:
            attempts = entry.attempts + 1
            delay = retry_delay_ms(attempts)
            await self._outbox.reschedule(
                entry.id, attempts, self._clock_ms() + delay, result.detail
            )
            logger.warning(
                "lux_privacy: national directory %s of %s failed (%s, attempt %d);"
                " next try in %d s",
                entry.action,
                entry.user_id,
                result.detail,
                attempts,
                delay // 1000,
            )
            return result.outcome
        await self._outbox.remove(entry.id)
        if result.outcome is Outcome.REJECTED:
            logger.error(
                "lux_privacy: the national directory refused the %s of %s for good (%s);"
                " the change is dropped",
                entry.action,
                entry.user_id,
                result.detail,
            )
        else:
            logger.info(
                "lux_privacy: national directory %s of %s delivered", entry.action, entry.user_id
            )
        return result.outcome

    async def _acquire(self) -> bool:
        if self._busy:
            return False
        self._busy = True
        try:
            taken = await self._locks.try_acquire(
                LOCK_NAME, self._holder, self._clock_ms(), LOCK_LEASE_MS
            )
        except BaseException:
            self._busy = False
            raise
        self._busy = taken
        return taken

    async def _acquire_waiting(self, wait_s: float) -> bool:
        waited = 0.0
        while not await self._acquire():
            if waited >= wait_s:
                return False
            await self._sleep(_WAIT_STEP_S)
            waited += _WAIT_STEP_S
        return True

    async def _renew(self) -> bool:
        return await self._locks.renew(LOCK_NAME, self._holder, self._clock_ms(), LOCK_LEASE_MS)

    async def _release(self) -> None:
        try:
            await self._locks.release(LOCK_NAME, self._holder)
        finally:
            self._busy = False
        await self.refresh_metrics()
