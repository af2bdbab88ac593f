"""Proof for the data-protection officer: ``GET /audit/verify`` and
``GET /sweeps/{sweep_id}/certificate`` (issue #24, docs/proof.md)."""

import re
from collections.abc import Callable, Sequence
from typing import Any

from synapse.module_api import SynapseRequest
from synapse.module_api.errors import Codes, SynapseError

from synapse_lux_privacy.admin_api.params import shown
from synapse_lux_privacy.proof.certificate import SWEEP
from synapse_lux_privacy.proof.service import CertificateService
from synapse_lux_privacy.store.audit_verification import AuditVerifier
from synapse_lux_privacy.store.sweeps import SweepRunStore


class ProofEndpoint:
    def __init__(
        self,
        verifier: AuditVerifier,
        certificates: CertificateService,
        runs: SweepRunStore,
        clock_ms: Callable[[], int],
    ) -> None:
        self._verifier = verifier
        self._certificates = certificates
        self._runs = runs
        self._clock_ms = clock_ms

    async def verify(
        self, request: SynapseRequest, admin: str, params: Sequence[str]
    ) -> tuple[int, Any]:
        """Recompute the audit's hash chain: ``{"rows": n, "ok": true, ...}`` or the
        first row that does not match (``first_mismatch``)."""
        return 200, (await self._verifier.verify()).to_json()

    async def sweep_certificate(
        self, request: SynapseRequest, admin: str, params: Sequence[str]
    ) -> tuple[int, Any]:
        """The signed certificate of a completed real sweep, as issued."""
        sweep_id = params[0]
        known = re.fullmatch(r"[0-9a-f]{32}", sweep_id)
        record = await self._runs.get(sweep_id, self._clock_ms()) if known else None
        if record is None:
            raise SynapseError(404, f"No sweep {shown(sweep_id)}", Codes.NOT_FOUND)
        signed = await self._certificates.get(SWEEP, sweep_id)
        if signed is None:
            raise SynapseError(
                404,
                f"Sweep {shown(sweep_id)} has no certificate: only a real sweep that completed"
                f" is certified (this one is {'a dry run' if record.dry_run else record.status})",
                Codes.NOT_FOUND,
            )
        return 200, signed
