"""R10: user directory search never returns a local user without consent, to anyone.

Synapse asks the spam checker's ``check_username_for_spam`` about every search result
and drops those it answers True for, as Tchap does for its red list. Users of other
servers are left alone: their own server holds their consent.
"""

from synapse.module_api import ModuleApi, UserProfile

from synapse_lux_privacy.features.directory.consent_cache import ConsentCache


class SearchFilter:
    """The ``check_username_for_spam`` callback (registered with ``require_consent``)."""

    def __init__(self, api: ModuleApi, cache: ConsentCache) -> None:
        self._api = api
        self._cache = cache

    async def check_username_for_spam(self, user_profile: UserProfile, requester_id: str) -> bool:
        """True (hide) for a local user who has not consented, whoever searches."""
        user_id = user_profile["user_id"]
        if not self._api.is_mine(user_id):
            return False
        return not await self._cache.consents(user_id)
