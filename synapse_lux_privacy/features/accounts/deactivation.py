"""R7 on every deactivation, by any path (self-service, admin API, R12): profile and
avatar files are gone right after.

Synapse calls ``on_user_deactivation_status_changed`` once the deactivation is done
(on the main process). Synapse erases the profile only when erasure was asked for;
the handler erases it in every case, deletes the avatar files the user uploaded,
and drops the module's activity record. (The directory feature removes the
directory consent and national entry, R10, from the same callback.) The avatar URL
is read in ``check_can_deactivate_user``, before Synapse erases the profile.

A held user (R13) keeps profile and files while the hold stands; so does every
file that an event of a held room points to.
"""

import logging
from collections.abc import Awaitable

from synapse.module_api import ModuleApi

from synapse_lux_privacy.db import DbRunner
from synapse_lux_privacy.features.accounts.activity_store import ActivityStore
from synapse_lux_privacy.features.accounts.deletion_marks import DeletionMarks
from synapse_lux_privacy.features.content.held_media import held_local_media
from synapse_lux_privacy.store.holds import HoldStore
from synapse_lux_privacy.synapse_adapter import accounts, media

logger = logging.getLogger(__name__)

# How long an avatar URL read before a deactivation is kept for its callback.
_AVATAR_MEMORY_MS = 60 * 60 * 1000


class DeactivationHandler:
    """The module's ``check_can_deactivate_user`` and ``on_user_deactivation_status_changed``."""

    def __init__(
        self,
        api: ModuleApi,
        run: DbRunner,
        store: ActivityStore,
        marks: DeletionMarks,
        holds: HoldStore,
    ) -> None:
        self._api = api
        self._run = run
        self._store = store
        self._marks = marks
        self._holds = holds
        self._avatars: dict[str, tuple[int, str | None]] = {}

    async def before_deactivation(self, user_id: str, by_admin: bool) -> bool:
        """Never refuses; remembers the avatar URL that the erasure is about to delete."""
        if self._api.is_mine(user_id):
            now = self._api.get_current_time_msec()
            self._avatars = {
                u: v for u, v in self._avatars.items() if v[0] > now - _AVATAR_MEMORY_MS
            }
            self._avatars[user_id] = (now, await accounts.current_avatar_url(self._api, user_id))
        return True

    async def on_status_changed(self, user_id: str, deactivated: bool, by_admin: bool) -> None:
        if not self._api.is_mine(user_id):
            return
        if not deactivated:  # reactivated by an admin: active again from now
            await self._store.record_users({user_id: self._api.get_current_time_msec()})
            await self._marks.finish(user_id)  # an unfinished R12 deletion is called off
            return
        _, avatar_url = self._avatars.pop(user_id, (0, None))
        holds = await self._holds.active_holds()
        if holds.covers(user_id, None):
            logger.info("lux_privacy: %s is on legal hold: profile and files kept (R13)", user_id)
            return
        await _step("erase the profile", user_id, accounts.erase_profile(self._api, user_id))
        await _step("delete the avatar files", user_id, self._delete_avatars(user_id, avatar_url))
        await _step("forget the activity", user_id, self._store.forget_user(user_id))

    async def _delete_avatars(self, user_id: str, avatar_url: str | None) -> None:
        avatars = await accounts.avatar_media_ids(
            self._run, self._api.server_name, user_id, [avatar_url]
        )
        holds = await self._holds.active_holds()
        kept = await held_local_media(self._run, holds, self._api.server_name, avatars)
        await media.delete_local_media(self._api, [m for m in avatars if m not in kept])


async def _step(what: str, user_id: str, work: Awaitable[object]) -> None:
    """Run one step; a failure is logged and the next steps still run."""
    try:
        await work
    except Exception:
        logger.exception("lux_privacy: could not %s of deactivated user %s (R7)", what, user_id)
