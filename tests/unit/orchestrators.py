"""Builds the real orchestrator over a SqliteRunner for unit tests.

Time: the clock is injected. The lease keeper's sleep never returns unless a test
passes a real one (``twisted_sleep``) to watch renewals happen.
"""

from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

from twisted.internet import defer, reactor, task

from synapse_lux_privacy.config import AdaptivePaceConfig
from synapse_lux_privacy.store.audit import AuditStore
from synapse_lux_privacy.store.failures import FailureStore
from synapse_lux_privacy.store.holds import HoldStore
from synapse_lux_privacy.store.record_retention import RecordRetention
from synapse_lux_privacy.store.sweep_lock import SweepLockStore
from synapse_lux_privacy.store.sweeps import SweepRunStore
from synapse_lux_privacy.sweep.orchestrator import (
    LOCK_LEASE_MS,
    ResidueStep,
    SweepOrchestrator,
)
from synapse_lux_privacy.sweep.probe import LoadProbe
from synapse_lux_privacy.sweep.report import SweepReport
from synapse_lux_privacy.sweep.rule import Rule
from tests.unit.sqlite_runner import SqliteRunner

MONTH = 30 * 86_400_000

T = TypeVar("T")


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Drive a coroutine that never waits (the SQLite runner answers at once)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise AssertionError("the coroutine waited")


def spawn(func: Callable[[], Awaitable[None]]) -> "defer.Deferred[Any]":
    return defer.ensureDeferred(func())  # type: ignore[arg-type]


async def never(seconds: float) -> None:
    await defer.Deferred()


async def twisted_sleep(seconds: float) -> None:
    await task.deferLater(reactor, seconds)  # type: ignore[arg-type]


def build(
    db: SqliteRunner,
    rules: Mapping[str, Rule],
    clock_ms: Callable[[], int],
    batch_size: int = 10,
    instance: str = "test",
    lease_ms: int = LOCK_LEASE_MS,
    sleep: Callable[[float], Awaitable[None]] = never,
    audit_retention_ms: int = 24 * MONTH,
    pace: float | None = None,
    adaptive_pace: AdaptivePaceConfig | None = None,
    probe: LoadProbe | None = None,
    lock: SweepLockStore | None = None,
    residue: ResidueStep | None = None,
) -> SweepOrchestrator:
    orchestrator = SweepOrchestrator(
        holds=HoldStore(db),
        audit=AuditStore(db),
        lock=lock or SweepLockStore(db),
        runs=SweepRunStore(db),
        failures=FailureStore(db),
        records=RecordRetention(db),
        clock_ms=clock_ms,
        instance_name=instance,
        server_name="lux.test",
        batch_size=batch_size,
        audit_retention_ms=audit_retention_ms,
        spawn=spawn,
        sleep=sleep,
        lease_ms=lease_ms,
        pace=pace,
        adaptive_pace=adaptive_pace,
        probe=probe,
        residue=residue,
    )
    orchestrator.register(rules)
    return orchestrator


def assert_balanced(report: SweepReport) -> None:
    """The accounting invariant (issue #11): every candidate is explained."""
    for name, result in report.results.items():
        assert result.balanced(), (name, result)
        assert result.skipped == sum(result.skipped_reasons.values()), (name, result)
