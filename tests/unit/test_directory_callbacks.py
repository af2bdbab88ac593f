"""R10 callbacks: search visibility, the consent cache, profile updates and deactivation.

A fake module API stands in for Synapse; consent lives in a real SQLite (see
test_directory_outbox). Time: a fixed "now"; nothing sleeps.
"""

from pathlib import Path
from typing import Any, cast

import pytest
import pytest_twisted
from synapse.module_api import ModuleApi, ProfileInfo
from synapse.util.clock import Clock
from twisted.internet import reactor

from synapse_lux_privacy.config import parse_config
from synapse_lux_privacy.feature import ModuleContext
from synapse_lux_privacy.features.content.expunged import Expunger
from synapse_lux_privacy.features.directory import DirectoryFeature
from synapse_lux_privacy.features.directory.consent_cache import ConsentCache
from synapse_lux_privacy.features.directory.consent_store import ConsentStore
from synapse_lux_privacy.features.directory.search_visibility import SearchVisibility
from synapse_lux_privacy.features.directory.service import DirectoryService
from synapse_lux_privacy.proof.service import CertificateService
from synapse_lux_privacy.store.audit import AuditStore
from synapse_lux_privacy.store.holds import HoldStore
from synapse_lux_privacy.sweep.orchestrator import SweepOrchestrator
from tests.unit.test_directory_outbox import NOW, Env

ALICE, BOB, REMOTE = "@alice:lux.test", "@bob:lux.test", "@eve:elsewhere.example"


class FakeHs:
    def get_clock(self) -> Clock:
        return Clock(reactor, server_name="lux.test")  # type: ignore[arg-type]


class FakeApi:
    """The parts of ModuleApi the directory feature calls."""

    server_name = "lux.test"
    worker_name = None
    http_client = object()

    def __init__(self) -> None:
        self._hs = FakeHs()
        self.registered: list[Any] = []
        self.spam_checkers: list[dict[str, Any]] = []
        self.third_party_rules: dict[str, Any] = {}
        self.invalidated: list[tuple[Any, tuple[str, ...]]] = []
        self.background: list[str] = []
        self.display_names: dict[str, str] = {}

    def is_mine(self, user_id: str) -> bool:
        return user_id.endswith(":lux.test")

    def get_current_time_msec(self) -> int:
        return NOW

    def register_cached_function(self, func: Any) -> None:
        self.registered.append(func)

    def register_spam_checker_callbacks(self, **callbacks: Any) -> None:
        self.spam_checkers.append(callbacks)

    def register_third_party_rules_callbacks(self, **callbacks: Any) -> None:
        self.third_party_rules.update(callbacks)

    async def sleep(self, seconds: float) -> None:
        pass

    async def invalidate_cache(self, func: Any, keys: tuple[str, ...]) -> None:
        func.invalidate(keys)
        self.invalidated.append((func, keys))

    async def get_profile_for_user(self, localpart: str) -> ProfileInfo:
        return ProfileInfo(avatar_url=None, display_name=self.display_names.get(localpart))

    def run_as_background_process(self, desc: str, func: Any, *args: Any) -> None:
        self.background.append(desc)


class SearchRecorder:
    """Stands in for SearchVisibility (which writes Synapse's tables): records the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    async def consent_changed(self, user_id: str, consent: bool) -> None:
        self.calls.append((user_id, consent))


class Feature:
    """The service wired as the feature wires it, over a fake API and a real database."""

    def __init__(self, tmp_path: Path, national: bool = True) -> None:
        self.env = Env(tmp_path)
        self.fake = FakeApi()
        api = cast(ModuleApi, self.fake)
        store = self.env.consent if national else ConsentStore(self.env.db, national=False)
        self.cache = ConsentCache(api, store)
        self.search = SearchRecorder()
        delivery = self.env.delivery if national else None
        visibility = cast(SearchVisibility, self.search)
        self.service = DirectoryService(api, store, self.cache, delivery, visibility)
        self.reads = 0
        store_get = store.get

        async def counting_get(user_id: str) -> Any:
            self.reads += 1
            return await store_get(user_id)

        store.get = counting_get  # type: ignore[method-assign]

    async def hidden(self, user_id: str) -> bool:
        return not await self.cache.consents(user_id)


@pytest.fixture
def feature(tmp_path: Path) -> Feature:
    return Feature(tmp_path)


@pytest_twisted.ensureDeferred
async def test_r10_every_consent_change_shows_or_hides_the_user_in_search(
    feature: Feature,
) -> None:
    await feature.service.set_consent(ALICE, True)
    await feature.service.set_consent(ALICE, False)
    await feature.service.forget_user(BOB)
    assert feature.search.calls == [(ALICE, True), (ALICE, False), (BOB, False)]


@pytest_twisted.ensureDeferred
async def test_r10_consent_is_cached_and_a_change_invalidates_it_on_every_worker(
    feature: Feature,
) -> None:
    feature.cache.register()
    [registered] = feature.fake.registered
    assert registered.__name__ == "lux_privacy_directory_consent"
    assert await feature.hidden(ALICE) is True
    assert await feature.hidden(ALICE) is True
    assert feature.reads == 1  # the second search was served from the cache

    await feature.service.set_consent(ALICE, True)
    assert feature.fake.invalidated == [(registered, (ALICE,))]
    assert await feature.hidden(ALICE) is False
    await feature.service.set_consent(ALICE, False)
    assert await feature.hidden(ALICE) is True  # the very next lookup
    assert feature.reads == 3


@pytest_twisted.ensureDeferred
async def test_r10_consent_sends_the_current_display_name_and_delivers_at_once(
    feature: Feature,
) -> None:
    feature.fake.display_names["alice"] = "Alice Liddell"
    await feature.service.set_consent(ALICE, True)
    assert feature.env.rows() == [(ALICE, "put", "Alice Liddell", 0)]
    assert feature.fake.background == ["lux_privacy_directory_deliver"]


@pytest_twisted.ensureDeferred
async def test_r10_profile_updates_are_queued_for_consenting_local_users_only(
    feature: Feature,
) -> None:
    renamed = ProfileInfo(avatar_url=None, display_name="New Name")
    await feature.service.on_profile_update(ALICE, renamed, False, False)
    await feature.service.on_profile_update(REMOTE, renamed, False, False)
    assert feature.env.rows() == []
    await feature.service.set_consent(ALICE, True)
    await feature.service.on_profile_update(ALICE, renamed, True, False)
    assert feature.env.rows() == [(ALICE, "put", "New Name", 0)]
    # The profile cleared while deactivating is not an update: the removal follows.
    await feature.service.on_profile_update(ALICE, ProfileInfo(None, None), True, True)
    assert feature.env.rows() == [(ALICE, "put", "New Name", 0)]


@pytest_twisted.ensureDeferred
async def test_r10_deactivation_withdraws_consent_and_queues_the_removal(
    feature: Feature,
) -> None:
    await feature.service.set_consent(ALICE, True)
    await feature.service.on_user_deactivation_status_changed(ALICE, True, False)
    assert (await feature.service.get_consent(ALICE)).consent is False
    assert feature.env.rows() == [(ALICE, "delete", None, 0)]
    assert await feature.hidden(ALICE) is True
    # Reactivation does not give consent back; forgetting again queues nothing more.
    await feature.service.on_user_deactivation_status_changed(ALICE, False, True)
    await feature.service.forget_user(ALICE)
    assert (await feature.service.get_consent(ALICE)).consent is False
    assert feature.env.rows() == [(ALICE, "delete", None, 0)]


@pytest_twisted.ensureDeferred
async def test_r10_without_national_nothing_is_queued_or_delivered(tmp_path: Path) -> None:
    local = Feature(tmp_path, national=False)
    await local.service.set_consent(ALICE, True)
    await local.service.on_profile_update(ALICE, ProfileInfo(None, "X"), False, False)
    await local.service.forget_user(ALICE)
    assert local.env.rows() == [] and local.fake.background == []
    assert await local.hidden(ALICE) is True


@pytest.mark.parametrize("require_consent", [True, False])
def test_r10_the_feature_registers_no_search_callback(
    tmp_path: Path, require_consent: bool
) -> None:
    national = {"url": "https://directory.example.lu/api/v1", "token_path": str(tmp_path / "t")}
    config = parse_config({"directory": {"require_consent": require_consent, "national": national}})
    fake, db = FakeApi(), Env(tmp_path).db
    context = ModuleContext(
        api=cast(ModuleApi, fake),
        config=config,
        db=db,
        holds=HoldStore(db),
        audit=AuditStore(db),
        orchestrator=cast(SweepOrchestrator, None),
        expunger=cast(Expunger, None),
        clock_ms=lambda: 0,
        certificates=cast(CertificateService, None),
    )
    feature = DirectoryFeature(context)
    feature.register_callbacks()
    # Hidden users are kept out of Synapse's search table (SearchVisibility), not
    # filtered from results, which would leak them through "limited".
    assert fake.spam_checkers == []
    # Deactivation withdraws consent, and renames go national, whatever require_consent says.
    assert set(fake.third_party_rules) == {
        "on_profile_update",
        "on_user_deactivation_status_changed",
    }
    assert len(fake.registered) == 1
    assert list(feature.rules()) == ["directory"]
    target = "/users/@a:lux.test/directory_consent"
    routes = [(r.method, bool(r.pattern.fullmatch(target))) for r in feature.routes()]
    assert routes == [("GET", True), ("PUT", True)]
