"""The per-user storage quota (R4, R6, R13, R14) as one Feature.

Usage accounting (``accounting.py``, ``reconcile.py``), the ``quota`` sweep rule
(``rule.py``) and its fast eviction loop (``eviction_loop.py``), the upload-path
callbacks (``callbacks.py``), the server notice (``notice.py``), the admin API
(``endpoints.py``) and the report's ``storage`` field (``report.py``). docs/quota.md
says what is counted, what is evicted, and what stays.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from synapse_lux_privacy.admin_api.resource import Route
from synapse_lux_privacy.feature import Feature, ModuleContext
from synapse_lux_privacy.features.quota.accounting import Accounting
from synapse_lux_privacy.features.quota.callbacks import QuotaCallbacks
from synapse_lux_privacy.features.quota.endpoints import QuotaEndpoints
from synapse_lux_privacy.features.quota.eviction_loop import EvictionLoop
from synapse_lux_privacy.features.quota.notice import Notices
from synapse_lux_privacy.features.quota.reconcile import Reconciler
from synapse_lux_privacy.features.quota.report import StorageReport
from synapse_lux_privacy.features.quota.rule import QuotaRule
from synapse_lux_privacy.features.quota.schema import QUOTA_MIGRATIONS
from synapse_lux_privacy.features.quota.upload_path import FLUSH_MS, DirtyMarks, QuotaCache
from synapse_lux_privacy.features.quota.usage_store import UsageStore
from synapse_lux_privacy.sweep.rule import Rule


class QuotaFeature(Feature):
    migrations: Mapping[str, Sequence[str]] = {"quota": QUOTA_MIGRATIONS}

    def __init__(self, ctx: ModuleContext) -> None:
        api, config = ctx.api, ctx.config
        self._ctx = ctx
        clock = ctx.clock_ms
        store = UsageStore(ctx.db)
        self._marks = DirtyMarks(store, clock)
        accounting = Accounting(api, ctx.db, store, self._marks, clock)
        reconciler = Reconciler(api, ctx.db, store, clock)
        self._notices = Notices(api, ctx.db, clock, config.quota.notice_texts)
        self._rule = QuotaRule(
            api, ctx.db, config.quota, store, accounting, reconciler, self._notices, ctx.expunger
        )
        self._report = StorageReport(config.quota, store)
        quotas = QuotaCache(store, config.quota.default_bytes, clock)
        self._callbacks = QuotaCallbacks(api, config.quota, quotas, self._marks)
        self._endpoints = QuotaEndpoints(api, store, quotas, self._report, reconciler, clock)
        self._loop = EvictionLoop(
            api, config, ctx.holds, store, accounting, reconciler, self._rule, ctx.orchestrator
        )

    def rules(self) -> Mapping[str, Rule]:
        return {self._rule.name: self._rule}

    def routes(self) -> Sequence[Route]:
        return self._endpoints.routes()

    def register_callbacks(self) -> None:
        self._callbacks.register()

    async def report(self, user_id: str) -> Mapping[str, Any]:
        return await self._report.report(user_id)

    async def start(self) -> None:
        """The eviction loop where background tasks run; notices from the main process;
        upload marks from every process."""
        api = self._ctx.api
        interval = self._ctx.config.quota.eviction_interval_ms
        api.looping_background_call(self._loop.tick, interval, desc="lux_privacy_quota_evict")
        api.looping_background_call(
            self._marks.flush, FLUSH_MS, desc="lux_privacy_quota_marks", run_on_all_instances=True
        )
        api.looping_background_call(
            self._notices.flush,
            interval,
            self._rule.quota_of,
            desc="lux_privacy_quota_notices",
            run_on_all_instances=True,
        )
