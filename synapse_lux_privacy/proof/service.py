"""Issues certificates: one per completed real sweep, one per erasure (issue #24).

The service is shared through ``ModuleContext.certificates``. To certify something,
call ``issue(kind, subject_id, payload)``: it adds the server name, the audit chain's
head as it stands now (every row written before the call is covered), the module's and
Synapse's versions and the issue time, signs with the homeserver's key, stores the
certificate (``GET`` answers it as issued) and, when ``audit.certificates_to`` is set,
mails it through Synapse's mailer, which anchors the chain head outside the server.

A sweep is certified when it ends ``completed`` or ``completed_with_errors`` as a real
sweep (a dry run deletes nothing; a cancelled or interrupted one is not complete):
``sweep_finished`` is the orchestrator's completion hook.
"""

import html
import importlib.metadata
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from signedjson.types import SigningKey

from synapse_lux_privacy.db import DbRunner
from synapse_lux_privacy.proof import certificate
from synapse_lux_privacy.store.audit_verification import read_head_txn
from synapse_lux_privacy.store.certificates import CertificateStore
from synapse_lux_privacy.sweep.report import COMPLETED, COMPLETED_WITH_ERRORS, SweepReport

logger = logging.getLogger(__name__)

SendMail = Callable[[str, str, str, str], Awaitable[None]]


class CertificateService:
    def __init__(
        self,
        run: DbRunner,
        server_name: str,
        signing_key: SigningKey,
        synapse_version: str,
        clock_ms: Callable[[], int],
        mail_to: Sequence[str] = (),
        send_mail: SendMail | None = None,
    ) -> None:
        self._run = run
        self._store = CertificateStore(run)
        self._server_name = server_name
        self._key = signing_key
        self._versions = {
            "module": importlib.metadata.version("synapse-lux-privacy"),
            "synapse": synapse_version,
        }
        self._clock_ms = clock_ms
        self._mail_to = tuple(mail_to) if send_mail is not None else ()
        self._send_mail = send_mail

    @property
    def key_id(self) -> str:
        """The signing key's ID, as ``/_matrix/key/v2/server`` publishes it."""
        return certificate.key_id(self._key)

    async def issue(self, kind: str, subject_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Sign, store and mail the certificate of ``subject_id``; return it.

        ``kind`` is ``sweep`` or ``erasure``; ``payload`` holds the kind's own fields
        (for an erasure, e.g. ``user_id``, ``as_of``, ``results``); it may not set the
        fields the service sets (``certificate.RESERVED``). Issued once: a second call
        for the same subject returns the first certificate.
        """
        existing = await self._store.get(kind, subject_id)
        if existing is not None:
            return existing
        head = await self._run("lux_privacy_certificate_head", read_head_txn)
        issued = self._clock_ms()
        body = certificate.build(
            self._server_name,
            kind,
            subject_id,
            payload,
            {"seq": head.head_seq, "hash": head.head_hash},
            self._versions,
            issued,
        )
        signed = certificate.sign(body, self._server_name, self._key)
        await self._store.add(kind, subject_id, issued, signed)
        await self._mail(signed)
        return signed

    async def get(self, kind: str, subject_id: str) -> dict[str, Any] | None:
        return await self._store.get(kind, subject_id)

    async def sweep_finished(self, report: SweepReport) -> None:
        """The orchestrator's completion hook: certify a completed real sweep."""
        if report.dry_run or report.status not in (COMPLETED, COMPLETED_WITH_ERRORS):
            return
        payload = certificate.sweep_payload(report.to_json())
        await self.issue(certificate.SWEEP, report.sweep_id, payload)

    async def _mail(self, signed: Mapping[str, Any]) -> None:
        if self._send_mail is None:
            return
        subject = (
            f"[{self._server_name}] {signed['kind']} certificate {signed['subject_id']}"
            f" (audit chain at {signed['audit_chain']['seq']})"
        )
        text = (
            f"Signed certificate of {signed['kind']} {signed['subject_id']} on"
            f" {self._server_name}. Keep this e-mail: it anchors the audit chain's head"
            " outside the server. Check it with: synapse-lux-privacy verify FILE\n\n"
            + json.dumps(signed, indent=2, sort_keys=True)
            + "\n"
        )
        body = f"<pre>{html.escape(text)}</pre>"
        for address in self._mail_to:
            try:
                await self._send_mail(address, subject, body, text)
            except Exception:
                logger.warning(
                    "lux_privacy: could not mail the certificate of %s %s to %s",
                    signed["kind"],
                    signed["subject_id"],
                    address,
                    exc_info=True,
                )
