"""Runs data-subject requests on the process that runs background tasks (R14).

A request is queued in its table by whichever process received it; the process that
runs background tasks (``run_background_tasks_on``, the main process by default)
picks it up at once if it received it, else within ``PICKUP_INTERVAL_MS``. There,
exports run one at a time and erasures one at a time, side by side. The same process
deletes archives once ``exports.retention`` has passed and prunes the records with
the audit trail (``audit.retention``). At its start-up, a request left ``running``
by a restart is closed (``RequestStore.interrupt_running``).
"""

import logging
from collections.abc import Awaitable, Callable

from synapse.module_api import ModuleApi

from synapse_lux_privacy.config import LuxPrivacyConfig
from synapse_lux_privacy.features.rights.erasure_job import ErasureJob
from synapse_lux_privacy.features.rights.export_job import ExportJob
from synapse_lux_privacy.features.rights.request_store import EXPIRED, RequestStore

logger = logging.getLogger(__name__)

PICKUP_INTERVAL_MS = 5_000
EXPIRY_INTERVAL_MS = 10 * 60_000


class RequestRunner:
    def __init__(
        self,
        api: ModuleApi,
        config: LuxPrivacyConfig,
        store: RequestStore,
        exports: ExportJob,
        erasures: ErasureJob,
    ) -> None:
        self._api = api
        self._config = config
        self._store = store
        self._exports = exports
        self._erasures = erasures
        self._busy: set[str] = set()

    def kick(self) -> None:
        """Start queued requests now if this process runs them (else the pickup loop will)."""
        if self._api.should_run_background_tasks():
            self._api.run_as_background_process("lux_privacy_requests", self.pickup)

    async def start(self) -> None:
        """On the process that runs background tasks: close what a restart cut short,
        then pick up, expire and prune periodically."""
        if not self._api.should_run_background_tasks():
            return
        exports, _ = await self._store.interrupt_running(self._api.get_current_time_msec())
        for export_id in exports:
            self._exports.discard_files(export_id)
        self._api.looping_background_call(
            self.pickup, PICKUP_INTERVAL_MS, desc="lux_privacy_requests"
        )
        self._api.looping_background_call(
            self.expire, EXPIRY_INTERVAL_MS, desc="lux_privacy_exports_expiry"
        )
        await self.pickup()

    async def pickup(self) -> None:
        exports, erasures = await self._store.queued()
        await self._run_each("exports", exports, self._exports.run)
        await self._run_each("erasures", erasures, self._erasures.run)

    async def _run_each(
        self, kind: str, ids: list[str], run: Callable[[str], Awaitable[None]]
    ) -> None:
        """Run these requests one after the other, unless this kind is already running
        here (it takes the new ones when it is done)."""
        if not ids or kind in self._busy:
            return
        self._busy.add(kind)

        async def go() -> None:
            try:
                pending = ids
                while pending:
                    for request_id in pending:
                        await run(request_id)
                    queued = await self._store.queued()
                    pending = queued[0] if kind == "exports" else queued[1]
            finally:
                self._busy.discard(kind)

        self._api.run_as_background_process(f"lux_privacy_{kind}", go)

    async def expire(self) -> None:
        """Delete the archives past ``exports.retention``; prune old records."""
        now = self._api.get_current_time_msec()
        expired = await self._store.expired_exports(now)
        for export_id in expired:
            self._exports.discard_files(export_id)
        await self._store.set_export_status(expired, EXPIRED)
        await self._store.prune(now - self._config.audit.retention_ms)
