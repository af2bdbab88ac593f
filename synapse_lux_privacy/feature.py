"""What a rule family plugs into the module: tables, rules, admin routes, callbacks, report.

Each rule family (content retention, quota, sessions and accounts, directory)
is one Feature in its own sub-package. The module composes them; a feature
never edits another's files.
"""

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
from synapse.module_api import ModuleApi

from synapse_lux_privacy import metrics
from synapse_lux_privacy.admin_api.resource import Route
from synapse_lux_privacy.config import LuxPrivacyConfig
from synapse_lux_privacy.db import DbRunner
from synapse_lux_privacy.store.audit import AuditStore
from synapse_lux_privacy.store.holds import HoldStore
from synapse_lux_privacy.sweep.orchestrator import SweepOrchestrator
from synapse_lux_privacy.sweep.rule import Rule

if TYPE_CHECKING:
    from synapse_lux_privacy.features.content.expunged import Expunger
    from synapse_lux_privacy.proof.service import CertificateService

logger = logging.getLogger(__name__)


@attrs.frozen
class ModuleContext:
    """What every feature is built with: the process's shared services.

    A feature uses these rather than building its own: one orchestrator (one
    lease, one audit trail, one failure table), one expunger, one clock, the audit
    store (its writes are chained: ``store/audit_chain.py``) and one certificate
    service (signed certificates of sweeps and erasures, issue #24).
    """

    api: ModuleApi
    config: LuxPrivacyConfig
    db: DbRunner
    holds: HoldStore
    audit: AuditStore
    orchestrator: SweepOrchestrator
    expunger: "Expunger"
    clock_ms: Callable[[], int]
    certificates: "CertificateService"


class Feature:
    """Base class: every hook is optional and empty by default."""

    # component name -> ordered, append-only migration steps (see store/schema.py)
    migrations: Mapping[str, Sequence[str]] = {}

    def rules(self) -> Mapping[str, Rule]:
        """The sweep rules this feature enforces, by name (one of RULE_NAMES)."""
        return {}

    def routes(self) -> Sequence[Route]:
        """Admin API routes this feature adds."""
        return ()

    def register_callbacks(self) -> None:
        """Register Synapse module callbacks (account validity, spam checker, ...)."""

    async def report(self, user_id: str) -> Mapping[str, Any]:
        """This feature's fields of the per-user report (R14)."""
        return {}

    async def start(self) -> None:
        """Runs once in the background after the tables exist (on every instance)."""


async def start_features(features: Sequence[Feature], server_name: str) -> list[str]:
    """Start every feature; return the names of those that failed.

    One feature that raises is logged with its traceback and counted in
    ``lux_privacy_feature_start_failures_total``: the features after it still start.
    """
    failed = []
    for feature in features:
        name = type(feature).__name__
        try:
            await feature.start()
        except Exception:
            logger.exception("lux_privacy: feature %s failed to start; the others go on", name)
            metrics.feature_start_failures_total.labels(server_name, name).inc()
            failed.append(name)
    return failed
