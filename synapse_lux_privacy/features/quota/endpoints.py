"""Admin API of the quota (R4): per-user quota, and reconciliation on demand.

- ``GET /users/{user_id}/quota`` -> ``{"quota_bytes": ..., "used_bytes": ...}``: the
  quota that applies (the override, else ``quota.default_bytes``; null: none) and
  the usage counted against it;
- ``PUT /users/{user_id}/quota`` with ``{"quota_bytes": N}`` (a whole number of bytes
  above zero) or ``{"quota_bytes": null}`` (back to the default); answers as GET.
  A lower quota is enforced by the next eviction pass, within a minute (the upload
  limit of other processes follows within ``upload_path.CACHE_MS``);
- ``POST /quota/reconcile`` (empty body): recompute usage from Synapse's tables now
  and return what was corrected.
"""

from collections.abc import Callable, Sequence
from typing import Any

from synapse.module_api import ModuleApi, SynapseRequest

from synapse_lux_privacy.admin_api import params
from synapse_lux_privacy.admin_api.resource import Route, route
from synapse_lux_privacy.features.quota.reconcile import Reconciler
from synapse_lux_privacy.features.quota.report import StorageReport
from synapse_lux_privacy.features.quota.upload_path import QuotaCache
from synapse_lux_privacy.features.quota.usage_store import UsageStore

_MAX_BYTES = 2**63 - 1


class QuotaEndpoints:
    def __init__(
        self,
        api: ModuleApi,
        store: UsageStore,
        quotas: QuotaCache,
        report: StorageReport,
        reconciler: Reconciler,
        clock_ms: Callable[[], int],
    ) -> None:
        self._api = api
        self._store = store
        self._quotas = quotas
        self._report = report
        self._reconciler = reconciler
        self._clock_ms = clock_ms

    def routes(self) -> list[Route]:
        return [
            route("GET", "/users/{user_id}/quota", self.get),
            route("PUT", "/users/{user_id}/quota", self.put),
            route("POST", "/quota/reconcile", self.reconcile),
        ]

    async def get(
        self, request: SynapseRequest, admin: str, path: Sequence[str]
    ) -> tuple[int, Any]:
        user_id = await params.local_user(self._api, path[0])
        return 200, await self._quota_json(user_id)

    async def put(
        self, request: SynapseRequest, admin: str, path: Sequence[str]
    ) -> tuple[int, Any]:
        user_id = await params.local_user(self._api, path[0])
        body = params.read_json_object(request, frozenset({"quota_bytes"}))
        if "quota_bytes" not in body:
            raise params.invalid("quota_bytes is required: a number of bytes, or null")
        value = body["quota_bytes"]
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_BYTES
        ):
            raise params.invalid(
                "quota_bytes must be a whole number of bytes above zero, or null for the default"
            )
        await self._store.set_override(user_id, value, admin, self._clock_ms())
        self._quotas.forget(user_id)
        return 200, await self._quota_json(user_id)

    async def reconcile(
        self, request: SynapseRequest, admin: str, path: Sequence[str]
    ) -> tuple[int, Any]:
        params.read_json_object(request, frozenset())
        report = await self._reconciler.run()
        return 200, report.to_json()

    async def _quota_json(self, user_id: str) -> dict[str, Any]:
        storage = await self._report.storage(user_id)
        return {"quota_bytes": storage["quota_bytes"], "used_bytes": storage["used_bytes"]}
