"""The per-user report's ``storage`` field (R4, R14): usage by kind and the quota.

``used_bytes`` counts what ``quota.counts`` includes; ``media_bytes`` (uploads with
their thumbnails) and ``event_bytes`` (stored JSON of the events the user sent) are
always given; ``quota_bytes`` is null when no quota applies.
"""

from collections.abc import Mapping
from typing import Any

from synapse_lux_privacy.config import QuotaConfig
from synapse_lux_privacy.features.quota.usage_store import UsageStore


class StorageReport:
    def __init__(self, config: QuotaConfig, store: UsageStore) -> None:
        self._config = config
        self._store = store

    async def storage(self, user_id: str) -> dict[str, int | None]:
        usage = await self._store.usage(user_id)
        return {
            "used_bytes": usage.used(self._config.counts),
            "media_bytes": usage.media_bytes,
            "event_bytes": usage.event_bytes,
            "quota_bytes": await self._store.quota(user_id, self._config.default_bytes),
        }

    async def report(self, user_id: str) -> Mapping[str, Any]:
        return {"storage": await self.storage(user_id)}
