"""Data-subject requests (R14: GDPR articles 15 and 17) as one Feature.

Exports (``exporter.py``, ``export_job.py``) and erasures on request
(``erasure_job.py``, the accounts feature's R12 chain) are queued by the admin API
(``endpoints.py``) and run on the process that runs background tasks (``runner.py``).
docs/data-subject-requests.md is the page for DPOs and operators.
"""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from synapse_lux_privacy.admin_api.resource import Route
from synapse_lux_privacy.feature import Feature, ModuleContext
from synapse_lux_privacy.features.accounts.erasure import AccountEraser
from synapse_lux_privacy.features.quota.accounting import EVENTS_WATERMARK
from synapse_lux_privacy.features.quota.reconcile import LEDGER_COMPLETE
from synapse_lux_privacy.features.rights.endpoints import RightsEndpoints
from synapse_lux_privacy.features.rights.erasure_job import ErasureJob
from synapse_lux_privacy.features.rights.export_job import ExportJob
from synapse_lux_privacy.features.rights.exporter import Exporter
from synapse_lux_privacy.features.rights.request_store import RequestStore
from synapse_lux_privacy.features.rights.runner import RequestRunner
from synapse_lux_privacy.features.rights.schema import RIGHTS_MIGRATIONS

ReportSection = Callable[[str], Awaitable[Mapping[str, Any]]]


class RightsFeature(Feature):
    migrations = RIGHTS_MIGRATIONS

    def __init__(
        self, ctx: ModuleContext, eraser: AccountEraser, sections: Sequence[ReportSection]
    ) -> None:
        api = ctx.api
        self._sections = sections
        store = RequestStore(ctx.db)
        exporter = Exporter(
            api, ctx.db, ctx.config, self._report, (LEDGER_COMPLETE, EVENTS_WATERMARK)
        )
        exports = ExportJob(api, ctx.config, store, ctx.audit, exporter)
        erasures = ErasureJob(api, ctx.db, store, ctx.audit, ctx.holds, eraser, ctx.certificates)
        self._runner = RequestRunner(api, ctx.config, store, exports, erasures)
        self._endpoints = RightsEndpoints(
            api, ctx.db, store, ctx.holds, self._runner, exports, ctx.certificates, ctx.clock_ms
        )

    async def _report(self, user_id: str) -> Mapping[str, Any]:
        """The R14 report's feature sections, for the archive's report.json."""
        report: dict[str, Any] = {"user_id": user_id}
        for section in self._sections:
            report.update(await section(user_id))
        return report

    def routes(self) -> Sequence[Route]:
        return self._endpoints.routes()

    async def start(self) -> None:
        await self._runner.start()
