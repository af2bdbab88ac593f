"""Runs the rules in their fixed order, in batches, under the database lease.

Guarantees, whatever the rules do:
- dry run: nothing is deleted, the counts are exact;
- legal hold (R13): every candidate is checked against the holds read just
  before its batch is deleted, in the transaction that marks the batch in flight
  (``store/hold_fence.py``), and a held one is never passed to ``delete``; a batch
  deleted item by item reads them again at least every ``STOP_CHECK_S``. ``PUT
  /holds`` waits for a batch marked before the hold, so a hold binds once placed;
- at most one sweep at a time on the whole deployment (lease in the database,
  renewed on a timer for as long as the sweep runs: ``lease.py``); a sweep whose
  renewals fail stops deleting while a third of its lease is still left;
- every candidate is accounted for: ``candidates == deleted + held + errors +
  skipped`` per rule, with the reasons of the skipped ones; an item the rule did
  not try (``rule.UNTRIED``) keeps its failure record;
- one item that cannot be deleted never stops the others: it is an error,
  recorded in ``lux_privacy_failures`` and retried at later sweeps with backoff;
- one audit row per batch and (user, room), written before the deletion and
  completed with what was really deleted after it (a group of which nothing went
  loses its row), so an interrupted batch leaves a trace;
- the sweep's counts are stored after every batch, so its progress is visible
  from every worker, and a cancellation asked for anywhere stops it after the
  batch;
- a full real sweep deletes accountability records older than
  ``audit.retention``; a sweep whose pruning fails ends ``completed_with_errors``;
- with ``sweep_pace``, deletions stay at or below that many items per second: a
  real sweep's batches hold at most a second's worth of items, and the sweep
  pauses after each batch that went faster; with ``sweep_adaptive_pace`` the
  batches shrink and the pauses grow while the database's probed latency shows
  the deletions slow the server down (``pacer.py``);
- a rule with a ``pass_completed(ctx)`` method is told when a real (not dry-run)
  pass of it ran to its end (after its last batch), never after a cancelled,
  interrupted or failed one;
- after a real sweep (completed or cancelled) in which a rule that deletes or rewrites
  events (``rule.EVENT_TEXT_RULES``) deleted something, the ``residue`` step clears what
  the deletions left in the database files and its result goes to the report's
  ``disk_residue`` (``synapse_adapter/disk_residue.py``, R1); a sweep whose step fails
  ends ``completed_with_errors``. Once the sweep has ended, what the step measures later
  (PostgreSQL's statistics, which lag) is added to the stored record in the background;
- hooks added with ``add_finished_hook`` are awaited once a sweep has ended and
  released the lease (the certificate of a completed sweep, issue #24); a hook that
  fails is logged and changes nothing of the sweep.
"""

import functools
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import attrs

from synapse_lux_privacy import metrics
from synapse_lux_privacy.config import AdaptivePaceConfig
from synapse_lux_privacy.store.audit import AuditGroup, AuditStore
from synapse_lux_privacy.store.failures import DAY_MS, FailureStore
from synapse_lux_privacy.store.holds import HoldSet, HoldStore
from synapse_lux_privacy.store.record_retention import RecordRetention
from synapse_lux_privacy.store.sweep_lock import SWEEP_LOCK, SweepLockStore
from synapse_lux_privacy.store.sweeps import SweepRunStore
from synapse_lux_privacy.sweep import harness_gate
from synapse_lux_privacy.sweep.lease import LeaseKeeper
from synapse_lux_privacy.sweep.pacer import Pacer
from synapse_lux_privacy.sweep.probe import LoadProbe
from synapse_lux_privacy.sweep.report import (
    CANCELLED,
    COMPLETED,
    COMPLETED_WITH_ERRORS,
    INTERRUPTED,
    RuleResult,
    SweepReport,
)
from synapse_lux_privacy.sweep.rule import (
    EVENT_TEXT_RULES,
    RULE_NAMES,
    SWEEP_STOPPED,
    UNTRIED,
    Candidate,
    DeleteOutcome,
    Rule,
    SweepContext,
)

logger = logging.getLogger(__name__)

# How long the sweep lease lasts without renewal; the keeper renews it every third.
LOCK_LEASE_MS = 10 * 60 * 1000

# Identifies this process in lock holders ("instance/token/sweep"), shared by
# every orchestrator of the process. A lease held under this instance's name
# with another token belongs to a predecessor that was killed (instance names
# are unique in a deployment, and a restarted container may reuse its pid), so
# it is taken over at once instead of blocking sweeps until it runs out.
PROCESS_TOKEN = uuid.uuid4().hex[:12]

# Reasons an item is skipped by the orchestrator itself (rules add their own).
ALREADY_GONE = "already_gone"
DRY_RUN = "dry_run"
RETRY_BACKOFF = "retry_backoff"
FAILED_EARLIER = "failed_earlier_in_sweep"
# How often a batch deleted item by item looks whether its sweep must stop: a batch of
# slow items (an account's deletion takes about a second) would otherwise hold a
# cancellation for minutes.
STOP_CHECK_S = 1.0

Spawn = Callable[[Callable[[], Awaitable[None]]], object]
FinishedHook = Callable[[SweepReport], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]


class ResidueStep(Protocol):
    """What a sweep does about the deleted text its deletions left in the database files
    (``synapse_adapter/disk_residue.py``, R1)."""

    async def clear(self) -> dict[str, Any]:
        """At the end of the sweep: the report's ``disk_residue``."""

    async def measure(self) -> dict[str, Any] | None:
        """After the sweep, in the background: figures added to ``disk_residue``."""


class SweepAlreadyRunning(Exception):
    """Another sweep holds the lock (on this process or another worker)."""


class _SweepStopped(Exception):
    """The sweep stops after its batch: cancelled, or its lease was lost."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


@attrs.define
class StartedSweep:
    """A sweep that holds the lease and has its record, ready to run."""

    report: SweepReport
    holder: str
    rule_names: tuple[str, ...]
    full: bool
    keeper: LeaseKeeper
    failed_items: set[str] = attrs.Factory(set)

    @property
    def sweep_id(self) -> str:
        return self.report.sweep_id


class SweepOrchestrator:
    """Runs sweeps. One instance per Synapse process, shared by every feature."""

    def __init__(
        self,
        holds: HoldStore,
        audit: AuditStore,
        lock: SweepLockStore,
        runs: SweepRunStore,
        failures: FailureStore,
        records: RecordRetention,
        clock_ms: Callable[[], int],
        instance_name: str,
        server_name: str,
        batch_size: int,
        audit_retention_ms: int,
        spawn: Spawn,
        sleep: Sleep,
        lease_ms: int = LOCK_LEASE_MS,
        pace: float | None = None,
        adaptive_pace: AdaptivePaceConfig | None = None,
        probe: LoadProbe | None = None,
        residue: ResidueStep | None = None,
    ) -> None:
        self._rules: dict[str, Rule] = {}
        self._holds = holds
        self._audit = audit
        self._lock = lock
        self._runs = runs
        self._failures = failures
        self._records = records
        self._clock_ms = clock_ms
        self._instance = instance_name
        self._server_name = server_name
        self._batch_size = batch_size
        self._audit_retention_ms = audit_retention_ms
        self._spawn = spawn
        self._sleep = sleep
        self._lease_ms = lease_ms
        self._pace = pace
        self._adaptive_pace = adaptive_pace or AdaptivePaceConfig()
        self._probe = probe
        self._residue = residue
        self._finished_hooks: list[FinishedHook] = []

    def add_finished_hook(self, hook: FinishedHook) -> None:
        """Await ``hook(report)`` after each sweep has ended, whatever its status."""
        self._finished_hooks.append(hook)

    async def release_predecessors(self) -> None:
        """At start-up: the lease of a killed predecessor of this process goes, so its
        sweep reads ``interrupted`` at once rather than when the lease runs out."""
        if await self._lock.release_predecessors(
            SWEEP_LOCK, f"{self._instance}/", f"{self._instance}/{PROCESS_TOKEN}/"
        ):
            logger.warning("lux_privacy: a sweep of a killed predecessor of this process ended")

    def register(self, rules: Mapping[str, Rule]) -> None:
        """Add the rules of a feature (names among RULE_NAMES)."""
        unknown = set(rules) - set(RULE_NAMES)
        if unknown:
            raise ValueError(f"unknown rule names: {sorted(unknown)}")
        self._rules.update(rules)

    async def run(
        self, as_of_ms: int | None, dry_run: bool, rule_names: Iterable[str] | None = None
    ) -> SweepReport:
        """Run one sweep to its end; raise SweepAlreadyRunning if another holds the lock."""
        return await self.execute(await self.start(as_of_ms, dry_run, rule_names))

    def run_in_background(self, sweep: StartedSweep) -> None:
        """Run a started sweep without waiting for it (``POST /sweeps``)."""

        async def go() -> None:
            try:
                await self.execute(sweep)
            except Exception:
                logger.exception("lux_privacy: background sweep %s failed", sweep.sweep_id)

        self._spawn(go)

    async def start(
        self, as_of_ms: int | None, dry_run: bool, rule_names: Iterable[str] | None = None
    ) -> StartedSweep:
        """Take the lease and record the sweep; raise SweepAlreadyRunning if taken."""
        wanted = None if rule_names is None else set(rule_names)
        selected = tuple(n for n in RULE_NAMES if wanted is None or n in wanted)
        sweep_id = uuid.uuid4().hex
        holder = f"{self._instance}/{PROCESS_TOKEN}/{sweep_id}"
        started = self._clock_ms()
        if not await self._lock.try_acquire(
            SWEEP_LOCK, holder, started, self._lease_ms, reclaim_prefix=f"{self._instance}/"
        ):
            raise SweepAlreadyRunning()
        report = SweepReport(
            sweep_id=sweep_id,
            as_of=started if as_of_ms is None else as_of_ms,
            dry_run=dry_run,
            started_ts=started,
            pace=pace_settings(self._batch_size, self._pace, self._adaptive_pace),
        )
        try:
            interrupted = await self._runs.start(
                sweep_id, self._instance, started, report.as_of, dry_run
            )
        except Exception:
            await self._lock.release(SWEEP_LOCK, holder)
            raise
        if interrupted:
            logger.warning(
                "lux_privacy: %d earlier sweep(s) were interrupted; this sweep continues"
                " their work",
                interrupted,
            )
        keeper = LeaseKeeper(
            self._lock, holder, self._clock_ms, self._lease_ms, self._sleep, started
        )
        return StartedSweep(report, holder, selected, wanted is None, keeper)

    async def execute(self, sweep: StartedSweep) -> SweepReport:
        """Run a started sweep's rules, then release the lease."""
        report = sweep.report
        pacer = Pacer(
            self._batch_size,
            self._pace,
            self._adaptive_pace,
            self._probe,
            self._sleep,
            report.dry_run,
        )
        ctx = SweepContext(
            as_of_ms=report.as_of,
            dry_run=report.dry_run,
            batch_size=pacer.batch_size(),
            whole_room_size=pacer.max_batch_size,
            step=pacer.step,
            look_ahead=pacer.controller is None,
        )
        self._spawn(sweep.keeper.keep)
        wall_start = time.monotonic()
        status = INTERRUPTED
        try:
            await pacer.start()
            for name in sweep.rule_names:
                rule = self._rules.get(name)
                if rule is None:
                    report.results[name] = RuleResult(enforced=False)
                    continue
                report.current_rule = name
                report.results[name] = RuleResult()
                await self._run_rule(rule, ctx, sweep, report.results[name], pacer)
            cleared = await self._clear_residue(report)
            pruned = not sweep.full or report.dry_run or await self._prune_records(sweep)
            ok = report.errors == 0 and pruned and cleared
            status = COMPLETED if ok else COMPLETED_WITH_ERRORS
        except _SweepStopped as stopped:
            status = stopped.status
            if status == CANCELLED:
                await self._clear_residue(report)
        finally:
            sweep.keeper.stop()
            report.status = status
            report.current_rule = None
            report.finished_ts = self._clock_ms()
            try:
                await self._runs.finish(
                    sweep.sweep_id, report.finished_ts, status, report.to_json()
                )
            finally:
                # Released even when the end could not be recorded: the keeper has stopped,
                # so a lease left behind would block every sweep until it ran out. The
                # record stays "running" and the next sweep marks it interrupted.
                await self._lock.release(SWEEP_LOCK, sweep.holder)
            metrics.sweep_duration_seconds.labels(
                self._server_name, str(report.dry_run).lower()
            ).observe(time.monotonic() - wall_start)
        if report.disk_residue is not None and "error" not in report.disk_residue:
            self._spawn(functools.partial(self._measure_residue, report))
        await self._update_failure_gauge()
        for hook in self._finished_hooks:
            try:
                await hook(report)
            except Exception:
                logger.warning(
                    "lux_privacy: a hook at the end of sweep %s failed",
                    report.sweep_id,
                    exc_info=True,
                )
        # Only a full sweep (every rule) counts as "the last successful sweep": a
        # filtered one, such as the quota eviction loop, leaves the other rules unrun.
        if status == COMPLETED and not report.dry_run and sweep.full:
            metrics.last_successful_sweep_timestamp_seconds.labels(self._server_name).set(
                report.finished_ts / 1000
            )
        logger.info(
            "lux_privacy: sweep %s %s: %s", sweep.sweep_id, status, report.to_json()["results"]
        )
        if pacer.controller is not None:
            logger.info(
                "lux_privacy: sweep %s: adaptive pace backed off after %d batch(es);"
                " last batch size %d",
                sweep.sweep_id,
                pacer.controller.hurt_batches,
                pacer.controller.size,
            )
        return report

    async def _run_rule(
        self,
        rule: Rule,
        sweep_ctx: SweepContext,
        sweep: StartedSweep,
        result: RuleResult,
        pacer: Pacer,
    ) -> None:
        cursor: str | None = None
        began = time.monotonic()
        while True:
            # The adaptive pace sizes each batch; a rule's cursor does not depend on it.
            ctx = attrs.evolve(sweep_ctx, batch_size=pacer.batch_size())
            pacer.begin_batch()
            holds = await self._holds.active_holds()
            try:
                page = await rule.find_candidates(ctx, holds, cursor)
            except Exception:
                # Without a page the rule cannot go on; the other rules still run.
                logger.exception(
                    "lux_privacy: rule %s failed in sweep %s", rule.name, sweep.sweep_id
                )
                metrics.rule_errors_total.labels(self._server_name, rule.name).inc()
                result.rule_errors += 1
                return
            result.candidates += len(page.items)
            if ctx.dry_run:
                await self._count_dry(rule.name, page.items, holds, sweep, result)
            elif page.items:
                await self._delete_marked(rule, ctx, sweep, page.items, result, pacer)
            if not ctx.dry_run:
                await pacer.end_batch(len(page.items))
            result.seconds = round(time.monotonic() - began, 3)
            if await self._runs.progress(
                sweep.sweep_id, self._clock_ms(), rule.name, sweep.report.to_json()
            ):
                raise _SweepStopped(CANCELLED)
            if sweep.keeper.lost:
                raise _SweepStopped(INTERRUPTED)
            if page.next_cursor is None:
                if not ctx.dry_run:
                    await _pass_completed(rule, ctx)
                return
            cursor = page.next_cursor

    async def _count_dry(
        self,
        rule: str,
        items: Sequence[Candidate],
        holds: HoldSet,
        sweep: StartedSweep,
        result: RuleResult,
    ) -> None:
        """A dry run's page: counted as a real sweep would treat it, nothing deleted."""
        eligible = [c for c in items if not holds.covers(c.user_id, c.room_id)]
        result.held += len(items) - len(eligible)
        eligible = await self._without_failing(rule, eligible, sweep, result)
        _count_rooms(result, eligible)
        result.skip(DRY_RUN, len(eligible))
        result.bytes += sum(c.size_bytes for c in eligible)

    async def _delete_marked(
        self,
        rule: Rule,
        ctx: SweepContext,
        sweep: StartedSweep,
        items: Sequence[Candidate],
        result: RuleResult,
        pacer: Pacer,
    ) -> None:
        """Delete a page's items under the holds read as the batch is marked in flight
        (R13); the mark is cleared as soon as the deletion is over."""
        await harness_gate.pause(harness_gate.LISTED, rule.name, self._sleep)
        holds = None if sweep.keeper.lost else await self._mark(sweep)
        if holds is None:
            result.skip(SWEEP_STOPPED, len(items))
            raise _SweepStopped(INTERRUPTED)
        cleared = False

        async def batch(eligible: Sequence[Candidate]) -> None:
            nonlocal cleared
            try:
                await self._delete_batch(rule, ctx, sweep, eligible, result)
            finally:
                cleared = True
                await self._holds.clear_batch(sweep.holder)

        try:
            eligible = [c for c in items if not holds.covers(c.user_id, c.room_id)]
            result.held += len(items) - len(eligible)
            eligible = await self._without_failing(rule.name, eligible, sweep, result)
            _count_rooms(result, eligible)
            if eligible:
                await harness_gate.pause(harness_gate.MARKED, rule.name, self._sleep)
                await pacer.delete(len(eligible), functools.partial(batch, eligible))
        finally:
            if not cleared:
                await self._holds.clear_batch(sweep.holder)

    async def _mark(self, sweep: StartedSweep) -> HoldSet | None:
        """Mark a batch in flight and read the holds it is deleted under (R13); None
        when the sweep no longer holds its lease."""
        return await self._holds.mark_batch(sweep.holder, self._clock_ms())

    async def _without_failing(
        self, rule: str, items: list[Candidate], sweep: StartedSweep, result: RuleResult
    ) -> list[Candidate]:
        """Leave out items that failed earlier in this sweep or wait out a backoff."""
        earlier = [c for c in items if c.item_id in sweep.failed_items]
        result.skip(FAILED_EARLIER, len(earlier))
        items = [c for c in items if c.item_id not in sweep.failed_items]
        waiting = await self._failures.waiting(rule, [c.item_id for c in items], self._clock_ms())
        result.skip(RETRY_BACKOFF, len(waiting))
        return [c for c in items if c.item_id not in waiting]

    async def _delete_batch(
        self,
        rule: Rule,
        ctx: SweepContext,
        sweep: StartedSweep,
        batch: Sequence[Candidate],
        result: RuleResult,
    ) -> None:
        """Delete one batch, item by item unless the rule isolates failures itself."""
        planned = _group(batch)
        keys = list(planned)
        row_ids = await self._audit.start_batch(
            sweep.sweep_id, rule.name, self._clock_ms(), [planned[k] for k in keys]
        )
        held: set[str] = set()
        if getattr(rule, "isolates_failures", False):
            outcome = await _delete(rule, ctx, batch)
        else:
            outcome, held = await self._delete_each(rule, ctx, sweep, batch)
        deleted = {c.item_id: c for c in outcome.deleted}
        done = list(deleted.values())
        failed: dict[Candidate, str] = {}
        cleared: list[str] = []
        for item in batch:
            if item.item_id in deleted:
                cleared.append(item.item_id)
            elif item.item_id in outcome.failed:
                failed[item] = outcome.failed[item.item_id]
            elif item.item_id in held:
                result.held += 1
            else:
                reason = outcome.skipped.get(item.item_id, ALREADY_GONE)
                result.skip(reason)
                if reason not in UNTRIED:  # untried: any failure record stays
                    cleared.append(item.item_id)
        result.deleted += len(done)
        result.bytes += sum(c.size_bytes for c in done)
        result.errors += len(failed)
        now = self._clock_ms()
        await self._audit.finish_batch(row_ids, [_group(done).get(k) for k in keys], now)
        await self._failures.record(rule.name, failed, now)
        await self._failures.forget(rule.name, cleared)
        sweep.failed_items.update(c.item_id for c in failed)
        metrics.items_deleted_total.labels(self._server_name, rule.name).inc(len(done))
        metrics.bytes_deleted_total.labels(self._server_name, rule.name).inc(
            sum(c.size_bytes for c in done)
        )
        metrics.item_failures_total.labels(self._server_name, rule.name).inc(len(failed))

    async def _delete_each(
        self,
        rule: Rule,
        ctx: SweepContext,
        sweep: StartedSweep,
        batch: Sequence[Candidate],
    ) -> tuple[DeleteOutcome, set[str]]:
        """One item at a time: the outcome, and the items a hold placed meanwhile kept.

        At most every ``STOP_CHECK_S``, stop if the sweep was cancelled or lost its
        lease, leaving the rest of the batch untried (skipped), and mark the batch again
        with the holds read afresh, leaving out what they now cover (R13: a hold placed
        meanwhile waits about that long). Before each item, stop once the lease may no
        longer be relied on (``lease.py``)."""
        outcomes: list[DeleteOutcome] = []
        checked = time.monotonic()
        held: set[str] = set()
        for position, item in enumerate(batch):
            stop = sweep.keeper.lost
            if not stop and time.monotonic() - checked >= STOP_CHECK_S:
                checked = time.monotonic()
                holds = await self._mark(sweep)
                stop = holds is None or await self._runs.cancel_requested(sweep.sweep_id)
                if holds is not None:
                    held.update(c.item_id for c in batch if holds.covers(c.user_id, c.room_id))
            if stop:
                untried = {c.item_id: SWEEP_STOPPED for c in batch[position:]}
                outcomes.append(DeleteOutcome(skipped=untried))
                break
            if item.item_id not in held:
                outcomes.append(await _delete(rule, ctx, [item]))
        return _merge(outcomes), held

    async def _clear_residue(self, report: SweepReport) -> bool:
        """After a real sweep that deleted events: what they left on the disk is cleared
        (SQLite) or measured (PostgreSQL) into ``report.disk_residue``; False when that
        failed."""
        deleted_events = any(
            r.deleted for name, r in report.results.items() if name in EVENT_TEXT_RULES
        )
        if self._residue is None or report.dry_run or not deleted_events:
            return True
        try:
            report.disk_residue = await self._residue.clear()
        except Exception as error:
            logger.exception(
                "lux_privacy: sweep %s could not clear the deleted text left on the disk",
                report.sweep_id,
            )
            report.disk_residue = {"error": type(error).__name__}
            return False
        return True

    async def _measure_residue(self, report: SweepReport) -> None:
        """After the sweep: the residue step's later figures, added to the stored record."""
        assert self._residue is not None and report.disk_residue is not None
        try:
            figures = await self._residue.measure()
            if figures is not None:
                report.disk_residue.update(figures)
                await self._runs.set_report(report.sweep_id, report.to_json())
        except Exception:
            logger.warning(
                "lux_privacy: could not measure what sweep %s left on the disk",
                report.sweep_id,
                exc_info=True,
            )

    async def _prune_records(self, sweep: StartedSweep) -> bool:
        """Accountability records past ``audit.retention`` go (they name users); False
        when they could not be pruned (the sweep is then not ``completed``)."""
        now = self._clock_ms()
        try:
            pruned = await self._records.prune(now - self._audit_retention_ms)
            await self._audit.record(sweep.sweep_id, "audit", now, pruned)
        except Exception:
            logger.exception(
                "lux_privacy: sweep %s could not prune the records past audit.retention",
                sweep.sweep_id,
            )
            return False
        return True

    async def _update_failure_gauge(self) -> None:
        try:
            stuck = await self._failures.count_failing_since(self._clock_ms() - DAY_MS)
        except Exception:
            logger.warning("lux_privacy: could not count failing items", exc_info=True)
            return
        metrics.items_failing_over_a_day.labels(self._server_name).set(stuck)


def pace_settings(
    batch_size: int, pace: float | None, adaptive: AdaptivePaceConfig
) -> dict[str, Any]:
    """The settings that pace a sweep, as ``GET /sweep/settings`` and the sweep's record
    give them (``sweep/cost_model.py`` reads them back)."""
    return {
        "sweep_batch_size": batch_size,
        "sweep_pace": pace,
        "sweep_adaptive_pace": {
            "enabled": adaptive.enabled,
            "max_slowdown": adaptive.max_slowdown,
            "min_pace": adaptive.min_pace,
            "rest": adaptive.rest,
        },
    }


async def _delete(rule: Rule, ctx: SweepContext, items: Sequence[Candidate]) -> DeleteOutcome:
    """``rule.delete`` as an outcome; an exception makes every item of the call failed."""
    try:
        result = await rule.delete(ctx, items)
    except Exception as error:
        logger.warning(
            "lux_privacy: rule %s could not delete %d item(s) (%s); retried at a later sweep",
            rule.name,
            len(items),
            type(error).__name__,
            exc_info=True,
        )
        return DeleteOutcome(failed={c.item_id: type(error).__name__ for c in items})
    return result if isinstance(result, DeleteOutcome) else DeleteOutcome(deleted=list(result))


async def _pass_completed(rule: Rule, ctx: SweepContext) -> None:
    """Tell a rule that wants to know (``pass_completed``) that a real pass ran to its end."""
    hook = getattr(rule, "pass_completed", None)
    if hook is None:
        return
    try:
        await hook(ctx)
    except Exception:
        # The rule only loses what it would have remembered: its next pass does more.
        logger.warning("lux_privacy: rule %s could not end its pass", rule.name, exc_info=True)


def _merge(outcomes: Sequence[DeleteOutcome]) -> DeleteOutcome:
    return DeleteOutcome(
        deleted=[c for o in outcomes for c in o.deleted],
        skipped={k: v for o in outcomes for k, v in o.skipped.items()},
        failed={k: v for o in outcomes for k, v in o.failed.items()},
    )


def _group(items: Iterable[Candidate]) -> dict[tuple[str | None, str | None], AuditGroup]:
    counts: dict[tuple[str | None, str | None], list[int]] = defaultdict(lambda: [0, 0, 0])
    for item in items:
        entry = counts[(item.user_id, item.room_id)]
        entry[0] += 1
        entry[1] += item.size_bytes
        entry[2] += item.provider_objects
    return {
        key: AuditGroup(user_id=key[0], room_id=key[1], count=c, bytes=b, provider_objects=o)
        for key, (c, b, o) in counts.items()
    }


def _count_rooms(result: RuleResult, eligible: Sequence[Candidate]) -> None:
    """The rooms a batch's deletion touches, for the cost model (``cost_model.py``): one
    purge per room of the messages rule, the rooms an account is parted from (R12)."""
    result.rooms += len({c.room_id for c in eligible if c.room_id is not None})
    result.rooms += sum(c.rooms for c in eligible)
