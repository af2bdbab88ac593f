"""One export from queued to completed or failed (R14, GDPR art. 15), audited.

Every export is audited: its record (who asked, when, for whom, entries and size,
until ``audit.retention``) and an ``export`` row in the audit trail (the user, the
number of entries and the archive's size; never content).
"""

import logging
import os
import shutil

from synapse.module_api import ModuleApi

from synapse_lux_privacy.config import LuxPrivacyConfig
from synapse_lux_privacy.features.rights.exporter import Exporter, archive_path
from synapse_lux_privacy.features.rights.request_store import COMPLETED, FAILED, RequestStore
from synapse_lux_privacy.store.audit import AuditGroup, AuditStore
from synapse_lux_privacy.synapse_adapter import exports

logger = logging.getLogger(__name__)

AUDIT_RULE = "export"


def exports_directory(api: ModuleApi, config: LuxPrivacyConfig) -> str:
    """``exports.directory``, or ``lux_privacy_exports`` under Synapse's media store."""
    return config.exports.directory or os.path.join(
        exports.media_store_path(api), "lux_privacy_exports"
    )


class ExportJob:
    def __init__(
        self,
        api: ModuleApi,
        config: LuxPrivacyConfig,
        store: RequestStore,
        audit: AuditStore,
        exporter: Exporter,
    ) -> None:
        self._api = api
        self._config = config
        self._store = store
        self._audit = audit
        self._exporter = exporter
        self.directory = exports_directory(api, config)

    def path(self, export_id: str) -> str:
        return archive_path(self.directory, export_id)

    def discard_files(self, export_id: str) -> None:
        """The archive, a partial one and the per-room spool a killed export left."""
        for path in (self.path(export_id), self.path(export_id) + ".part"):
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
        shutil.rmtree(self.path(export_id) + ".part.rooms", ignore_errors=True)

    async def run(self, export_id: str) -> None:
        if not await self._store.claim_export(export_id):
            return  # taken by another pass
        record = await self._store.get_export(export_id)
        assert record is not None
        final = self.path(export_id)
        part = final + ".part"

        async def progress(files: int, size: int) -> None:
            await self._store.export_progress(export_id, files, size)

        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            writer = await self._exporter.write(record, part, progress)
            os.replace(part, final)
        except Exception as e:
            logger.exception("lux_privacy: export %s failed", export_id)
            self.discard_files(export_id)
            now = self._api.get_current_time_msec()
            await self._store.finish_export(
                export_id, FAILED, 0, 0, now, None, f"{type(e).__name__}: {e}"[:500]
            )
            return
        size = os.path.getsize(final)
        now = self._api.get_current_time_msec()
        group = AuditGroup(user_id=record.user_id, room_id=None, count=writer.files, bytes=size)
        rows = await self._audit.start_batch(export_id, AUDIT_RULE, now, [group])
        await self._audit.finish_batch(rows, [group], now)
        await self._store.finish_export(
            export_id,
            COMPLETED,
            writer.files,
            size,
            now,
            now + self._config.exports.retention_ms,
            None,
        )
        logger.info(
            "lux_privacy: export %s of %s: %d entries, %d bytes",
            export_id,
            record.user_id,
            writer.files,
            size,
        )
