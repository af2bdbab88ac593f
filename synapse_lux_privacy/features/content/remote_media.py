"""The remote media rule (R2, R6, R13): cached copies of other servers' media go in time too.

A copy is counted from the moment it was cached here (``remote_media_cache.created_ts``),
never from its last access, and goes after ``retention.remote_media`` (or the first
rule matching its content type), with its thumbnails and storage-provider copies.
Fetching it again later makes a new copy, which starts a new life.
"""

import functools
import logging
from collections.abc import Sequence

import attrs
from synapse.module_api import ModuleApi

from synapse_lux_privacy.db import DbRunner
from synapse_lux_privacy.features.content import cursor
from synapse_lux_privacy.features.content.expunged import item_id, parse_item
from synapse_lux_privacy.features.content.held_media import held_room_media
from synapse_lux_privacy.features.content.policy import ContentPolicy, due, sent_before
from synapse_lux_privacy.store.holds import HoldSet
from synapse_lux_privacy.sweep.rule import Candidate, CandidatePage, DeleteOutcome, SweepContext
from synapse_lux_privacy.synapse_adapter import media
from synapse_lux_privacy.synapse_adapter.media import RemoteMedia

logger = logging.getLogger(__name__)

REMOTE = "remote"


def _value(m: RemoteMedia) -> str:
    # Server names and file IDs never contain "/"; a media ID comes last.
    return f"{m.origin}/{m.filesystem_id}/{m.media_id}"


class RemoteMediaRule:
    name = "remote_media"
    # A batch's copies leave the storage providers' buckets together: the rule reports
    # each copy that stayed in ``DeleteOutcome.failed``.
    isolates_failures = True

    def __init__(self, api: ModuleApi, db: DbRunner, policy: ContentPolicy) -> None:
        self._api = api
        self._db = db
        self._policy = policy

    async def find_candidates(
        self, ctx: SweepContext, holds: HoldSet, cursor_value: str | None
    ) -> CandidatePage:
        parts = cursor.decode(cursor_value)
        rows = await media.old_remote_media(
            self._db,
            sent_before(ctx.as_of_ms, self._policy.shortest_remote_media_lifetime()),
            None if parts is None else (parts[0], parts[1], parts[2]),
            ctx.batch_size,
        )
        held_rooms = await held_room_media(self._db, holds)
        items = [
            Candidate(
                item_id(REMOTE, _value(m)),
                None,
                held_rooms.get(media.mxc(m.origin, m.media_id)),
                m.size,
            )
            for m in rows
            if due(m.created_ts, self._policy.remote_media_lifetime(m.media_type), ctx.as_of_ms)
        ]
        if len(rows) < ctx.batch_size:
            return CandidatePage(items, None)
        last = rows[-1]
        return CandidatePage(items, cursor.encode(last.created_ts, last.origin, last.media_id))

    async def delete(self, ctx: SweepContext, items: Sequence[Candidate]) -> DeleteOutcome:
        copies: dict[str, RemoteMedia] = {}
        for item in items:
            origin, filesystem_id, media_id = parse_item(item)[1].split("/", 2)
            copies[item.item_id] = RemoteMedia(
                origin, media_id, filesystem_id, "", item.size_bytes, 0
            )
        try:
            outcome = await ctx.step(
                len(copies), functools.partial(media.delete_remote_media, self._api, copies)
            )
        except Exception as error:
            logger.exception("lux_privacy: deleting %d remote copies failed", len(items))
            return DeleteOutcome(failed={c.item_id: type(error).__name__ for c in items})
        by_id = {c.item_id: c for c in items}
        deleted = [
            attrs.evolve(by_id[key], provider_objects=outcome.provider_objects.get(key, 0))
            for key in outcome.deleted
        ]
        return DeleteOutcome(deleted=deleted, failed=outcome.failed)
