"""The module Synapse loads: ``synapse_lux_privacy.LuxPrivacyModule``.

It parses the configuration (config.md), creates the module's tables, mounts
the admin API (admin-api.md), schedules the periodic sweep on the one instance
that runs background tasks, and warns about native Synapse settings that
contradict the Luxchat policy (R1-R15).
"""

import logging
from collections.abc import Mapping
from typing import Any

from synapse.module_api import ModuleApi

from synapse_lux_privacy import metrics, synapse_adapter
from synapse_lux_privacy.admin_api import ADMIN_API_PREFIX
from synapse_lux_privacy.admin_api.audit_endpoint import AuditEndpoint
from synapse_lux_privacy.admin_api.failures_endpoint import FailuresEndpoint
from synapse_lux_privacy.admin_api.holds_endpoint import HoldsEndpoint
from synapse_lux_privacy.admin_api.proof_endpoint import ProofEndpoint
from synapse_lux_privacy.admin_api.resource import AdminApiResource, route
from synapse_lux_privacy.admin_api.sweep_endpoint import SweepEndpoint
from synapse_lux_privacy.admin_api.sweep_instance import on_sweep_instance
from synapse_lux_privacy.admin_api.sweeps_endpoint import SweepsEndpoint
from synapse_lux_privacy.admin_api.users_endpoint import UsersEndpoint
from synapse_lux_privacy.config import LuxPrivacyConfig, parse_config
from synapse_lux_privacy.feature import ModuleContext, start_features
from synapse_lux_privacy.features import build_features
from synapse_lux_privacy.features.content.expunged import Expunger
from synapse_lux_privacy.native_settings import find_contradictions
from synapse_lux_privacy.proof.service import CertificateService
from synapse_lux_privacy.store.audit import AuditStore
from synapse_lux_privacy.store.audit_verification import AuditVerifier
from synapse_lux_privacy.store.database import ModuleDatabase
from synapse_lux_privacy.store.failures import FailureStore
from synapse_lux_privacy.store.holds import HoldStore
from synapse_lux_privacy.store.record_retention import RecordRetention
from synapse_lux_privacy.store.sweep_lock import SweepLockStore
from synapse_lux_privacy.store.sweeps import SweepRunStore
from synapse_lux_privacy.sweep.orchestrator import SweepAlreadyRunning, SweepOrchestrator
from synapse_lux_privacy.sweep.probe import LoadProbe
from synapse_lux_privacy.synapse_adapter import accounts, disk_residue, media, signing
from synapse_lux_privacy.synapse_adapter.disk_residue import DiskResidue

logger = logging.getLogger(__name__)


class LuxPrivacyModule:
    """Enforces the Luxchat retention and privacy rules on one Synapse process."""

    def __init__(self, config: LuxPrivacyConfig, api: ModuleApi) -> None:
        synapse_adapter.check_synapse_schema(api)  # untested Synapse: its columns
        media.set_storage_provider_deletion(api, config.storage_providers.delete_from)
        self._config = config
        self._api = api
        self._db = ModuleDatabase(api, synapse_adapter.database_dialect(api))
        self._holds = HoldStore(self._db)
        self._audit = AuditStore(self._db, self._db.read_committed)
        self._runs = SweepRunStore(self._db, self._db.read_committed)
        self._failures = FailureStore(self._db)
        self._orchestrator = SweepOrchestrator(
            holds=self._holds,
            audit=self._audit,
            lock=SweepLockStore(self._db),
            runs=self._runs,
            failures=self._failures,
            records=RecordRetention(self._db, self._db.read_committed),
            clock_ms=api.get_current_time_msec,
            instance_name=api.worker_name or "master",
            server_name=api.server_name,
            batch_size=config.sweep_batch_size,
            audit_retention_ms=config.audit.retention_ms,
            spawn=lambda func: api.run_as_background_process("lux_privacy_sweep_task", func),
            sleep=api.sleep,
            pace=config.sweep_pace,
            adaptive_pace=config.sweep_adaptive_pace,
            probe=LoadProbe(
                self._db,
                lambda func: api.run_as_background_process("lux_privacy_sweep_batch", func),
                api.sleep,
            ),
            residue=DiskResidue(api, self._db, api.server_name),
        )
        self._certificates = CertificateService(
            self._db,
            api.server_name,
            signing.signing_key(api),
            synapse_adapter.synapse_version(),
            api.get_current_time_msec,
            config.audit.certificates_to,
            api.send_mail if self._mail_certificates() else None,
        )
        self._orchestrator.add_finished_hook(self._certificates.sweep_finished)
        context = ModuleContext(
            api=api,
            config=config,
            db=self._db,
            holds=self._holds,
            audit=self._audit,
            orchestrator=self._orchestrator,
            expunger=Expunger(api, self._db),
            clock_ms=api.get_current_time_msec,
            certificates=self._certificates,
        )
        self._features = build_features(context)
        for feature in self._features:
            self._db.add_migrations(feature.migrations)
            self._orchestrator.register(feature.rules())
            feature.register_callbacks()
        self._mount_admin_api()
        api.looping_background_call(
            self._periodic_sweep, config.sweep_interval_ms, desc="lux_privacy_sweep"
        )
        api.run_as_background_process("lux_privacy_startup", self._startup)

    @staticmethod
    def parse_config(config: Mapping[str, Any]) -> LuxPrivacyConfig:
        """Validate the module block of homeserver.yaml (config.md); errors name the key."""
        parsed = parse_config(config)
        synapse_adapter.check_synapse_version(parsed.allow_untested_synapse)
        return parsed

    def _mail_certificates(self) -> bool:
        """``audit.certificates_to`` set, and Synapse's mailer configured to send them."""
        if not self._config.audit.certificates_to:
            return False
        if accounts.email_configured(self._api):
            return True
        logger.warning(
            "lux_privacy: audit.certificates_to is set but Synapse's email section has no"
            " notif_from: certificates are issued but not mailed"
        )
        return False

    def _mount_admin_api(self) -> None:
        clock = self._api.get_current_time_msec
        sweep = SweepEndpoint(self._config, self._orchestrator, clock)
        sweeps = SweepsEndpoint(sweep, self._orchestrator, self._runs, clock)
        failures = FailuresEndpoint(self._failures)
        holds = HoldsEndpoint(self._api, self._holds, clock)
        audit = AuditEndpoint(self._audit)
        proof = ProofEndpoint(AuditVerifier(self._db), self._certificates, self._runs, clock)
        users = UsersEndpoint(self._api, self._holds, [f.report for f in self._features])
        # Sweeps start only where background tasks run (the periodic sweep, the media store).
        sweep_instance = synapse_adapter.background_tasks_instance(self._api)
        routes = [
            route("POST", "/sweep", on_sweep_instance(sweep.post, sweep_instance)),
            route("GET", "/sweep/settings", sweep.settings),
            route("POST", "/sweeps", on_sweep_instance(sweeps.start, sweep_instance)),
            route("GET", "/sweeps", sweeps.list, query=("limit",)),
            route("GET", "/sweeps/{sweep_id}", sweeps.get),
            route("GET", "/sweeps/{sweep_id}/certificate", proof.sweep_certificate),
            route("DELETE", "/sweeps/{sweep_id}", sweeps.cancel),
            route("GET", "/failures", failures.list, query=("limit", "rule")),
            route("GET", "/audit", audit.get, query=("since", "limit")),
            route("GET", "/audit/verify", proof.verify),
            route("GET", "/holds", holds.list, query=("include_released",)),
            route("GET", "/holds/{hold_id}", holds.get),
            route("PUT", "/holds/{hold_id}", holds.put),
            route("DELETE", "/holds/{hold_id}", holds.delete),
            route("GET", "/users/{user_id}", users.report),
        ]
        for feature in self._features:
            routes.extend(feature.routes())
        self._api.register_web_resource(ADMIN_API_PREFIX, AdminApiResource(self._api, routes))

    async def _startup(self) -> None:
        await disk_residue.enable_secure_delete(self._api)  # SQLite (R1)
        await self._db.ensure_schema()
        await self._orchestrator.release_predecessors()
        last = await self._runs.last_finished_ts()
        if last is not None:
            metrics.last_successful_sweep_timestamp_seconds.labels(self._api.server_name).set(
                last / 1000
            )
        self._warn_about_native_settings()
        await start_features(self._features, self._api.server_name)

    def _warn_about_native_settings(self) -> None:
        try:
            homeserver, config_dir = synapse_adapter.homeserver_config(self._api)
        except Exception:
            logger.warning("lux_privacy: could not read homeserver.yaml to check it", exc_info=True)
            return
        for finding in find_contradictions(homeserver, self._config, config_dir):
            logger.warning("lux_privacy: setting at odds with the privacy policy: %s", finding)

    async def _periodic_sweep(self) -> None:
        try:
            await self._orchestrator.run(as_of_ms=None, dry_run=self._config.dry_run)
        except SweepAlreadyRunning:
            logger.info("lux_privacy: a sweep is already running elsewhere; skipping this one")
