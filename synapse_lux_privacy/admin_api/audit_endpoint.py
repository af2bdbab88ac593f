"""GET /audit: what the sweeps deleted, newest first (identifiers and counts, never content)."""

from collections.abc import Sequence
from typing import Any

from synapse.module_api import SynapseRequest

from synapse_lux_privacy.admin_api.params import query_int
from synapse_lux_privacy.store.audit import AuditStore

MAX_LIMIT = 1000


class AuditEndpoint:
    def __init__(self, audit: AuditStore) -> None:
        self._audit = audit

    async def get(
        self, request: SynapseRequest, admin: str, params: Sequence[str]
    ) -> tuple[int, Any]:
        since = query_int(request, "since", 0, 0, 2**63 - 1)
        limit = query_int(request, "limit", 100, 1, MAX_LIMIT)
        entries = await self._audit.list_entries(since, limit)
        return 200, [e.to_json() for e in entries]
