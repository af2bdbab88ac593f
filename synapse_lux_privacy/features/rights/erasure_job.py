"""One erasure on request (R14, GDPR art. 17): the R12 deletion chain, now, audited.

Holds are read right before acting (R13): a hold placed on the user, or on a room
they are a member of, after the request was accepted fails the erasure with
``M_LUX_HELD`` and nothing is deleted. The chain is ``AccountEraser`` (the accounts
rule's, one truth): it returns once Synapse has parted the user from every room and
their media is gone from every store; after a crash past Synapse's deactivation, the
next sweep's accounts rule finishes it.

Audited twice: the erasure's record (who asked, when, the reason, what was deleted:
the figures a signed deletion certificate is built from, ``ErasureRecord``) and an
``erasure`` row in the audit trail (``sweep_id`` = the erasure ID, the user, the
media bytes and storage-provider objects deleted). A completed erasure then gets its
signed certificate (``ModuleContext.certificates``, issue #24), written after the audit
row so that the certificate's chain head covers it.
"""

import logging

from synapse.module_api import ModuleApi

from synapse_lux_privacy.db import DbRunner
from synapse_lux_privacy.features.accounts.erasure import AccountEraser
from synapse_lux_privacy.features.rights.request_store import (
    COMPLETED,
    FAILED,
    ErasureRecord,
    RequestStore,
)
from synapse_lux_privacy.proof import certificate
from synapse_lux_privacy.proof.service import CertificateService
from synapse_lux_privacy.store.audit import AuditGroup, AuditStore
from synapse_lux_privacy.store.holds import HoldStore
from synapse_lux_privacy.synapse_adapter import accounts

logger = logging.getLogger(__name__)

AUDIT_RULE = "erasure"
HELD = "M_LUX_HELD"


async def is_held(db: DbRunner, holds: HoldStore, user_id: str) -> bool:
    """Whether a legal hold covers the account: on the user, or on a room they are a
    member of (their erasure would prune their membership events there), R13."""
    active = await holds.active_holds()
    if active.covers(user_id, None):
        return True
    return bool(await accounts.members_of_rooms(db, [user_id], active.room_ids))


class ErasureJob:
    def __init__(
        self,
        api: ModuleApi,
        db: DbRunner,
        store: RequestStore,
        audit: AuditStore,
        holds: HoldStore,
        eraser: AccountEraser,
        certificates: CertificateService,
    ) -> None:
        self._api = api
        self._certificates = certificates
        self._db = db
        self._store = store
        self._audit = audit
        self._holds = holds
        self._eraser = eraser

    async def run(self, erasure_id: str) -> None:
        if not await self._store.claim_erasure(erasure_id):
            return
        record = await self._store.get_erasure(erasure_id)
        assert record is not None
        try:
            await self._erase(record)
        except Exception as e:
            logger.exception("lux_privacy: erasure %s of %s failed", erasure_id, record.user_id)
            await self._store.finish_erasure(
                erasure_id,
                FAILED,
                (0, 0, 0, 0),
                self._api.get_current_time_msec(),
                f"{type(e).__name__}: {e}"[:500],
            )

    async def _erase(self, record: ErasureRecord) -> None:
        user_id = record.user_id
        if await is_held(self._db, self._holds, user_id):
            await self._store.finish_erasure(
                record.erasure_id,
                FAILED,
                (0, 0, 0, 0),
                self._api.get_current_time_msec(),
                f"{HELD}: a legal hold placed since the request covers the account",
            )
            return
        now = self._api.get_current_time_msec()
        started = AuditGroup(user_id=user_id, room_id=None, count=1, bytes=0)
        rows = await self._audit.start_batch(record.erasure_id, AUDIT_RULE, now, [started])
        erased = await self._eraser.erase(user_id, await self._holds.active_holds())
        now = self._api.get_current_time_msec()
        done = AuditGroup(
            user_id=user_id,
            room_id=None,
            count=1,
            bytes=erased.media_bytes,
            provider_objects=erased.provider_objects,
        )
        await self._audit.finish_batch(rows, [done], now)
        counts = (
            erased.media_deleted,
            erased.media_bytes,
            erased.provider_objects,
            erased.media_kept,
        )
        await self._store.finish_erasure(record.erasure_id, COMPLETED, counts, now, None)
        finished = await self._store.get_erasure(record.erasure_id)
        assert finished is not None
        payload = certificate.erasure_payload(finished.to_json())
        await self._certificates.issue(certificate.ERASURE, record.erasure_id, payload)
        logger.info(
            "lux_privacy: erasure %s of %s done (reason recorded): %d files deleted",
            record.erasure_id,
            user_id,
            erased.media_deleted,
        )
