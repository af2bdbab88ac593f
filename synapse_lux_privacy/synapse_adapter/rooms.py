"""Rooms this server knows (R13: a legal hold must name one)."""

from synapse.module_api import ModuleApi


async def room_known(api: ModuleApi, room_id: str) -> bool:
    """Whether Synapse has a row for this room (``rooms``), joined or left since.

    A room every local user has left keeps its events, so a hold on it still makes
    sense: its current state may be gone, which is why this is not a state lookup.
    """
    return await api._hs.get_datastores().main.get_room(room_id) is not None
