"""The attachments rule (R2, R6, R7, R13): files go 12 months after upload, with their events.

Two steps, each in batches of at most ``sweep_batch_size``:

1. attachment events sent in clear (stickers, and messages with msgtype m.image,
   m.video, m.audio or m.file) past their content lifetime lose their content
   through Synapse's event expiry, as a redaction would. An event whose row is due
   as well is left to the messages rule, which runs first;
2. local uploads past their lifetime (counted from upload, never from last access)
   are deleted with their thumbnails, database rows and storage-provider copies.
   Avatars in use by a profile or a room are kept (R7: profile data).

Encrypted events are opaque to the server: the file goes here at its lifetime
while the ``m.room.encrypted`` event that points to it follows the messages rule.

A pass that runs to its end leaves a mark (``scan_marks.py``): the next pass's first
step only reads the attachment events that may have changed since (become due with
time, stored since, or failed), not every old one that stays (expunged, held, or
waiting for its row's lifetime), so that a sweep with nothing due costs the same
however much history is kept.
"""

import functools
from collections.abc import Sequence
from typing import Any

from synapse.module_api import ModuleApi

from synapse_lux_privacy.db import DbRunner, Dialect
from synapse_lux_privacy.features.content import cursor, scan_marks
from synapse_lux_privacy.features.content.expunged import (
    EXPUNGE,
    Expunger,
    item_id,
    parse_item,
    parse_item_id,
)
from synapse_lux_privacy.features.content.held_media import held_room_media
from synapse_lux_privacy.features.content.media_batch import delete_media_batch
from synapse_lux_privacy.features.content.messages import event_candidate
from synapse_lux_privacy.features.content.policy import (
    ATTACHMENT_TYPES,
    ContentPolicy,
    due,
    sent_before,
)
from synapse_lux_privacy.store.holds import HoldSet
from synapse_lux_privacy.sweep.rule import Candidate, CandidatePage, DeleteOutcome, SweepContext
from synapse_lux_privacy.synapse_adapter import events, media

MEDIA = "media"
EVENTS_STEP, MEDIA_STEP = "events", "media"
# Beyond this many failed events waiting for a retry, a pass reads every old attachment
# event rather than naming each failed one in its query.
MAX_NAMED_FAILURES = 500


class AttachmentsRule:
    name = "attachments"
    # A batch's files leave the storage providers' buckets together (one listing per
    # thumbnail folder side by side, ``DeleteObjects`` by 1000 keys): the rule reports
    # each file or event that stayed in ``DeleteOutcome.failed``.
    isolates_failures = True

    def __init__(
        self,
        api: ModuleApi,
        db: DbRunner,
        dialect: Dialect,
        policy: ContentPolicy,
        expunger: Expunger,
    ) -> None:
        self._api = api
        self._db = db
        self._dialect = dialect
        self._policy = policy
        self._expunger = expunger
        self._marks = scan_marks.ScanMarks(api, db, self.name)

    async def find_candidates(
        self, ctx: SweepContext, holds: HoldSet, cursor_value: str | None
    ) -> CandidatePage:
        step, key, tiebreak = cursor.decode(cursor_value) or (EVENTS_STEP, None, None)
        after = None if key is None else (key, tiebreak)
        if step == EVENTS_STEP:
            return await self._events(ctx, holds, after, cursor_value is None)
        return await self._media(ctx, holds, after)

    async def pass_completed(self, ctx: SweepContext) -> None:
        """The orchestrator's call after a real pass's last batch: leave the mark."""
        await self._marks.finish_pass()

    async def _events(
        self, ctx: SweepContext, holds: HoldSet, after: Any, first_page: bool
    ) -> CandidatePage:
        rows = await events.old_attachment_events(
            self._db,
            self._dialect,
            ATTACHMENT_TYPES,
            sent_before(ctx.as_of_ms, self._policy.shortest_attachment_lifetime()),
            after,
            ctx.batch_size,
            await self._changes(ctx, holds, first_page),
        )
        items = [
            event_candidate(EXPUNGE, e)
            for e in rows
            if self._policy.attachment_due(e.type, e.msgtype, e.age_ts, ctx.as_of_ms)
        ]
        if len(rows) < ctx.batch_size:
            return CandidatePage(items, cursor.encode(MEDIA_STEP, None, None))
        return CandidatePage(items, cursor.encode(EVENTS_STEP, rows[-1].ts, rows[-1].stream))

    async def _changes(
        self, ctx: SweepContext, holds: HoldSet, first_page: bool
    ) -> events.Changes | None:
        """What may have changed since the last finished pass, or None to read every old
        attachment event (no usable mark, or too many failed events to name)."""
        judged = scan_marks.fingerprint(self._policy, holds)
        mark, failing = await self._marks.open(ctx, judged, first_page)
        failed = [v for k, v in map(parse_item_id, failing.item_ids) if k == EXPUNGE]
        if mark is None or len(failed) > MAX_NAMED_FAILURES:
            return None
        return scan_marks.changes(mark, self._policy.attachment_lifetimes(), ctx.as_of_ms, failed)

    async def _media(self, ctx: SweepContext, holds: HoldSet, after: Any) -> CandidatePage:
        rows = await media.old_local_media(
            self._db,
            sent_before(ctx.as_of_ms, self._policy.shortest_local_media_lifetime()),
            after,
            ctx.batch_size,
        )
        by_uri = media.local_mxcs(self._api, rows)
        avatars = await media.avatars_in_use(self._db, list(by_uri))
        held_rooms = await held_room_media(self._db, holds)
        items = [
            Candidate(item_id(MEDIA, m.media_id), m.user_id, held_rooms.get(uri), m.size)
            for uri, m in by_uri.items()
            if uri not in avatars
            and due(m.created_ts, self._policy.local_media_lifetime(m.media_type), ctx.as_of_ms)
        ]
        if len(rows) < ctx.batch_size:
            return CandidatePage(items, None)
        return CandidatePage(
            items, cursor.encode(MEDIA_STEP, rows[-1].created_ts, rows[-1].media_id)
        )

    async def delete(self, ctx: SweepContext, items: Sequence[Candidate]) -> DeleteOutcome:
        files = {parse_item(c)[1]: c for c in items if parse_item(c)[0] == MEDIA}
        events = [c for c in items if parse_item(c)[0] == EXPUNGE]
        # Each step followed by the pace's rest (issue 22), as the messages rule's purges.
        expunged, failed = await ctx.step(
            len(events), functools.partial(self._expunger.expunge_each, self.name, events)
        )
        removed = await ctx.step(
            len(files), functools.partial(delete_media_batch, self._api, files)
        )
        failed.update(removed.failed)
        return DeleteOutcome(deleted=[*expunged, *removed.deleted], failed=failed)
