"""Reconciliation (R4): recompute usage from Synapse's tables and correct any drift.

Catches what the incremental accounting cannot see: deletions by Synapse itself or
its admin API, thumbnails made later, events stored below the watermark, and
everything that existed before the module was installed. In pages, each its own
transaction:

1. every ledger row is checked against Synapse (gone: dropped; size changed: resized);
2. every counted event up to the watermark, and every counted upload, that the
   ledgers lack is added;
3. each user's counters are compared with the sums of the ledgers and set right.

Every step is "make this row match Synapse now", so reconciliation needs no lock
and may run while users upload and the sweep evicts. It runs at most once a day in
the background (started by the sweep's quota rule and the eviction loop) and on
demand through the admin API.
"""

import logging
from collections.abc import Callable
from typing import Any

import attrs
from synapse.module_api import ModuleApi

from synapse_lux_privacy.db import Cursor, DbRunner
from synapse_lux_privacy.features.quota import ledger
from synapse_lux_privacy.features.quota.accounting import EVENTS_WATERMARK
from synapse_lux_privacy.features.quota.ledger import Changes
from synapse_lux_privacy.features.quota.policy import EVENTS, MEDIA
from synapse_lux_privacy.features.quota.usage_store import (
    Usage,
    UsageStore,
    counters_txn,
    set_state_txn,
    state_txn,
    totals_txn,
)
from synapse_lux_privacy.synapse_adapter import quota as synapse_quota
from synapse_lux_privacy.units import DAY_MS

logger = logging.getLogger(__name__)

RECONCILED = "reconciled_ts"
# Set by a reconciliation that added every counted event up to the events watermark.
LEDGER_COMPLETE = "events_ledger_complete"
RECONCILE_EVERY_MS = DAY_MS
PAGE = 1000
STREAM_CHUNK = 10_000
MAX_LISTED = 100


@attrs.frozen
class ReconcileReport:
    """What reconciliation corrected: drift per user, and items added/removed/resized."""

    users_checked: int
    users_corrected: int
    bytes_corrected: int  # sum of the absolute corrections
    items_added: int
    items_removed: int
    items_resized: int
    corrections: list[dict[str, Any]]  # the first MAX_LISTED users corrected

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


class Reconciler:
    def __init__(
        self, api: ModuleApi, db: DbRunner, store: UsageStore, clock_ms: Callable[[], int]
    ) -> None:
        self._api = api
        self._db = db
        self._store = store
        self._clock_ms = clock_ms
        self._running = False

    async def maybe_run_in_background(self) -> None:
        """Start a reconciliation in the background if the last began a day ago or more."""
        if self._running or not await self._store.claim(
            RECONCILED, self._clock_ms(), RECONCILE_EVERY_MS
        ):
            return
        self._api.run_as_background_process("lux_privacy_quota_reconcile", self._logged_run)

    async def _logged_run(self) -> None:
        report = await self.run()
        logger.info("lux_privacy: quota reconciliation: %s", report.to_json())

    async def run(self) -> ReconcileReport:
        self._running = True
        try:
            changes = Changes()
            for kind in (MEDIA, EVENTS):
                await self._recheck_ledger(kind, changes)
            await self._add_missing_events(changes)
            await self._add_missing_media(changes)
            fixes, users_checked = await self._db(
                "lux_privacy_quota_fix_counters", _fix_counters_txn
            )
            return _report(changes, fixes, users_checked)
        finally:
            self._running = False

    async def _recheck_ledger(self, kind: str, changes: Changes) -> None:
        recheck = (
            synapse_quota.recheck_media_txn if kind == MEDIA else synapse_quota.recheck_events_txn
        )

        def txn(cur: Cursor, after: str) -> tuple[Changes, str | None]:
            page_changes = Changes()
            ids = ledger.ledger_page_txn(cur, kind, after, PAGE)
            ledger.apply_rechecks_txn(cur, kind, recheck(cur, ids), page_changes)
            ledger.apply_counters_txn(cur, page_changes)
            return page_changes, (ids[-1] if len(ids) == PAGE else None)

        after: str | None = ""
        while after is not None:
            page_changes, after = await self._db("lux_privacy_quota_recheck", txn, after)
            changes.merge(page_changes)

    async def _add_missing_events(self, changes: Changes) -> None:
        def txn(cur: Cursor, low: int) -> tuple[Changes, int | None]:
            page_changes = Changes()
            watermark = state_txn(cur, EVENTS_WATERMARK)
            upto = watermark or 0
            high = min(low + STREAM_CHUNK, upto)
            rows = synapse_quota.events_sent_txn(
                cur, self._api.server_name, low, high, STREAM_CHUNK, missing_only=True
            )
            mine = [r for r in rows if self._api.is_mine(r.user_id)]
            ledger.add_events_txn(cur, mine, page_changes)
            ledger.apply_counters_txn(cur, page_changes)
            if high >= upto and watermark is not None:
                # Every counted event up to the watermark is in the ledger now; the
                # accounting adds those above it (R14: the report reads the ledger).
                set_state_txn(cur, LEDGER_COMPLETE, upto)
            return page_changes, (high if high < upto else None)

        low: int | None = (
            await self._db("lux_privacy_quota_min_stream", synapse_quota.min_stream_txn) - 1
        )
        while low is not None:
            page_changes, low = await self._db("lux_privacy_quota_missing_events", txn, low)
            changes.merge(page_changes)

    async def _add_missing_media(self, changes: Changes) -> None:
        def txn(cur: Cursor, after: str) -> tuple[Changes, str | None]:
            page_changes = Changes()
            rows = synapse_quota.missing_media_txn(cur, after, PAGE)
            ledger.add_media_txn(
                cur, [r for r in rows if self._api.is_mine(r.user_id)], page_changes
            )
            ledger.apply_counters_txn(cur, page_changes)
            return page_changes, (rows[-1].media_id if len(rows) == PAGE else None)

        after: str | None = ""
        while after is not None:
            page_changes, after = await self._db("lux_privacy_quota_missing_media", txn, after)
            changes.merge(page_changes)


def _fix_counters_txn(cur: Cursor) -> tuple[Changes, int]:
    """Set every user's counters to the sums of the ledgers (they should already agree).

    Returns the corrections made and how many users were checked.
    """
    fixes = Changes()
    totals, counters = totals_txn(cur), counters_txn(cur)
    users = sorted(set(totals) | set(counters))
    for user in users:
        want, have = totals.get(user, Usage()), counters.get(user, Usage())
        if user not in totals:
            cur.execute("DELETE FROM lux_privacy_quota_usage WHERE user_id = ?", (user,))
        elif want != have:
            cur.execute(
                "INSERT INTO lux_privacy_quota_usage (user_id, media_bytes, event_bytes)"
                " VALUES (?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET"
                " media_bytes = excluded.media_bytes, event_bytes = excluded.event_bytes",
                (user, want.media_bytes, want.event_bytes),
            )
        fixes.media[user] += want.media_bytes - have.media_bytes
        fixes.events[user] += want.event_bytes - have.event_bytes
    return fixes, len(users)


def _report(changes: Changes, counter_fixes: Changes, users_checked: int) -> ReconcileReport:
    drift: dict[str, list[int]] = {}
    for source in (changes, counter_fixes):
        for index, per_user in enumerate((source.media, source.events)):
            for user, delta in per_user.items():
                if delta:
                    drift.setdefault(user, [0, 0])[index] += delta
    corrected = {user: d for user, d in sorted(drift.items()) if any(d)}
    return ReconcileReport(
        users_checked=users_checked,
        users_corrected=len(corrected),
        bytes_corrected=sum(abs(m) + abs(e) for m, e in corrected.values()),
        items_added=changes.added,
        items_removed=changes.removed,
        items_resized=changes.resized,
        corrections=[
            {"user_id": user, "media_bytes": m, "event_bytes": e}
            for user, (m, e) in list(corrected.items())[:MAX_LISTED]
        ],
    )
