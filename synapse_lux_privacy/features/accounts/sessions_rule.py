"""R11: a session (device) inactive for ``sessions.inactive_logout_after`` is logged out.

At the start of each sweep the module copies Synapse's device activity into its
own record (``sync_device_activity``), so that it survives R9's purge of the IP
logs, and registers devices it has not seen yet: a device Synapse never saw
(null ``last_seen``) counts from then. Deletion goes through Synapse's device
handler: access tokens, end-to-end keys and pushers go with the device.
"""

import json
from collections import defaultdict
from collections.abc import Callable, Sequence

from synapse.module_api import ModuleApi

from synapse_lux_privacy.db import DbRunner, Dialect
from synapse_lux_privacy.features.accounts.activity_store import ActivityStore
from synapse_lux_privacy.features.accounts.policy import Exemptions, due_cutoff
from synapse_lux_privacy.store.holds import HoldSet
from synapse_lux_privacy.sweep.rule import Candidate, CandidatePage, DeleteOutcome, SweepContext
from synapse_lux_privacy.synapse_adapter import accounts, devices

# Why a listed session was not logged out: used since it was listed (or gone).
NO_LONGER_IDLE = "no_longer_idle"


class SessionsRule:
    """Finds devices not seen since the limit, as of the sweep's time; logs them out."""

    name = "sessions"

    def __init__(
        self,
        api: ModuleApi,
        run: DbRunner,
        dialect: Dialect,
        store: ActivityStore,
        exemptions: Exemptions,
        inactive_logout_after_ms: int,
        clock_ms: Callable[[], int],
    ) -> None:
        self._api = api
        self._run = run
        self._dialect = dialect
        self._store = store
        self._exemptions = exemptions
        self._limit_ms = inactive_logout_after_ms
        self._clock_ms = clock_ms

    async def find_candidates(
        self, ctx: SweepContext, holds: HoldSet, cursor: str | None
    ) -> CandidatePage:
        if cursor is None:
            await accounts.backfill_user_activity(self._run, self._dialect)
            await devices.sync_device_activity(self._run, self._clock_ms())
        after = None if cursor is None else _decode(cursor)
        cutoff = due_cutoff(ctx.as_of_ms, self._limit_ms)
        rows = await devices.find_idle_devices(
            self._run, self._dialect, cutoff, after, ctx.batch_size
        )
        items = [
            Candidate(item_id=json.dumps([user_id, device_id]), user_id=user_id, room_id=None)
            for user_id, device_id in rows
            if not self._exemptions.from_sessions(user_id)
        ]
        full = len(rows) == ctx.batch_size
        return CandidatePage(items, json.dumps(rows[-1]) if full else None)

    async def delete(self, ctx: SweepContext, items: Sequence[Candidate]) -> DeleteOutcome:
        by_user: dict[str, list[Candidate]] = defaultdict(list)
        for item in items:
            by_user[_decode(item.item_id)[0]].append(item)
        # Still idle right now? A device used since the candidates were read stays.
        still_idle = set(
            await devices.find_idle_devices(
                self._run,
                self._dialect,
                due_cutoff(ctx.as_of_ms, self._limit_ms),
                None,
                None,
                sorted(by_user),
            )
        )
        deleted: list[Candidate] = []
        skipped: dict[str, str] = {}
        for user_id, candidates in by_user.items():
            due = [c for c in candidates if _decode(c.item_id) in still_idle]
            skipped.update((c.item_id, NO_LONGER_IDLE) for c in candidates if c not in due)
            device_ids = [_decode(c.item_id)[1] for c in due]
            if device_ids:
                await devices.delete_devices(self._api, user_id, device_ids)
                await self._store.forget_devices(user_id, device_ids)
                deleted.extend(due)
        return DeleteOutcome(deleted=deleted, skipped=skipped)


def _decode(text: str) -> tuple[str, str]:
    user_id, device_id = json.loads(text)
    return str(user_id), str(device_id)
