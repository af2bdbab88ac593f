"""The directory fields of the per-user report (R14): consent and pending national changes."""

from collections.abc import Mapping
from typing import Any

from synapse_lux_privacy.features.directory.consent_store import ConsentStore
from synapse_lux_privacy.features.directory.outbox_store import OutboxStore


class DirectoryReport:
    def __init__(self, consent: ConsentStore, outbox: OutboxStore) -> None:
        self._consent = consent
        self._outbox = outbox

    async def fields(self, user_id: str) -> Mapping[str, Any]:
        consent = await self._consent.get(user_id)
        return {
            "directory_consent": consent.consent,
            "directory_consent_updated_ts": consent.updated_ts,
            "directory_outbox": [e.to_json() for e in await self._outbox.for_user(user_id)],
        }
