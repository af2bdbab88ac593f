"""Data-subject requests in the admin API (R14; admin-api.md "Data-subject requests").

- ``POST /users/{user_id}/exports`` (empty body): 202 ``{"export_id"}``; the export
  is built in the background (``runner.py``).
- ``GET /users/{user_id}/exports/{export_id}``: its status and progress.
- ``GET /users/{user_id}/exports/{export_id}/archive``: the zip, streamed from disk.
- ``POST /users/{user_id}/erase`` with ``{"reason"}``: 202 ``{"erasure_id"}``; 409
  ``M_LUX_HELD`` when a legal hold covers the account (R13).
- ``GET /users/{user_id}/erasures/{erasure_id}``: its status and counts;
  ``.../certificate``: the signed certificate of a completed erasure (issue #24).

A request ID names one user's request: under another user's path it is 404.
"""

import os
import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from synapse.module_api import ModuleApi, SynapseRequest
from synapse.module_api.errors import Codes, SynapseError

from synapse_lux_privacy.admin_api import params
from synapse_lux_privacy.admin_api.file_response import send_file
from synapse_lux_privacy.admin_api.resource import Route, route
from synapse_lux_privacy.db import DbRunner
from synapse_lux_privacy.features.rights.erasure_job import HELD, is_held
from synapse_lux_privacy.features.rights.export_job import ExportJob
from synapse_lux_privacy.features.rights.request_store import (
    COMPLETED,
    ErasureRecord,
    RequestStore,
)
from synapse_lux_privacy.features.rights.runner import RequestRunner
from synapse_lux_privacy.proof import certificate
from synapse_lux_privacy.proof.service import CertificateService
from synapse_lux_privacy.store.holds import HoldStore

MAX_REASON = 1000


def _request_id(value: str, what: str) -> str:
    """Request IDs are 32 hexadecimal digits; anything else names no request (404)."""
    if re.fullmatch(r"[0-9a-f]{32}", value) is None:
        raise SynapseError(404, f"No {what} {value[:80]!r}", Codes.NOT_FOUND)
    return value


class RightsEndpoints:
    def __init__(
        self,
        api: ModuleApi,
        db: DbRunner,
        store: RequestStore,
        holds: HoldStore,
        runner: RequestRunner,
        exports: ExportJob,
        certificates: CertificateService,
        clock_ms: Callable[[], int],
    ) -> None:
        self._certificates = certificates
        self._api = api
        self._db = db
        self._store = store
        self._holds = holds
        self._runner = runner
        self._exports = exports
        self._clock_ms = clock_ms

    def routes(self) -> Sequence[Route]:
        return (
            route("POST", "/users/{user_id}/exports", self.start_export),
            route("GET", "/users/{user_id}/exports/{export_id}", self.get_export),
            route("GET", "/users/{user_id}/exports/{export_id}/archive", self.archive),
            route("POST", "/users/{user_id}/erase", self.start_erasure),
            route("GET", "/users/{user_id}/erasures/{erasure_id}", self.get_erasure),
            route(
                "GET",
                "/users/{user_id}/erasures/{erasure_id}/certificate",
                self.erasure_certificate,
            ),
        )

    async def start_export(
        self, request: SynapseRequest, admin: str, path: Sequence[str]
    ) -> tuple[int, Any]:
        user_id = await params.local_user(self._api, path[0])
        params.read_json_object(request, frozenset())
        export_id = uuid.uuid4().hex
        await self._store.add_export(export_id, user_id, admin, self._clock_ms())
        self._runner.kick()
        return 202, {"export_id": export_id}

    async def get_export(
        self, request: SynapseRequest, admin: str, path: Sequence[str]
    ) -> tuple[int, Any]:
        user_id = await params.local_user(self._api, path[0])
        export_id = _request_id(path[1], "export")
        record = await self._store.get_export(export_id)
        if record is None or record.user_id != user_id:
            raise SynapseError(404, f"No export {export_id} of {user_id}", Codes.NOT_FOUND)
        return 200, record.to_json()

    async def archive(self, request: SynapseRequest, admin: str, path: Sequence[str]) -> None:
        user_id = await params.local_user(self._api, path[0])
        export_id = _request_id(path[1], "export")
        record = await self._store.get_export(export_id)
        if record is None or record.user_id != user_id:
            raise SynapseError(404, f"No export {export_id} of {user_id}", Codes.NOT_FOUND)
        if record.status != COMPLETED:
            raise SynapseError(
                404, f"Export {export_id} has no archive ({record.status})", Codes.NOT_FOUND
            )
        try:
            source = open(self._exports.path(export_id), "rb")
        except FileNotFoundError:
            raise SynapseError(
                404,
                f"The archive of export {export_id} is not on this instance's disk"
                " (exports.directory must be shared by the instances that serve the admin API)",
                Codes.NOT_FOUND,
            ) from None
        with source:
            size = os.fstat(source.fileno()).st_size
            await send_file(request, source, size, "application/zip", f"export-{export_id}.zip")
        return None

    async def start_erasure(
        self, request: SynapseRequest, admin: str, path: Sequence[str]
    ) -> tuple[int, Any]:
        user_id = await params.local_user(self._api, path[0])
        body = params.read_json_object(request, frozenset({"reason"}))
        reason = params.required_text(body, "reason", MAX_REASON)
        if await is_held(self._db, self._holds, user_id):
            raise SynapseError(
                409, f"A legal hold covers {user_id}: it cannot be erased while it stands", HELD
            )
        erasure_id = uuid.uuid4().hex
        await self._store.add_erasure(erasure_id, user_id, admin, reason, self._clock_ms())
        self._runner.kick()
        return 202, {"erasure_id": erasure_id}

    async def get_erasure(
        self, request: SynapseRequest, admin: str, path: Sequence[str]
    ) -> tuple[int, Any]:
        return 200, (await self._erasure(path)).to_json()

    async def erasure_certificate(
        self, request: SynapseRequest, admin: str, path: Sequence[str]
    ) -> tuple[int, Any]:
        """The signed certificate of a completed erasure (issue #24, docs/proof.md)."""
        record = await self._erasure(path)
        signed = await self._certificates.get(certificate.ERASURE, record.erasure_id)
        if signed is None:
            raise SynapseError(
                404,
                f"Erasure {record.erasure_id} has no certificate: only a completed erasure"
                f" is certified (this one is {record.status})",
                Codes.NOT_FOUND,
            )
        return 200, signed

    async def _erasure(self, path: Sequence[str]) -> ErasureRecord:
        user_id = await params.local_user(self._api, path[0])
        erasure_id = _request_id(path[1], "erasure")
        record = await self._store.get_erasure(erasure_id)
        if record is None or record.user_id != user_id:
            raise SynapseError(404, f"No erasure {erasure_id} of {user_id}", Codes.NOT_FOUND)
        return record
