"""The directory operations (R10): consent changes, profile updates, deactivation.

Each change is recorded (with its national directory change, when ``national`` is
configured) in one transaction, then the consent cache is invalidated on every worker,
the user is shown in or hidden from user directory search, and a delivery is started
at once on this instance.
"""

import logging

from synapse.module_api import ModuleApi, ProfileInfo, UserID

from synapse_lux_privacy.features.directory.consent_cache import ConsentCache
from synapse_lux_privacy.features.directory.consent_store import ConsentStore
from synapse_lux_privacy.features.directory.delivery import OutboxDelivery
from synapse_lux_privacy.features.directory.policy import Consent
from synapse_lux_privacy.features.directory.search_visibility import SearchVisibility

logger = logging.getLogger(__name__)


class DirectoryService:
    def __init__(
        self,
        api: ModuleApi,
        store: ConsentStore,
        cache: ConsentCache,
        delivery: OutboxDelivery | None,
        search: SearchVisibility,
    ) -> None:
        self._api = api
        self._store = store
        self._cache = cache
        self._delivery = delivery
        self._search = search

    async def get_consent(self, user_id: str) -> Consent:
        return await self._store.get(user_id)

    async def set_consent(self, user_id: str, consent: bool) -> Consent:
        """Give or withdraw consent; a withdrawal hides the user from the next search.

        The consent is recorded first: if the search table change then fails, the
        start-up reconciliation makes it agree (``SearchVisibility``).
        """
        display_name = None
        if consent and self._delivery is not None:
            localpart = UserID.from_string(user_id).localpart
            display_name = (await self._api.get_profile_for_user(localpart)).display_name
        now = self._api.get_current_time_msec()
        result, queued = await self._store.set(user_id, consent, now, display_name)
        await self._cache.invalidate(user_id)
        await self._search.consent_changed(user_id, result.consent)
        logger.info("lux_privacy: directory consent of %s is now %s", user_id, result.consent)
        if queued:
            self.deliver_soon()
        return result

    async def forget_user(self, user_id: str) -> None:
        """Withdraw consent and queue the national removal (deactivation, deletion: R7, R12)."""
        await self.set_consent(user_id, False)

    async def on_profile_update(
        self, user_id: str, new_profile: ProfileInfo, by_admin: bool, deactivation: bool
    ) -> None:
        """Third-party rules callback: a consenting user's new display name goes national."""
        if deactivation or self._delivery is None or not self._api.is_mine(user_id):
            return
        if not await self._cache.consents(user_id):
            return
        now = self._api.get_current_time_msec()
        if await self._store.queue_update(user_id, new_profile.display_name, now):
            self.deliver_soon()

    async def on_user_deactivation_status_changed(
        self, user_id: str, deactivated: bool, by_admin: bool
    ) -> None:
        """Third-party rules callback: a deactivated user loses consent and the listing."""
        if deactivated and self._api.is_mine(user_id):
            await self.forget_user(user_id)

    def deliver_soon(self) -> None:
        """Start delivering the outbox now, in the background, on this instance."""
        if self._delivery is not None:
            self._api.run_as_background_process(
                "lux_privacy_directory_deliver", self._delivery.deliver_due
            )
