"""The eviction loop (R4): a user over quota is brought back under it within a minute.

Runs every ``quota.eviction_interval`` (30 s by default) on the instance that runs
background tasks. Each pass brings usage up to date (new events, users who uploaded),
updates the users-over-quota metric, and runs a sweep of the ``quota`` rule alone
when it would evict something: through the orchestrator, so the sweep lock, legal
holds, the audit trail and the metrics apply as in every sweep. A pass that finds
the lock taken leaves the work to the running sweep, which runs the quota rule too.
"""

import logging

from synapse.module_api import ModuleApi

from synapse_lux_privacy.config import LuxPrivacyConfig
from synapse_lux_privacy.features.quota import metrics
from synapse_lux_privacy.features.quota.accounting import Accounting
from synapse_lux_privacy.features.quota.reconcile import Reconciler
from synapse_lux_privacy.features.quota.rule import QuotaRule
from synapse_lux_privacy.features.quota.usage_store import UsageStore
from synapse_lux_privacy.store.holds import HoldStore
from synapse_lux_privacy.sweep.orchestrator import SweepAlreadyRunning, SweepOrchestrator

logger = logging.getLogger(__name__)


class EvictionLoop:
    def __init__(
        self,
        api: ModuleApi,
        config: LuxPrivacyConfig,
        holds: HoldStore,
        store: UsageStore,
        accounting: Accounting,
        reconciler: Reconciler,
        rule: QuotaRule,
        orchestrator: SweepOrchestrator,
    ) -> None:
        self._api = api
        self._config = config
        self._holds = holds
        self._store = store
        self._accounting = accounting
        self._reconciler = reconciler
        self._rule = rule
        self._orchestrator = orchestrator
        self._busy = False

    async def tick(self) -> None:
        """One pass; never raises (the next pass tries again)."""
        if self._busy:
            return
        self._busy = True
        try:
            await self._pass()
        except Exception:
            logger.exception("lux_privacy: the quota eviction pass failed")
        finally:
            self._busy = False

    async def _pass(self) -> None:
        quota = self._config.quota
        await self._accounting.catch_up(with_audit=False)
        await self._reconciler.maybe_run_in_background()
        over = await self._store.count_over_quota(quota.counts, quota.default_bytes)
        metrics.users_over_quota.labels(self._api.server_name).set(over)
        if over == 0 or self._config.dry_run:
            return
        if not await self._rule.pending(await self._holds.active_holds()):
            return
        try:
            await self._orchestrator.run(as_of_ms=None, dry_run=False, rule_names=[self._rule.name])
        except SweepAlreadyRunning:
            logger.debug("lux_privacy: a sweep is running; it evicts over-quota users itself")
