"""GET /users/{user_id}: what the server holds about a user and when it goes (R14).

The rule features add their sections (storage, sessions, media, messages,
directory consent) as they land; see docs/admin-api.md for the fields served.
"""

from collections.abc import Sequence
from typing import Any

from synapse.module_api import ModuleApi, SynapseRequest
from synapse.module_api.errors import Codes, SynapseError

from synapse_lux_privacy.admin_api import params
from synapse_lux_privacy.store.holds import HoldStore


class UsersEndpoint:
    def __init__(self, api: ModuleApi, holds: HoldStore) -> None:
        self._api = api
        self._holds = holds

    async def report(
        self, request: SynapseRequest, admin: str, path: Sequence[str]
    ) -> tuple[int, Any]:
        user_id = await self.local_user(path[0])
        info = await self._api.get_userinfo_by_id(user_id)
        assert info is not None  # local_user checked it exists
        active = await self._holds.list_holds(include_released=False)
        hold_ids = [h.hold_id for h in active if h.user_id == user_id]
        return 200, {
            "user_id": user_id,
            "created_ts": info.creation_ts * 1000,
            "deactivated": info.is_deactivated,
            "legal_hold": bool(hold_ids),
            "legal_hold_ids": hold_ids,
        }

    async def local_user(self, raw: str) -> str:
        """The user ID of an existing local user; 400 for a malformed ID, 404 otherwise."""
        user_id = params.user_id(raw)
        if not self._api.is_mine(user_id):
            raise SynapseError(404, f"{user_id} is not a user of this server", Codes.NOT_FOUND)
        if await self._api.get_userinfo_by_id(user_id) is None:
            raise SynapseError(404, f"No such user {user_id}", Codes.NOT_FOUND)
        return user_id
