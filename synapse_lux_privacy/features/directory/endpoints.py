"""/users/{user_id}/directory_consent: the consent the identity integration sets (R10)."""

import logging
from collections.abc import Sequence
from typing import Any

from synapse.module_api import ModuleApi, SynapseRequest

from synapse_lux_privacy.admin_api import params
from synapse_lux_privacy.features.directory.service import DirectoryService

logger = logging.getLogger(__name__)


class ConsentEndpoint:
    def __init__(self, api: ModuleApi, service: DirectoryService) -> None:
        self._api = api
        self._service = service

    async def get(
        self, request: SynapseRequest, admin: str, path: Sequence[str]
    ) -> tuple[int, Any]:
        user_id = await params.local_user(self._api, path[0])
        return 200, (await self._service.get_consent(user_id)).to_json()

    async def put(
        self, request: SynapseRequest, admin: str, path: Sequence[str]
    ) -> tuple[int, Any]:
        user_id = await params.local_user(self._api, path[0])
        body = params.read_json_object(request, frozenset({"consent"}))
        consent = body.get("consent")
        if not isinstance(consent, bool):
            raise params.invalid("consent must be true or false")
        if consent:
            info = await self._api.get_userinfo_by_id(user_id)
            if info is not None and info.is_deactivated:
                raise params.invalid(f"{user_id} is deactivated: it cannot be listed")
        result = await self._service.set_consent(user_id, consent)
        logger.info("lux_privacy: %s set the directory consent of %s", admin, user_id)
        return 200, result.to_json()
