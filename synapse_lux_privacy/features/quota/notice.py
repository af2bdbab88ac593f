"""Telling a user what eviction removed (R4): one server notice, French and English.

Evictions add to a pending count per user; the main process (Synapse sends server
notices only from there) sends it when Synapse's ``server_notices`` is configured. A
user gets at most one notice a day: evictions in between are summed into the next.
"""

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence

from synapse.module_api import ModuleApi

from synapse_lux_privacy.db import Cursor, DbRunner
from synapse_lux_privacy.features.quota.policy import human_size
from synapse_lux_privacy.synapse_adapter import accounts
from synapse_lux_privacy.synapse_adapter import quota as synapse_quota
from synapse_lux_privacy.units import DAY_MS

logger = logging.getLogger(__name__)

NOTICE_EVERY_MS = DAY_MS

# quota.notice_texts when not configured; placeholders {count}, {removed}, {quota}.
DEFAULT_TEXTS: tuple[tuple[str, str], ...] = (
    (
        "fr",
        "Votre espace de stockage dépassait la capacité autorisée par utilisateur ({quota})."
        " Pour revenir sous cette limite, vos éléments les plus anciens ont été supprimés :"
        " {count} message(s) et fichier(s) attaché(s), soit {removed}.",
    ),
    (
        "en",
        "Your storage was above the capacity allowed per user ({quota})."
        " To bring it back under the limit, your oldest items were deleted:"
        " {count} message(s) and attachment(s), {removed} in total.",
    ),
)


def compose(texts: Sequence[tuple[str, str]], count: int, removed: int, quota: int | None) -> str:
    """The notice: one paragraph per language, in the configured order."""
    return "\n\n".join(
        template.format(
            count=count,
            removed=human_size(removed, language),
            quota="-" if quota is None else human_size(quota, language),
        )
        for language, template in texts
    )


class Notices:
    def __init__(
        self,
        api: ModuleApi,
        db: DbRunner,
        clock_ms: Callable[[], int],
        texts: tuple[tuple[str, str], ...] | None,
    ) -> None:
        self._api = api
        self._db = db
        self._clock_ms = clock_ms
        self._texts = DEFAULT_TEXTS if texts is None else texts
        self._flushing = False  # only the main process sends: one flush at a time there

    async def add(self, evicted: Mapping[str, tuple[int, int]]) -> None:
        """Remember user -> (items, bytes) evicted, for the next notice.

        Nothing is kept when no notice will be sent: ``notice_texts: {}``, or Synapse's
        ``server_notices`` not configured.
        """
        if not self._texts or not evicted or accounts.server_notices_user(self._api) is None:
            return

        def txn(cur: Cursor) -> None:
            for user_id, (count, size) in sorted(evicted.items()):
                cur.execute(
                    "INSERT INTO lux_privacy_quota_notices (user_id, pending_count,"
                    " pending_bytes, last_sent_ts) VALUES (?, ?, ?, NULL)"
                    " ON CONFLICT (user_id) DO UPDATE SET"
                    " pending_count = lux_privacy_quota_notices.pending_count"
                    " + excluded.pending_count,"
                    " pending_bytes = lux_privacy_quota_notices.pending_bytes"
                    " + excluded.pending_bytes",
                    (user_id, count, size),
                )

        await self._db("lux_privacy_quota_notice_add", txn)

    async def flush(self, quota_of: Callable[[str], Awaitable[int | None]]) -> int:
        """Send the notices that are due (main process only); how many were sent."""
        if (
            self._flushing
            or not self._texts
            or not synapse_quota.can_send_server_notices(self._api)
        ):
            return 0
        self._flushing = True
        try:
            return await self._send_due(quota_of)
        finally:
            self._flushing = False

    async def _send_due(self, quota_of: Callable[[str], Awaitable[int | None]]) -> int:
        now = self._clock_ms()

        def due(cur: Cursor) -> list[tuple[str, int, int]]:
            cur.execute(
                "SELECT user_id, pending_count, pending_bytes FROM lux_privacy_quota_notices"
                " WHERE pending_count > 0 AND (last_sent_ts IS NULL OR last_sent_ts <= ?)"
                " ORDER BY user_id",
                (now - NOTICE_EVERY_MS,),
            )
            return [(str(r[0]), int(r[1]), int(r[2])) for r in cur.fetchall()]

        sent = 0
        for user_id, count, size in await self._db("lux_privacy_quota_notices_due", due):
            try:
                body = compose(self._texts, count, size, await quota_of(user_id))
                await synapse_quota.send_server_notice(self._api, user_id, body)
            except Exception:
                logger.warning(
                    "lux_privacy: could not notify %s of an eviction", user_id, exc_info=True
                )
                continue
            await self._db("lux_privacy_quota_notice_sent", _sent_txn, user_id, count, size, now)
            sent += 1
        return sent


def _sent_txn(cur: Cursor, user_id: str, count: int, size: int, now: int) -> None:
    """Take what was told off the pending count (evictions since then stay pending)."""
    cur.execute(
        "UPDATE lux_privacy_quota_notices SET pending_count = pending_count - ?,"
        " pending_bytes = pending_bytes - ?, last_sent_ts = ? WHERE user_id = ?",
        (count, size, now, user_id),
    )
