"""The directory feature (R10): consent, user search without hidden users, national sync."""

from collections.abc import Mapping, Sequence
from typing import Any

from synapse_lux_privacy.admin_api.resource import Route, route
from synapse_lux_privacy.feature import Feature, ModuleContext
from synapse_lux_privacy.features.directory.consent_cache import ConsentCache
from synapse_lux_privacy.features.directory.consent_store import ConsentStore
from synapse_lux_privacy.features.directory.delivery import DELIVERY_INTERVAL_MS, OutboxDelivery
from synapse_lux_privacy.features.directory.endpoints import ConsentEndpoint
from synapse_lux_privacy.features.directory.national_client import NationalDirectoryClient
from synapse_lux_privacy.features.directory.outbox_store import OutboxStore
from synapse_lux_privacy.features.directory.report import DirectoryReport
from synapse_lux_privacy.features.directory.rule import DirectoryRule
from synapse_lux_privacy.features.directory.schema import DIRECTORY_MIGRATIONS
from synapse_lux_privacy.features.directory.search_visibility import SearchVisibility
from synapse_lux_privacy.features.directory.service import DirectoryService
from synapse_lux_privacy.store.sweep_lock import SweepLockStore
from synapse_lux_privacy.sweep.rule import Rule


class DirectoryFeature(Feature):
    """R10 on one Synapse process. ``forget_user`` is for other features (account deletion)."""

    migrations: Mapping[str, Sequence[str]] = {"directory": DIRECTORY_MIGRATIONS}

    def __init__(self, ctx: ModuleContext) -> None:
        self._api = api = ctx.api
        self._config = ctx.config.directory
        national = self._config.national
        self._outbox = OutboxStore(ctx.db)
        self._consent = ConsentStore(ctx.db, national is not None)
        self._cache = ConsentCache(api, self._consent)
        self._client: NationalDirectoryClient | None = None
        self._delivery: OutboxDelivery | None = None
        if national is not None:
            self._client = NationalDirectoryClient(api.http_client, national)
            self._delivery = OutboxDelivery(
                outbox=self._outbox,
                locks=SweepLockStore(ctx.db),
                sender=self._client,
                clock_ms=api.get_current_time_msec,
                sleep=api.sleep,
                instance_name=api.worker_name or "master",
                server_name=api.server_name,
            )
        self._search = SearchVisibility(api, ctx.db, self._config.require_consent)
        self._service = DirectoryService(
            api, self._consent, self._cache, self._delivery, self._search
        )
        self._report = DirectoryReport(self._consent, self._outbox)

    async def forget_user(self, user_id: str) -> None:
        """Withdraw the user's consent and queue the removal of their national entry (R7, R10).

        Idempotent: a second call queues nothing more. Deactivation through Synapse
        calls it already (``on_user_deactivation_status_changed``).
        """
        await self._service.forget_user(user_id)

    def rules(self) -> Mapping[str, Rule]:
        national = self._config.national
        deadline = national.removal_deadline_ms if national is not None else None
        rule = DirectoryRule(
            self._outbox, self._delivery, deadline, self._api.get_current_time_msec
        )
        return {"directory": rule}

    def routes(self) -> Sequence[Route]:
        endpoint = ConsentEndpoint(self._api, self._service)
        path = "/users/{user_id}/directory_consent"
        return (route("GET", path, endpoint.get), route("PUT", path, endpoint.put))

    def register_callbacks(self) -> None:
        self._cache.register()
        self._api.register_third_party_rules_callbacks(
            on_profile_update=self._service.on_profile_update,
            on_user_deactivation_status_changed=self._service.on_user_deactivation_status_changed,
        )

    async def report(self, user_id: str) -> Mapping[str, Any]:
        return await self._report.fields(user_id)

    async def start(self) -> None:
        await self._search.start()
        if self._client is None or self._delivery is None:
            return
        self._client.load_token()
        if not self._api.should_run_background_tasks():
            return  # this instance delivers only what it queues itself
        self._api.looping_background_call(
            self._delivery.deliver_due, DELIVERY_INTERVAL_MS, desc="lux_privacy_directory_deliver"
        )
        self._service.deliver_soon()  # resume what a restart interrupted, at once
