"""The sweep rule ``directory`` (R10): deliver the national directory outbox, watch the deadline.

Candidates are the outbox changes due as of the sweep's time (the oldest change of each
user only); "deleting" one means delivering it, and it counts only once the service has
acknowledged it. Sweeping "as of" a later time delivers changes still waiting for their
retry. Legal holds (R13) do not delay these changes: a listing is a publication that
needs consent, not data kept for a claim, so the candidates name no user or room.

Each sweep also checks the removal deadline against the real clock (an alert is about
real lateness, not a forecast): past ``removal_deadline`` it logs an error.
"""

import logging
from collections.abc import Callable, Sequence

from synapse_lux_privacy.features.directory.delivery import OutboxDelivery
from synapse_lux_privacy.features.directory.outbox_store import OutboxStore
from synapse_lux_privacy.store.holds import HoldSet
from synapse_lux_privacy.sweep.rule import Candidate, CandidatePage, SweepContext
from synapse_lux_privacy.units import HOUR_MS, format_duration

logger = logging.getLogger(__name__)


class DirectoryRule:
    name = "directory"

    def __init__(
        self,
        outbox: OutboxStore,
        delivery: OutboxDelivery | None,
        removal_deadline_ms: int | None,
        clock_ms: Callable[[], int],
    ) -> None:
        self._outbox = outbox
        self._delivery = delivery
        self._deadline_ms = removal_deadline_ms
        self._clock_ms = clock_ms

    async def find_candidates(
        self, ctx: SweepContext, holds: HoldSet, cursor: str | None
    ) -> CandidatePage:
        if self._delivery is None:  # no national directory configured: nothing to deliver
            return CandidatePage((), None)
        if cursor is None:
            await self._check_deadline(self._delivery)
        after = int(cursor) if cursor is not None else 0
        entries = await self._outbox.due_heads(ctx.as_of_ms, after, ctx.batch_size)
        items = [Candidate(item_id=str(e.id), user_id=None, room_id=None) for e in entries]
        more = len(entries) == ctx.batch_size
        return CandidatePage(items, str(entries[-1].id) if more else None)

    async def delete(self, ctx: SweepContext, items: Sequence[Candidate]) -> Sequence[Candidate]:
        if self._delivery is None:
            return ()
        delivered = await self._delivery.deliver([int(c.item_id) for c in items])
        return [c for c in items if int(c.item_id) in delivered]

    async def _check_deadline(self, delivery: OutboxDelivery) -> None:
        backlog = await delivery.refresh_metrics()
        if backlog.oldest_removal_ts is None or self._deadline_ms is None:
            return
        age_ms = self._clock_ms() - backlog.oldest_removal_ts
        if age_ms > self._deadline_ms:
            logger.error(
                "lux_privacy: R10 removal deadline missed: %d removal(s) still waiting for"
                " the national directory, the oldest for %.1f hours"
                " (directory.national.removal_deadline: %s)",
                backlog.removals,
                age_ms / HOUR_MS,
                format_duration(self._deadline_ms),
            )
