"""Runs the rules in their fixed order, in batches, under the database lock.

Guarantees, whatever the rules do:
- dry run: nothing is deleted, the counts are exact;
- legal hold (R13): every candidate is checked against the holds read just
  before its batch is deleted, and a held one is never passed to ``delete``;
- at most one sweep at a time on the whole deployment (lease in the database);
- one audit row per batch and (user, room), written before the deletion and
  completed after it, so an interrupted batch leaves a trace;
- a rule that fails stops for this sweep and is counted; the others still run.
"""

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence

from synapse_lux_privacy import metrics
from synapse_lux_privacy.store.audit import AuditGroup, AuditStore
from synapse_lux_privacy.store.holds import HoldStore
from synapse_lux_privacy.store.sweep_lock import SWEEP_LOCK, SweepLockStore
from synapse_lux_privacy.store.sweeps import SweepRunStore
from synapse_lux_privacy.sweep.report import RuleResult, SweepReport
from synapse_lux_privacy.sweep.rule import RULE_NAMES, Candidate, Rule, SweepContext

logger = logging.getLogger(__name__)

# How long the sweep lock lasts without renewal. The orchestrator renews it
# after every batch, so a batch may take up to this long.
LOCK_LEASE_MS = 10 * 60 * 1000

# Identifies this process in lock holders ("instance/token/sweep"), shared by
# every orchestrator of the process. A lease held under this instance's name
# with another token belongs to a predecessor that was killed (instance names
# are unique in a deployment, and a restarted container may reuse its pid), so
# it is taken over at once instead of blocking sweeps until it runs out.
PROCESS_TOKEN = uuid.uuid4().hex[:12]


class SweepAlreadyRunning(Exception):
    """Another sweep holds the lock (on this process or another worker)."""


class SweepLockLost(Exception):
    """The lease expired during the sweep and another sweep took it over."""


class SweepOrchestrator:
    """Runs sweeps. One instance per Synapse process."""

    def __init__(
        self,
        rules: Mapping[str, Rule],
        holds: HoldStore,
        audit: AuditStore,
        lock: SweepLockStore,
        runs: SweepRunStore,
        clock_ms: Callable[[], int],
        instance_name: str,
        server_name: str,
        batch_size: int,
    ) -> None:
        unknown = set(rules) - set(RULE_NAMES)
        if unknown:
            raise ValueError(f"unknown rule names: {sorted(unknown)}")
        self._rules = rules
        self._holds = holds
        self._audit = audit
        self._lock = lock
        self._runs = runs
        self._clock_ms = clock_ms
        self._instance = instance_name
        self._server_name = server_name
        self._batch_size = batch_size

    async def run(
        self, as_of_ms: int | None, dry_run: bool, rule_names: Iterable[str] | None = None
    ) -> SweepReport:
        """Run one sweep; raise SweepAlreadyRunning if another one holds the lock."""
        selected = (
            RULE_NAMES
            if rule_names is None
            else tuple(name for name in RULE_NAMES if name in set(rule_names))
        )
        sweep_id = uuid.uuid4().hex
        holder = f"{self._instance}/{PROCESS_TOKEN}/{sweep_id}"
        started = self._clock_ms()
        if not await self._lock.try_acquire(
            SWEEP_LOCK, holder, started, LOCK_LEASE_MS, reclaim_prefix=f"{self._instance}/"
        ):
            raise SweepAlreadyRunning()
        report = SweepReport(
            sweep_id=sweep_id,
            as_of=started if as_of_ms is None else as_of_ms,
            dry_run=dry_run,
            started_ts=started,
        )
        ctx = SweepContext(as_of_ms=report.as_of, dry_run=dry_run, batch_size=self._batch_size)
        wall_start = time.monotonic()
        status = "aborted"
        try:
            interrupted = await self._runs.start(
                sweep_id, self._instance, started, report.as_of, dry_run
            )
            if interrupted:
                logger.warning(
                    "lux_privacy: %d earlier sweep(s) were interrupted; this sweep continues"
                    " their work",
                    interrupted,
                )
            for name in selected:
                rule = self._rules.get(name)
                if rule is None:
                    report.results[name] = RuleResult(enforced=False)
                    continue
                report.results[name] = await self._run_rule(rule, ctx, sweep_id, holder)
            status = "completed" if report.errors == 0 else "completed_with_errors"
        finally:
            report.finished_ts = self._clock_ms()
            await self._runs.finish(sweep_id, report.finished_ts, status, report.to_json())
            await self._lock.release(SWEEP_LOCK, holder)
            metrics.sweep_duration_seconds.labels(self._server_name, str(dry_run).lower()).observe(
                time.monotonic() - wall_start
            )
        # Only a full sweep (every rule) counts as "the last successful sweep": a
        # filtered one, such as the quota eviction loop, leaves the other rules unrun.
        if status == "completed" and not dry_run and rule_names is None:
            metrics.last_successful_sweep_timestamp_seconds.labels(self._server_name).set(
                report.finished_ts / 1000
            )
        logger.info("lux_privacy: sweep %s %s: %s", sweep_id, status, report.to_json()["results"])
        return report

    async def _run_rule(
        self, rule: Rule, ctx: SweepContext, sweep_id: str, holder: str
    ) -> RuleResult:
        result = RuleResult()
        cursor: str | None = None
        try:
            while True:
                holds = await self._holds.active_holds()
                page = await rule.find_candidates(ctx, holds, cursor)
                result.candidates += len(page.items)
                eligible = [c for c in page.items if not holds.covers(c.user_id, c.room_id)]
                result.held += len(page.items) - len(eligible)
                if eligible and not ctx.dry_run:
                    deleted = await self._delete_batch(rule, ctx, sweep_id, eligible)
                    result.deleted += len(deleted)
                    result.bytes += sum(c.size_bytes for c in deleted)
                elif ctx.dry_run:
                    result.bytes += sum(c.size_bytes for c in eligible)
                if not await self._lock.renew(SWEEP_LOCK, holder, self._clock_ms(), LOCK_LEASE_MS):
                    raise SweepLockLost()
                if page.next_cursor is None:
                    return result
                cursor = page.next_cursor
        except SweepLockLost:
            raise
        except Exception:
            logger.exception("lux_privacy: rule %s failed in sweep %s", rule.name, sweep_id)
            metrics.rule_errors_total.labels(self._server_name, rule.name).inc()
            result.errors += 1
            return result

    async def _delete_batch(
        self, rule: Rule, ctx: SweepContext, sweep_id: str, batch: Sequence[Candidate]
    ) -> Sequence[Candidate]:
        """Delete one batch with its audit rows written around it."""
        planned = _group(batch)
        keys = list(planned)
        row_ids = await self._audit.start_batch(
            sweep_id, rule.name, self._clock_ms(), [planned[k] for k in keys]
        )
        try:
            deleted = await rule.delete(ctx, batch)
        except Exception:
            await self._audit.finish_batch(row_ids, [None] * len(keys), "failed", self._clock_ms())
            raise
        done = _group(deleted)
        await self._audit.finish_batch(
            row_ids, [done.get(k) for k in keys], "done", self._clock_ms()
        )
        metrics.items_deleted_total.labels(self._server_name, rule.name).inc(len(deleted))
        metrics.bytes_deleted_total.labels(self._server_name, rule.name).inc(
            sum(c.size_bytes for c in deleted)
        )
        return deleted


def _group(items: Iterable[Candidate]) -> dict[tuple[str | None, str | None], AuditGroup]:
    counts: dict[tuple[str | None, str | None], list[int]] = defaultdict(lambda: [0, 0])
    for item in items:
        entry = counts[(item.user_id, item.room_id)]
        entry[0] += 1
        entry[1] += item.size_bytes
    return {
        key: AuditGroup(user_id=key[0], room_id=key[1], count=c, bytes=b)
        for key, (c, b) in counts.items()
    }
