"""The content fields of the per-user report (R14): ``messages`` and ``media``.

Each is ``{count, oldest_ts, next_deletion_ts}``: how many items the server stores,
the oldest one's time, and when the next one of them is due to lose something
(its content or its row). ``next_deletion_ts`` is null when nothing is due to go:
no items, only avatars in use (R7), or a legal hold on the user (R13).
"""

from collections.abc import Iterable
from typing import Any

from synapse.module_api import ModuleApi

from synapse_lux_privacy.db import DbRunner, Dialect
from synapse_lux_privacy.features.content.policy import ContentPolicy
from synapse_lux_privacy.features.quota.accounting import EVENTS_WATERMARK
from synapse_lux_privacy.features.quota.reconcile import LEDGER_COMPLETE
from synapse_lux_privacy.store.holds import HoldStore
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
        held = user_id in (await self._holds.active_holds()).user_ids
        return {
            "messages": await self._messages(user_id, held),
            "media": await self._media(user_id, held),
        }

    async def _messages(self, user_id: str, held: bool) -> dict[str, Any]:
        stats = await events.user_event_stats(
            self._db, self._dialect, user_id, (LEDGER_COMPLETE, EVENTS_WATERMARK)
        )
        due = (
            self._policy.next_event_deletion(s.type, s.msgtype, s.oldest_unexpunged_ts)
            for s in stats
            if s.oldest_unexpunged_ts is not None
        )
        return {
            "count": sum(s.count for s in stats),
            "oldest_ts": _earliest(s.oldest_ts for s in stats),
            "next_deletion_ts": None if held else _earliest(due),
        }

    async def _media(self, user_id: str, held: bool) -> dict[str, Any]:
        uploads = media.local_mxcs(self._api, await media.user_local_media(self._db, user_id))
        avatars = await media.avatars_in_use(self._db, list(uploads))
        due = (
            m.created_ts + self._policy.local_media_lifetime(m.media_type)
            for uri, m in uploads.items()
            if uri not in avatars
        )
        return {
            "count": len(uploads),
            "oldest_ts": _earliest(m.created_ts for m in uploads.values()),
            "next_deletion_ts": None if held else _earliest(due),
        }
