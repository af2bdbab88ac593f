"""/holds: legal holds (R13) on a user or a room.

A hold's target is checked before it is placed, so that an operator never believes
data is held while nothing is: IDs are taken exactly as Synapse stores them (no case
folding, no trimming, at most 255 characters: 400 otherwise), a local user must exist
and a room must be known to this server (404 otherwise). A remote user ID is accepted
when well formed: a hold may keep a remote sender's messages in local rooms.

``PUT`` answers once the hold binds: a batch of a sweep that began deleting under the
holds before it has ended (``HoldStore.settle``), so from the answer on nothing the
hold covers is deleted by any worker.
"""

from collections.abc import Callable, Sequence
from typing import Any

from synapse.module_api import ModuleApi, SynapseRequest
from synapse.module_api.errors import Codes, SynapseError

from synapse_lux_privacy.admin_api import params
from synapse_lux_privacy.store.holds import HoldConflict, HoldStore
from synapse_lux_privacy.synapse_adapter.rooms import room_known


class HoldsEndpoint:
    def __init__(self, api: ModuleApi, holds: HoldStore, clock_ms: Callable[[], int]) -> None:
        self._api = api
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
            raise SynapseError(404, f"No hold {params.shown(hold_id)}", Codes.NOT_FOUND)
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
        await self._check_exists(user_id, room_id)
        try:
            hold, created = await self._holds.place(
                hold_id, user_id, room_id, reason, admin, self._clock_ms()
            )
        except HoldConflict as e:
            raise SynapseError(409, str(e), Codes.INVALID_PARAM) from None
        await self._holds.settle(self._clock_ms, self._api.sleep)
        return (201 if created else 200), hold.to_json()

    async def _check_exists(self, user_id: str | None, room_id: str | None) -> None:
        """404 for a local user that does not exist or a room this server does not know."""
        if user_id is not None and self._api.is_mine(user_id):
            if await self._api.get_userinfo_by_id(user_id) is None:
                raise SynapseError(404, f"No such user {user_id}", Codes.NOT_FOUND)
        if room_id is not None and not await room_known(self._api, room_id):
            raise SynapseError(404, f"No such room {room_id} on this server", Codes.NOT_FOUND)

    async def delete(
        self, request: SynapseRequest, admin: str, path: Sequence[str]
    ) -> tuple[int, Any]:
        hold_id = params.hold_id(path[0])
        hold = await self._holds.release(hold_id, admin, self._clock_ms())
        if hold is None:
            raise SynapseError(404, f"No hold {params.shown(hold_id)}", Codes.NOT_FOUND)
        return 200, hold.to_json()
