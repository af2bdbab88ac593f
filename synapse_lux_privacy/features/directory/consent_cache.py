"""Consent lookups (profile updates going national), cached and invalidated on every worker (R10).

The cache is a ``synapse.module_api.cached`` function registered with
``ModuleApi.register_cached_function``; a change calls ``ModuleApi.invalidate_cache``,
which drops the entry here and sends the invalidation through Synapse's replication
stream to every other worker, so a withdrawal takes effect on the next search anywhere.
"""

from collections.abc import Awaitable, Callable
from typing import cast

from synapse.module_api import ModuleApi, cached

from synapse_lux_privacy.features.directory.consent_store import ConsentStore
from synapse_lux_privacy.synapse_adapter.directory import homeserver_clock

# Entries are one boolean per user asked about; 100,000 users fit in a few megabytes.
MAX_ENTRIES = 100_000


class ConsentCache:
    """Whether a user consents to be listed, as a profile update asks it."""

    def __init__(self, api: ModuleApi, store: ConsentStore) -> None:
        # ``@cached`` needs these two attributes on the object it decorates.
        self.server_name = api.server_name
        self.clock = homeserver_clock(api)
        self._api = api
        self._store = store

    def register(self) -> None:
        """Receive invalidations from other workers (call once, at module load)."""
        self._api.register_cached_function(self.lux_privacy_directory_consent)

    @cached(max_entries=MAX_ENTRIES)
    async def lux_privacy_directory_consent(self, user_id: str) -> bool:
        return (await self._store.get(user_id)).consent

    async def consents(self, user_id: str) -> bool:
        # At run time the decorator binds ``self`` (it is a descriptor); its type hints
        # describe the unbound function, hence the cast.
        lookup = cast(Callable[[str], Awaitable[bool]], self.lux_privacy_directory_consent)
        return await lookup(user_id)

    async def invalidate(self, user_id: str) -> None:
        """Forget the cached answer here and on every other worker."""
        await self._api.invalidate_cache(self.lux_privacy_directory_consent, (user_id,))
