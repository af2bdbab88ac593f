"""R12 (with R7, R8, R10): an account inactive for ``accounts.inactive_delete_after``
with no session left is deactivated with erasure, and its media deleted.

Synapse's deactivation with erasure removes the profile, threepids, pushers,
devices and directory entries and keeps the user row, so the ID can never be
registered again (R8). Synapse does not delete media: the rule deletes every file
the user uploaded (avatars included) through the media repository. The
deactivation callback (``DeactivationHandler``) then runs as for any deactivation.

The deletion itself is ``AccountEraser`` (erasure.py), shared with erasure on request
(R14). Crash resume: the user is marked in ``lux_privacy_account_deletions`` before the
deactivation and the mark is cleared once the media is deleted. A sweep killed in
between leaves the mark; the next sweep selects the marked user whatever their
activity and runs the deletion again: Synapse's deactivation (every step of it is a
no-op where already done, and a crash may have cut it short), then the media that is
left. Nothing that was started waits for R2.

Never touched: exempt users (``accounts.exempt``), application-service users, the
server-notices user, held users (R13, dropped by the orchestrator) and members of a
held room (their erasure would prune their membership events there).
"""

from collections.abc import Sequence

import attrs
from synapse.module_api import ModuleApi

from synapse_lux_privacy.db import DbRunner, Dialect
from synapse_lux_privacy.features.accounts.activity_store import ActivityStore
from synapse_lux_privacy.features.accounts.erasure import AccountEraser
from synapse_lux_privacy.features.accounts.policy import Exemptions, due_cutoff
from synapse_lux_privacy.features.accounts.tracker import ActivityTracker
from synapse_lux_privacy.store.holds import HoldSet, HoldStore
from synapse_lux_privacy.sweep.rule import Candidate, CandidatePage, DeleteOutcome, SweepContext
from synapse_lux_privacy.synapse_adapter import accounts

# Why a listed account was not deleted: used, or held, since it was listed.
HELD_OR_ACTIVE_AGAIN = "held_or_active_again"


class AccountsRule:
    """Finds accounts inactive since the limit, as of the sweep's time; erases them."""

    name = "accounts"

    def __init__(
        self,
        api: ModuleApi,
        run: DbRunner,
        dialect: Dialect,
        store: ActivityStore,
        eraser: AccountEraser,
        tracker: ActivityTracker,
        holds: HoldStore,
        exemptions: Exemptions,
        inactive_delete_after_ms: int,
        inactive_logout_after_ms: int,
    ) -> None:
        self._api = api
        self._run = run
        self._dialect = dialect
        self._store = store
        self._eraser = eraser
        self._tracker = tracker
        self._holds = holds
        self._exemptions = exemptions
        self._limit_ms = inactive_delete_after_ms
        self._session_limit_ms = inactive_logout_after_ms

    async def _idle(
        self, ctx: SweepContext, after: str | None, limit: int | None, only: Sequence[str] | None
    ) -> list[str]:
        return await accounts.find_idle_accounts(
            self._run,
            self._dialect,
            due_cutoff(ctx.as_of_ms, self._limit_ms),
            due_cutoff(ctx.as_of_ms, self._session_limit_ms),
            after,
            limit,
            only,
        )

    async def _eligible(self, user_ids: Sequence[str], holds: HoldSet) -> list[str]:
        """Leave out exempt users and members of held rooms."""
        users = [u for u in user_ids if not self._exemptions.from_accounts(u)]
        in_held_rooms = await accounts.members_of_rooms(self._run, users, holds.room_ids)
        return [u for u in users if u not in in_held_rooms]

    async def find_candidates(
        self, ctx: SweepContext, holds: HoldSet, cursor: str | None
    ) -> CandidatePage:
        if cursor is None:
            await self._tracker.flush()
        rows = await self._idle(ctx, cursor, ctx.batch_size, None)
        users = await self._eligible(rows, holds)
        sizes = await accounts.media_of_users(self._run, users)
        rooms = await accounts.rooms_of_users(self._run, users)
        items = [
            Candidate(
                item_id=u,
                user_id=u,
                room_id=None,
                size_bytes=sum(size for _, size in sizes.get(u, ())),
                rooms=rooms.get(u, 0),
            )
            for u in users
        ]
        return CandidatePage(items, rows[-1] if len(rows) == ctx.batch_size else None)

    async def delete(self, ctx: SweepContext, items: Sequence[Candidate]) -> DeleteOutcome:
        # Re-check just before deleting: activity noted since, or a hold placed since.
        await self._tracker.flush()
        holds = await self._holds.active_holds()
        user_ids = [c.item_id for c in items]
        due = set(await self._eligible(await self._idle(ctx, None, None, user_ids), holds))
        deleted: list[Candidate] = []
        skipped: dict[str, str] = {}
        for item in items:
            user_id = item.item_id
            if user_id not in due or holds.covers(user_id, None):
                skipped[item.item_id] = HELD_OR_ACTIVE_AGAIN
                continue
            erased = await self._eraser.erase(user_id, holds)
            deleted.append(attrs.evolve(item, provider_objects=erased.provider_objects))
        return DeleteOutcome(deleted=deleted, skipped=skipped)
