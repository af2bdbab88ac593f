"""The content fields of the per-user report (R14): ``messages`` and ``media``.

Each is ``{count, oldest_ts, next_deletion_ts, held_count}``: how many items the
server stores, the oldest one's time, when the next one of them is due to lose
something (its content or its row), and how many of them a legal hold covers (R13).
The report agrees with the sweep: an item a hold covers (every item of a held user;
a message sent to a held room; a file an event of a held room refers to, wherever
the URI stands) has no deletion date, so ``next_deletion_ts`` is the earliest date
of the items no hold covers, null when nothing is due to go: no items, only avatars
in use (R7), or only held items.

``media`` also has ``provider_copies``: per storage provider the module knows
(``s3:<bucket>/<prefix>``, ``file:<directory>``), how many of the user's uploads have
their file there, checked with the bucket or the directory at each request (null
where the bucket could not answer).
"""

from collections.abc import Iterable
from typing import Any

from synapse.module_api import ModuleApi

from synapse_lux_privacy.db import DbRunner, Dialect
from synapse_lux_privacy.features.content.held_media import held_room_media
from synapse_lux_privacy.features.content.policy import ContentPolicy
from synapse_lux_privacy.features.quota.accounting import EVENTS_WATERMARK
from synapse_lux_privacy.features.quota.reconcile import LEDGER_COMPLETE
from synapse_lux_privacy.store.holds import HoldSet, HoldStore
from synapse_lux_privacy.synapse_adapter import events, media


def _earliest(values: Iterable[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


class ContentReport:
    def __init__(
        self,
        api: ModuleApi,
        db: DbRunner,
        dialect: Dialect,
        policy: ContentPolicy,
        holds: HoldStore,
    ) -> None:
        self._api = api
        self._db = db
        self._dialect = dialect
        self._policy = policy
        self._holds = holds

    async def report(self, user_id: str) -> dict[str, Any]:
        holds = await self._holds.active_holds()
        return {
            "messages": await self._messages(user_id, holds),
            "media": await self._media(user_id, holds),
        }

    async def _messages(self, user_id: str, holds: HoldSet) -> dict[str, Any]:
        user_held = user_id in holds.user_ids
        stats = await events.user_event_stats(
            self._db,
            self._dialect,
            user_id,
            (LEDGER_COMPLETE, EVENTS_WATERMARK),
            holds.room_ids,
        )
        due = (
            self._policy.next_event_deletion(s.type, s.msgtype, s.oldest_unexpunged_ts)
            for s in stats
            if s.oldest_unexpunged_ts is not None and not (user_held or s.held)
        )
        return {
            "count": sum(s.count for s in stats),
            "oldest_ts": _earliest(s.oldest_ts for s in stats),
            "next_deletion_ts": _earliest(due),
            "held_count": sum(s.count for s in stats if user_held or s.held),
        }

    async def _media(self, user_id: str, holds: HoldSet) -> dict[str, Any]:
        uploads = media.local_mxcs(self._api, await media.user_local_media(self._db, user_id))
        avatars = await media.avatars_in_use(self._db, list(uploads))
        in_held_rooms = await held_room_media(self._db, holds) if uploads else {}
        held = set(uploads) if user_id in holds.user_ids else set(in_held_rooms) & set(uploads)
        due = (
            m.created_ts + self._policy.local_media_lifetime(m.media_type)
            for uri, m in uploads.items()
            if uri not in avatars and uri not in held
        )
        return {
            "count": len(uploads),
            "oldest_ts": _earliest(m.created_ts for m in uploads.values()),
            "next_deletion_ts": _earliest(due),
            "held_count": len(held),
            "provider_copies": await media.provider_copies(
                self._api, [m.media_id for m in uploads.values()]
            ),
        }
