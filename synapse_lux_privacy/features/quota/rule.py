"""The ``quota`` sweep rule (R4, R6, R13): users over quota lose their oldest items.

For each user over quota (user ID order), a *round* starts from the user's usage and
walks their items oldest first, media and messages together, choosing items until the
bytes they free bring usage back to the quota (``policy.plan``). Uploads are deleted
with their thumbnails and storage-provider copies, as the attachments rule deletes
them (avatars in use stay, R7); a message is expunged as a redaction would, since an
event cannot be cut out of a room's history, and frees the difference in stored JSON.

After a round the user's usage is read again: if it went down but is still over the
quota (a message freed less than expected, an item was held), a new round goes on
from where the last one stopped. A round that freed nothing ends with the user, so a
sweep always ends. Held users (R13) get their candidates counted as held and nothing
deleted; events and files of held rooms are passed over, like avatars in use. The
cursor carries the round, so rules keep no state between calls and a killed sweep is
simply resumed by the next one.
"""

import json
from collections.abc import Mapping, Sequence

import attrs
from synapse.module_api import ModuleApi

from synapse_lux_privacy.config import QuotaConfig
from synapse_lux_privacy.db import Cursor, DbRunner
from synapse_lux_privacy.features.content.expunged import Expunger
from synapse_lux_privacy.features.content.held_media import held_room_media
from synapse_lux_privacy.features.content.media_batch import delete_media_batch
from synapse_lux_privacy.features.quota import ledger, metrics
from synapse_lux_privacy.features.quota.accounting import Accounting
from synapse_lux_privacy.features.quota.notice import Notices
from synapse_lux_privacy.features.quota.policy import (
    EVENTS,
    MEDIA,
    Item,
    Position,
    merge_oldest_first,
    plan,
)
from synapse_lux_privacy.features.quota.reconcile import Reconciler
from synapse_lux_privacy.features.quota.usage_store import UsageStore
from synapse_lux_privacy.store.holds import HoldSet
from synapse_lux_privacy.sweep.rule import Candidate, CandidatePage, DeleteOutcome, SweepContext
from synapse_lux_privacy.synapse_adapter import media

# Users over quota that the eviction loop looks at before deciding to run the rule.
PENDING_USERS = 100


@attrs.frozen
class Round:
    """Eviction of one user, from ``base`` bytes used, after ``after`` in their items."""

    user_id: str
    quota: int
    base: int
    planned: int
    after: Position | None

    @property
    def need(self) -> int:
        return self.base - self.quota - self.planned


def _encode(r: Round) -> str:
    after = None if r.after is None else [r.after.ts, r.after.rank, r.after.item_id]
    return json.dumps([r.user_id, r.quota, r.base, r.planned, after], separators=(",", ":"))


def _decode(cursor: str) -> Round:
    user_id, quota, base, planned, after = json.loads(cursor)
    return Round(user_id, quota, base, planned, None if after is None else Position(*after))


def _parse(candidate: Candidate) -> tuple[str, str]:
    kind, _, item_id = candidate.item_id.partition(":")
    return kind, item_id


class QuotaRule:
    name = "quota"
    # A batch's files leave the storage providers' buckets together; the rule reports
    # each file or message that stayed in ``DeleteOutcome.failed``.
    isolates_failures = True

    def __init__(
        self,
        api: ModuleApi,
        db: DbRunner,
        config: QuotaConfig,
        store: UsageStore,
        accounting: Accounting,
        reconciler: Reconciler,
        notices: Notices,
        expunger: Expunger,
    ) -> None:
        self._api = api
        self._db = db
        self._config = config
        self._store = store
        self._accounting = accounting
        self._reconciler = reconciler
        self._notices = notices
        self._expunger = expunger

    async def quota_of(self, user_id: str) -> int | None:
        return await self._store.quota(user_id, self._config.default_bytes)

    # -- finding candidates ---------------------------------------------------------------

    async def find_candidates(
        self, ctx: SweepContext, holds: HoldSet, cursor: str | None
    ) -> CandidatePage:
        if cursor is None:
            await self._accounting.catch_up(with_audit=True)
            await self._reconciler.maybe_run_in_background()
        page = await self._next_page(ctx, holds, None if cursor is None else _decode(cursor))
        if page.next_cursor is None:
            await self._notices.flush(self.quota_of)
        return page

    async def _next_page(
        self, ctx: SweepContext, holds: HoldSet, current: Round | None
    ) -> CandidatePage:
        last_user: str | None = None
        while True:
            if current is None:
                current = await self._first_round(last_user)
                if current is None:
                    return CandidatePage([], None)
            if current.need > 0:
                items, exhausted = await self._items(current.user_id, current.after, ctx.batch_size)
                chosen = plan(items, current.need, await self._keeper(items, holds))
                if chosen.last is not None:
                    current = attrs.evolve(
                        current, planned=current.planned + chosen.freed, after=chosen.last
                    )
                    if chosen.chosen:
                        candidates = self._candidates(current.user_id, chosen.chosen)
                        return CandidatePage(candidates, _encode(current))
                    if not exhausted:
                        continue
            following = await self._next_round(ctx, current)
            if following is None:
                last_user, current = current.user_id, None
            else:
                current = following

    async def _first_round(self, after_user: str | None) -> Round | None:
        found = await self._store.over_quota(
            self._config.counts, self._config.default_bytes, after_user, 1
        )
        return Round(found[0].user_id, found[0].quota, found[0].used, 0, None) if found else None

    async def _next_round(self, ctx: SweepContext, done: Round) -> Round | None:
        """Go on with the same user only if the last round freed something (real sweeps)."""
        if ctx.dry_run:
            return None
        used = (await self._store.usage(done.user_id)).used(self._config.counts)
        if done.quota < used < done.base:
            return Round(done.user_id, done.quota, used, 0, done.after)
        return None

    async def _items(
        self, user_id: str, after: Position | None, limit: int
    ) -> tuple[list[Item], bool]:
        kinds = [kind for kind in (MEDIA, EVENTS) if kind in self._config.counts]

        def txn(cur: Cursor) -> tuple[list[Item], bool]:
            found = {kind: ledger.oldest_txn(cur, kind, user_id, after, limit) for kind in kinds}
            return merge_oldest_first(found.get(MEDIA, []), found.get(EVENTS, []), limit)

        return await self._db("lux_privacy_quota_oldest", txn)

    async def _keeper(self, items: Sequence[Item], holds: HoldSet) -> "_Keep":
        """What eviction passes over: avatars in use (R7, as the attachments rule keeps
        them), and events and files of held rooms (R13)."""
        uris = [self._mxc(i.item_id) for i in items if i.kind == MEDIA]
        avatars = await media.avatars_in_use(self._db, uris) if uris else set()
        held_uris = await held_room_media(self._db, holds) if uris else {}
        return _Keep(self._api.server_name, avatars | set(held_uris), holds.room_ids)

    def _mxc(self, media_id: str) -> str:
        return media.mxc(self._api.server_name, media_id)

    @staticmethod
    def _candidates(user_id: str, items: Sequence[Item]) -> list[Candidate]:
        """Events carry their room, so a room hold covers them (R13); files of held rooms
        were passed over when planning."""
        return [
            Candidate(f"{item.kind}:{item.item_id}", user_id, item.room_id, item.freeable)
            for item in items
        ]

    async def pending(self, holds: HoldSet) -> bool:
        """Whether some user over quota has an item eviction could remove now.

        Lets the eviction loop run a sweep only when it would delete something.
        """
        for user in await self._store.over_quota(
            self._config.counts, self._config.default_bytes, None, PENDING_USERS
        ):
            if holds.covers(user.user_id, None):
                continue
            items, _ = await self._items(user.user_id, None, PENDING_USERS)
            chosen = plan(items, user.used - user.quota, await self._keeper(items, holds))
            candidates = self._candidates(user.user_id, chosen.chosen)
            if any(not holds.covers(c.user_id, c.room_id) for c in candidates):
                return True
        return False

    # -- deleting -------------------------------------------------------------------------

    async def delete(self, ctx: SweepContext, items: Sequence[Candidate]) -> DeleteOutcome:
        files = {_parse(c)[1]: c for c in items if _parse(c)[0] == MEDIA}
        media_ids = list(files)
        events = [c for c in items if _parse(c)[0] == EVENTS]
        deletion = await delete_media_batch(self._api, files)
        removed = {_parse(c)[1]: c.provider_objects for c in deletion.deleted}
        done_events, failed = await self._expunger.expunge_each(self.name, events)
        failed.update(deletion.failed)
        expunged = {_parse(c)[1] for c in done_events}
        changes = await self._accounting.settle(
            media_ids, [_parse(c)[1] for c in events], sorted(expunged)
        )
        done: list[Candidate] = []
        for candidate in items:
            kind, item_id = _parse(candidate)
            if item_id in (removed if kind == MEDIA else expunged):
                freed = max(0, -changes.by_item.get(item_id, 0))
                objects = removed.get(item_id, 0) if kind == MEDIA else 0
                done.append(attrs.evolve(candidate, size_bytes=freed, provider_objects=objects))
                server = self._api.server_name
                metrics.evicted_bytes_total.labels(server, kind).inc(freed)
                metrics.evicted_items_total.labels(server, kind).inc()
        await self._notices.add(_per_user(done))
        return DeleteOutcome(deleted=done, failed=failed)


@attrs.frozen
class _Keep:
    server_name: str
    kept_uris: set[str]
    held_rooms: frozenset[str]

    def __call__(self, item: Item) -> bool:
        if item.kind == MEDIA:
            return media.mxc(self.server_name, item.item_id) in self.kept_uris
        return item.room_id in self.held_rooms


def _per_user(done: Sequence[Candidate]) -> Mapping[str, tuple[int, int]]:
    totals: dict[str, tuple[int, int]] = {}
    for c in done:
        if c.user_id is not None:
            count, size = totals.get(c.user_id, (0, 0))
            totals[c.user_id] = (count + 1, size + c.size_bytes)
    return totals
