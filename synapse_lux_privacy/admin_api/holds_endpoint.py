"""/holds: legal holds (R13) on a user or a room."""

from collections.abc import Callable, Sequence
from typing import Any

from synapse.module_api import SynapseRequest
from synapse.module_api.errors import Codes, SynapseError

from synapse_lux_privacy.admin_api import params
from synapse_lux_privacy.store.holds import HoldConflict, HoldStore


class HoldsEndpoint:
    def __init__(self, holds: HoldStore, clock_ms: Callable[[], int]) -> None:
        self._holds = holds
        self._clock_ms = clock_ms

    async def list(
        self, request: SynapseRequest, admin: str, path: Sequence[str]
    ) -> tuple[int, Any]:
        include_released = params.query_bool(request, "include_released")
        holds = await self._holds.list_holds(include_released)
        return 200, {"holds": [h.to_json() for h in holds]}

    async def get(
        self, request: SynapseRequest, admin: str, path: Sequence[str]
    ) -> tuple[int, Any]:
        hold_id = params.hold_id(path[0])
        found = [h for h in await self._holds.list_holds(True) if h.hold_id == hold_id]
        if not found:
            raise SynapseError(404, f"No hold {hold_id!r}", Codes.NOT_FOUND)
        return 200, {**found[0].to_json(), "history": await self._holds.history(hold_id)}

    async def put(
        self, request: SynapseRequest, admin: str, path: Sequence[str]
    ) -> tuple[int, Any]:
        hold_id = params.hold_id(path[0])
        body = params.read_json_object(request, frozenset({"user_id", "room_id", "reason"}))
        has_user, has_room = body.get("user_id") is not None, body.get("room_id") is not None
        if has_user == has_room:
            raise params.invalid("a hold names exactly one of user_id or room_id")
        user_id = params.user_id(body["user_id"]) if has_user else None
        room_id = params.room_id(body["room_id"]) if has_room else None
        reason = params.required_text(body, "reason")
        try:
            hold, created = await self._holds.place(
                hold_id, user_id, room_id, reason, admin, self._clock_ms()
            )
        except HoldConflict as e:
            raise SynapseError(409, str(e), Codes.INVALID_PARAM) from None
        return (201 if created else 200), hold.to_json()

    async def delete(
        self, request: SynapseRequest, admin: str, path: Sequence[str]
    ) -> tuple[int, Any]:
        hold_id = params.hold_id(path[0])
        hold = await self._holds.release(hold_id, admin, self._clock_ms())
        if hold is None:
            raise SynapseError(404, f"No hold {hold_id!r}", Codes.NOT_FOUND)
        return 200, hold.to_json()
