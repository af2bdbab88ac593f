"""GET /users/{user_id}: what the server holds about a user and when it goes (R14).

The core serves identity and legal-hold fields; each feature adds its own
fields (storage, sessions, media, messages, directory consent) through
``Feature.report``. docs/admin-api.md lists the fields served.
"""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from synapse.module_api import ModuleApi, SynapseRequest

from synapse_lux_privacy.admin_api import params
from synapse_lux_privacy.store.holds import HoldStore

ReportSection = Callable[[str], Awaitable[Mapping[str, Any]]]


class UsersEndpoint:
    def __init__(self, api: ModuleApi, holds: HoldStore, sections: Sequence[ReportSection]) -> None:
        self._api = api
        self._holds = holds
        self._sections = sections

    async def report(
        self, request: SynapseRequest, admin: str, path: Sequence[str]
    ) -> tuple[int, Any]:
        user_id = await params.local_user(self._api, path[0])
        info = await self._api.get_userinfo_by_id(user_id)
        assert info is not None  # local_user checked it exists
        active = await self._holds.list_holds(include_released=False)
        hold_ids = [h.hold_id for h in active if h.user_id == user_id]
        report: dict[str, Any] = {
            "user_id": user_id,
            "created_ts": info.creation_ts * 1000,
            "deactivated": info.is_deactivated,
            "legal_hold": bool(hold_ids),
            "legal_hold_ids": hold_ids,
        }
        for section in self._sections:
            report.update(await section(user_id))
        return 200, report
