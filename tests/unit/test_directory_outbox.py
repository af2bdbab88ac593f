"""R10 consent store, outbox, delivery and the ``directory`` sweep rule on a real SQLite.

The national service is a fake sender; the clock is a number the tests move forward
(nothing sleeps: the deliverer's ``sleep`` only advances that number).
"""

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import pytest_twisted
from prometheus_client import REGISTRY

from synapse_lux_privacy.features.directory.consent_store import ConsentStore
from synapse_lux_privacy.features.directory.delivery import (
    LOCK_LEASE_MS,
    LOCK_NAME,
    RETRY_BASE_MS,
    OutboxDelivery,
)
from synapse_lux_privacy.features.directory.national_client import DeliveryResult, Outcome
from synapse_lux_privacy.features.directory.outbox_store import OutboxEntry, OutboxStore
from synapse_lux_privacy.features.directory.policy import Consent
from synapse_lux_privacy.features.directory.rule import DirectoryRule
from synapse_lux_privacy.features.directory.schema import DIRECTORY_MIGRATIONS
from synapse_lux_privacy.store.holds import HoldSet
from synapse_lux_privacy.store.schema import MIGRATIONS, apply_migrations
from synapse_lux_privacy.store.sweep_lock import SweepLockStore
from synapse_lux_privacy.sweep.rule import SweepContext
from tests.unit.sqlite_runner import SqliteRunner

NOW = 1_800_000_000_000
HOUR = 3_600_000
SERVER = "unit.test"
ALICE, BOB, CAROL = "@alice:lux.test", "@bob:lux.test", "@carol:lux.test"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def ms(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


class FakeService:
    """Records what it is sent; ``down`` fails every change, ``refuse`` refuses some users."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str | None]] = []
        self.down = False
        self.refuse: set[str] = set()
        self.during_send: Callable[[OutboxEntry], object] | None = None

    async def send(self, entry: OutboxEntry) -> DeliveryResult:
        self.sent.append((entry.action, entry.user_id, entry.display_name))
        if self.during_send is not None:
            await self.during_send(entry)  # type: ignore[misc]
        if self.down:
            return DeliveryResult(Outcome.RETRY, "HTTP 503")
        if entry.user_id in self.refuse:
            return DeliveryResult(Outcome.REJECTED, "HTTP 400")
        return DeliveryResult(Outcome.DELIVERED, "HTTP 200")


class Env:
    def __init__(self, tmp_path: Path) -> None:
        self.db = SqliteRunner(str(tmp_path / "lux.db"))
        apply_migrations(
            self.db.conn.cursor(), "sqlite", {**MIGRATIONS, "directory": DIRECTORY_MIGRATIONS}
        )
        self.clock = Clock()
        self.service = FakeService()
        self.consent = ConsentStore(self.db, national=True)
        self.outbox = OutboxStore(self.db)
        self.locks = SweepLockStore(self.db)
        self.delivery = self.deliverer("master")

    def deliverer(self, instance: str) -> OutboxDelivery:
        return OutboxDelivery(
            self.outbox, self.locks, self.service, self.clock.ms, self.clock.sleep, instance, SERVER
        )

    def rows(self) -> list[tuple[str, str, str | None, int]]:
        return [
            (r[0], r[1], r[2], int(r[3]))
            for r in self.db.query(
                "SELECT user_id, action, display_name, attempts FROM lux_privacy_directory_outbox"
                " ORDER BY id"
            )
        ]

    def insert(self, user_id: str, action: str, created_ts: int = NOW) -> None:
        """A raw outbox row, as two racing workers could leave (two changes of one user)."""
        self.db.conn.execute(
            "INSERT INTO lux_privacy_directory_outbox (user_id, action, display_name, created_ts,"
            " attempts, next_attempt_ts) VALUES (?, ?, ?, ?, 0, ?)",
            (user_id, action, user_id if action == "put" else None, created_ts, created_ts),
        )


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def _gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"server_name": SERVER})


@pytest_twisted.ensureDeferred
async def test_r10_a_consent_change_and_its_national_change_are_written_together(
    env: Env,
) -> None:
    assert await env.consent.set(ALICE, True, NOW, "Alice") == (Consent(True, NOW), True)
    assert env.rows() == [(ALICE, "put", "Alice", 0)]
    # The withdrawal replaces the waiting upsert: one change per user, the final state.
    assert await env.consent.set(ALICE, False, NOW + 1, None) == (Consent(False, NOW + 1), True)
    assert env.rows() == [(ALICE, "delete", None, 0)]
    # A second withdrawal (e.g. deactivation) keeps the waiting removal and its age.
    assert await env.consent.set(ALICE, False, NOW + HOUR, None) == (
        Consent(False, NOW + 1),
        False,
    )
    assert env.db.query("SELECT created_ts FROM lux_privacy_directory_outbox") == [(NOW + 1,)]
    assert (await env.outbox.backlog()).oldest_removal_ts == NOW + 1
    assert await env.consent.get(ALICE) == Consent(False, NOW + 1)
    assert await env.consent.get(BOB) == Consent(False, None)


@pytest_twisted.ensureDeferred
async def test_r10_without_national_consent_is_recorded_and_nothing_is_queued(env: Env) -> None:
    local_only = ConsentStore(env.db, national=False)
    assert await local_only.set(ALICE, True, NOW, "Alice") == (Consent(True, NOW), False)
    assert await local_only.set(ALICE, False, NOW + 1, None) == (Consent(False, NOW + 1), False)
    assert env.rows() == []


@pytest_twisted.ensureDeferred
async def test_r10_display_name_updates_are_queued_only_for_consenting_users(env: Env) -> None:
    assert await env.consent.queue_update(ALICE, "Nobody Asked", NOW) is False
    await env.consent.set(BOB, False, NOW, None)
    assert await env.consent.queue_update(BOB, "Said No", NOW) is False
    assert env.rows() == []
    await env.consent.set(ALICE, True, NOW, "Alice")
    assert await env.consent.queue_update(ALICE, "Alice B.", NOW + 1) is True
    assert env.rows() == [(ALICE, "put", "Alice B.", 0)]


@pytest_twisted.ensureDeferred
async def test_r10_changes_go_out_in_order_per_user(env: Env) -> None:
    env.insert(ALICE, "put")
    env.insert(BOB, "put")
    env.insert(ALICE, "delete")
    heads = await env.outbox.due_heads(NOW, 0, 10)
    assert [(e.user_id, e.action) for e in heads] == [(ALICE, "put"), (BOB, "put")]
    assert await env.delivery.deliver_due() == 3
    assert env.service.sent == [("put", ALICE, ALICE), ("put", BOB, BOB), ("delete", ALICE, None)]
    assert env.rows() == []


@pytest_twisted.ensureDeferred
async def test_r10_a_failure_backs_off_and_never_holds_up_other_users(env: Env) -> None:
    for user in (ALICE, BOB, CAROL):
        await env.consent.set(user, True, NOW, user)
    env.service.down = True
    assert await env.delivery.deliver_due() == 0
    # The run stopped at its first failure: one request, not one per change.
    assert env.service.sent == [("put", ALICE, ALICE)]
    assert env.rows()[0] == (ALICE, "put", ALICE, 1)
    entry = (await env.outbox.for_user(ALICE))[0]
    assert (entry.next_attempt_ts, entry.last_error) == (NOW + RETRY_BASE_MS, "HTTP 503")
    # The next run tries the change due the longest, not the failing one again.
    await env.delivery.deliver_due()
    assert env.service.sent[-1] == ("put", BOB, BOB)

    env.service.down = False
    assert await env.delivery.deliver_due() == 1  # Carol; Alice and Bob are backing off
    env.clock.now += RETRY_BASE_MS
    assert await env.delivery.deliver_due() == 2
    assert env.rows() == []


@pytest_twisted.ensureDeferred
async def test_r10_a_refused_update_is_dropped_and_logged(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    await env.consent.set(ALICE, True, NOW, "A" * 10_000)
    await env.consent.set(BOB, True, NOW, "Bob")
    env.service.refuse = {ALICE}
    with caplog.at_level(logging.ERROR):
        assert await env.delivery.deliver_due() == 1
    assert env.rows() == []
    assert "refused the put of @alice:lux.test for good" in caplog.text


@pytest_twisted.ensureDeferred
async def test_r10_a_change_replaced_while_in_flight_is_still_sent_after_it(env: Env) -> None:
    await env.consent.set(ALICE, True, NOW, "Alice")

    async def withdraw_meanwhile(entry: OutboxEntry) -> None:
        if entry.action == "put":
            await env.consent.set(ALICE, False, NOW, None)

    env.service.during_send = withdraw_meanwhile
    assert await env.delivery.deliver_due() == 2
    assert [(a, u) for a, u, _ in env.service.sent] == [("put", ALICE), ("delete", ALICE)]
    assert env.rows() == []


@pytest_twisted.ensureDeferred
async def test_r10_a_change_replaced_before_its_turn_is_never_sent(env: Env) -> None:
    await env.consent.set(BOB, True, NOW - 1, "Bob")
    await env.consent.set(ALICE, True, NOW, "Alice")

    async def withdraw_alice(entry: OutboxEntry) -> None:
        if entry.user_id == BOB:  # Alice's upsert is already in the run's page
            await env.consent.set(ALICE, False, NOW, None)

    env.service.during_send = withdraw_alice
    assert await env.delivery.deliver_due() == 2
    assert [(a, u) for a, u, _ in env.service.sent] == [("put", BOB), ("delete", ALICE)]


@pytest_twisted.ensureDeferred
async def test_r10_one_deliverer_at_a_time_across_instances(env: Env) -> None:
    await env.consent.set(ALICE, True, NOW, "Alice")
    other = "directory/worker1"
    assert await env.locks.try_acquire(LOCK_NAME, other, NOW, LOCK_LEASE_MS)
    assert await env.delivery.deliver_due() == 0
    [entry_id] = [e.id for e in await env.outbox.for_user(ALICE)]
    assert await env.delivery.deliver([entry_id], wait_s=2) == set()
    assert env.service.sent == []
    # A holder that died stops blocking once its lease runs out.
    env.clock.now += LOCK_LEASE_MS + 1
    assert await env.delivery.deliver([entry_id]) == {entry_id}
    assert await env.delivery.deliver([entry_id]) == set()  # already delivered: skipped


@pytest_twisted.ensureDeferred
async def test_r10_a_restarted_instance_takes_its_own_lease_back_at_once(env: Env) -> None:
    await env.consent.set(ALICE, False, NOW, None)
    await env.consent.set(ALICE, True, NOW, "Alice")
    # The previous process of this instance died holding the lease.
    assert await env.locks.try_acquire(LOCK_NAME, "directory/master", NOW, LOCK_LEASE_MS)
    assert await env.deliverer("master").deliver_due() == 1


@pytest_twisted.ensureDeferred
async def test_r10_removal_age_gauge_follows_the_oldest_waiting_removal(env: Env) -> None:
    age = "lux_privacy_directory_oldest_pending_removal_age_seconds"
    await env.consent.set(ALICE, True, NOW - 3 * HOUR, "Alice")
    await env.consent.set(ALICE, False, NOW - 2 * HOUR, None)
    await env.consent.set(BOB, True, NOW - 2 * HOUR, "Bob")
    await env.consent.set(BOB, False, NOW - HOUR, None)
    await env.consent.set(CAROL, True, NOW - 5 * HOUR, "Carol")
    backlog = await env.delivery.refresh_metrics()
    assert (backlog.pending, backlog.removals, backlog.oldest_removal_ts) == (3, 2, NOW - 2 * HOUR)
    assert _gauge(age) == 2 * 3600
    assert _gauge("lux_privacy_directory_outbox_pending") == 3
    await env.delivery.deliver_due()
    assert _gauge(age) == 0 and _gauge("lux_privacy_directory_outbox_pending") == 0


@pytest_twisted.ensureDeferred
async def test_r10_sweep_rule_pages_due_changes_and_delivers_them(env: Env) -> None:
    rule = DirectoryRule(env.outbox, env.delivery, 24 * HOUR, env.clock.ms)
    for user in (ALICE, BOB, CAROL):
        env.insert(user, "put")
    env.insert(ALICE, "delete")
    env.insert("@later:lux.test", "put", created_ts=NOW + HOUR)  # not due as of NOW
    ctx = SweepContext(as_of_ms=NOW, dry_run=False, batch_size=2)
    page = await rule.find_candidates(ctx, HoldSet(), None)
    assert [c.item_id for c in page.items] == ["1", "2"] and page.next_cursor == "2"
    assert all(c.user_id is None and c.room_id is None for c in page.items)
    assert await rule.delete(ctx, page.items) == page.items
    page = await rule.find_candidates(ctx, HoldSet(), page.next_cursor)
    assert [c.item_id for c in page.items] == ["3", "4"] and page.next_cursor == "4"
    env.service.down = True
    assert await rule.delete(ctx, page.items) == []
    later = SweepContext(as_of_ms=NOW + 2 * HOUR, dry_run=False, batch_size=10)
    page = await rule.find_candidates(later, HoldSet(), None)
    assert [c.item_id for c in page.items] == ["3", "4", "5"] and page.next_cursor is None


@pytest_twisted.ensureDeferred
async def test_r10_each_sweep_logs_an_error_past_the_removal_deadline(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    rule = DirectoryRule(env.outbox, env.delivery, 24 * HOUR, env.clock.ms)
    ctx = SweepContext(as_of_ms=NOW, dry_run=True, batch_size=10)
    env.insert(ALICE, "delete", created_ts=NOW - 24 * HOUR + 60_000)  # a minute before the limit
    with caplog.at_level(logging.ERROR):
        await rule.find_candidates(ctx, HoldSet(), None)
    assert "removal deadline" not in caplog.text
    env.insert(BOB, "delete", created_ts=NOW - 25 * HOUR)  # an hour past it
    with caplog.at_level(logging.ERROR):
        await rule.find_candidates(ctx, HoldSet(), None)
        await rule.find_candidates(ctx, HoldSet(), "2")  # later pages of the same sweep: no
    assert caplog.text.count("R10 removal deadline missed: 2 removal(s)") == 1
    assert "the oldest for 25.0 hours (directory.national.removal_deadline: 1d)" in caplog.text


@pytest_twisted.ensureDeferred
async def test_r10_sweep_rule_without_national_has_nothing_to_do(env: Env) -> None:
    env.insert(ALICE, "delete")  # left from when national was configured
    rule = DirectoryRule(env.outbox, None, None, env.clock.ms)
    ctx = SweepContext(as_of_ms=NOW, dry_run=False, batch_size=10)
    page = await rule.find_candidates(ctx, HoldSet(), None)
    assert (list(page.items), page.next_cursor) == ([], None)
