"""The one R12 deletion chain for one account, used by the accounts rule (R12) and by
erasure on request (R14, GDPR art. 17).

Mark the user in ``lux_privacy_account_deletions``, deactivate with erasure through
Synapse (profile, threepids, devices, pushers, directory entries; the deactivation
callbacks then erase the profile, delete avatar files, withdraw directory consent and
queue the national-directory removal, R7, R10) and wait until Synapse has parted the
user from every room, delete every file the user uploaded from the local store and
every storage provider (R2), forget the activity record, clear the mark. A crash
after Synapse's deactivation leaves the mark and the next sweep's accounts rule
finishes the chain; every step is a no-op where already done, so running it again
is safe.

The caller checks holds right before calling (R13); a file that an event of a held
room refers to is kept all the same.
"""

import attrs
from synapse.module_api import ModuleApi

from synapse_lux_privacy.db import DbRunner
from synapse_lux_privacy.features.accounts.activity_store import ActivityStore
from synapse_lux_privacy.features.accounts.deletion_marks import DeletionMarks
from synapse_lux_privacy.features.content.held_media import held_local_media
from synapse_lux_privacy.store.holds import HoldSet
from synapse_lux_privacy.synapse_adapter import accounts, media


@attrs.frozen
class ErasedAccount:
    """What the chain deleted: the user's uploads (count, bytes), the storage-provider
    objects and files among them, and the uploads kept because a held room refers to them."""

    media_deleted: int
    media_bytes: int
    provider_objects: int
    media_kept: int


class AccountEraser:
    """Runs the deletion chain of one account (R12, R7, R8, R10)."""

    def __init__(
        self, api: ModuleApi, run: DbRunner, store: ActivityStore, marks: DeletionMarks
    ) -> None:
        self._api = api
        self._run = run
        self._store = store
        self._marks = marks

    async def erase(self, user_id: str, holds: HoldSet) -> ErasedAccount:
        """Delete the account now; returns once it is parted from every room and its
        media is gone (raises, mark kept, if any step fails)."""
        await self._marks.start(user_id, self._api.get_current_time_msec())
        await accounts.deactivate_and_erase(self._api, self._run, user_id)
        # Read after: the deactivation callback has deleted the avatar files (R7).
        owned = dict((await accounts.media_of_users(self._run, [user_id])).get(user_id, ()))
        kept = await held_local_media(self._run, holds, self._api.server_name, list(owned))
        gone = [m for m in owned if m not in kept]
        removed = await media.delete_local_media(self._api, gone)
        await self._store.forget_user(user_id)
        await self._marks.finish(user_id)
        return ErasedAccount(
            media_deleted=len(removed.deleted),
            media_bytes=sum(owned[m] for m in removed.deleted),
            provider_objects=sum(removed.provider_objects.values()),
            media_kept=len(kept),
        )
