"""Keeping usage up to date without scanning Synapse's tables (R4, R6).

- Events: a watermark over ``events.stream_ordering`` (Synapse's unique index), never
  past the position up to which every event is persisted: each pass adds the
  non-state events local users sent since the last one. On first start the watermark
  begins at the current position; the history below it is added by the first
  reconciliation, in the background.
- Uploads: Synapse has no index on upload time, so the upload callback marks the
  uploader (``upload_path.DirtyMarks``, written within a second by every process);
  a pass re-reads each marked user's uploads (Synapse's
  ``users_have_local_media`` index). A mark stays for ``DIRTY_GRACE_MS`` so that an
  upload still being written when the pass runs is seen by a later one.
- Deletions: the module's own deletions are in its audit trail; the sweep's pass
  re-reads every user an audit row names since the last pass (their ledger rows,
  by primary key). A deactivation marks the user too (the module deletes avatars).
- Anything else (Synapse's own purges, admin deletions): reconciliation (``reconcile.py``).
"""

from collections.abc import Callable, Mapping

from synapse.module_api import ModuleApi

from synapse_lux_privacy.db import Cursor, DbRunner
from synapse_lux_privacy.features.quota import ledger
from synapse_lux_privacy.features.quota.ledger import Changes
from synapse_lux_privacy.features.quota.policy import EVENTS, MEDIA
from synapse_lux_privacy.features.quota.upload_path import DirtyMarks
from synapse_lux_privacy.features.quota.usage_store import UsageStore, set_state_txn, state_txn
from synapse_lux_privacy.synapse_adapter import quota as synapse_quota

EVENTS_WATERMARK = "events_stream"
AUDIT_WATERMARK = "audit_id"
DIRTY_GRACE_MS = 5 * 60 * 1000
# Events added per transaction, and at most this many transactions per pass (the next
# pass goes on): a pass keeps up with 100,000 events per eviction interval.
EVENTS_PER_TXN = 1000
TXNS_PER_PASS = 100


class Accounting:
    def __init__(
        self,
        api: ModuleApi,
        db: DbRunner,
        store: UsageStore,
        marks: DirtyMarks,
        clock_ms: Callable[[], int],
    ) -> None:
        self._api = api
        self._db = db
        self._store = store
        self._marks = marks
        self._clock_ms = clock_ms

    async def catch_up(self, with_audit: bool) -> None:
        """Add new events, re-read marked users and (``with_audit``) users the audit names.

        ``with_audit`` only under the sweep lock: then no other rule is half-way
        through a deletion that the audit trail already names.
        """
        await self.add_new_events()
        await self._marks.flush()  # this process's marks; other processes flush every second
        await self._resync_dirty()
        if with_audit:
            await self._resync_audited()

    async def add_new_events(self) -> int:
        """Add the events sent since the watermark; how many were read."""
        upto = synapse_quota.persisted_stream_position(self._api)
        total = 0
        for _ in range(TXNS_PER_PASS):
            read = await self._db("lux_privacy_quota_add_events", self._add_events_txn, upto)
            total += read
            if read < EVENTS_PER_TXN:
                break
        return total

    def _add_events_txn(self, cur: Cursor, upto: int) -> int:
        after = state_txn(cur, EVENTS_WATERMARK)
        if after is None:
            # First start: the history below is the first reconciliation's work.
            set_state_txn(cur, EVENTS_WATERMARK, upto)
            return 0
        if after >= upto:
            return 0
        rows = synapse_quota.events_sent_txn(
            cur, self._api.server_name, after, upto, EVENTS_PER_TXN
        )
        changes = Changes()
        ledger.add_events_txn(cur, [r for r in rows if self._api.is_mine(r.user_id)], changes)
        ledger.apply_counters_txn(cur, changes)
        reached = rows[-1].stream if len(rows) == EVENTS_PER_TXN else upto
        set_state_txn(cur, EVENTS_WATERMARK, reached)
        return len(rows)

    async def resync_users(self, users: Mapping[str, bool]) -> Changes:
        """Make the ledgers match Synapse for these users: uploads, and events if True."""
        changes = Changes()
        for user_id, with_events in sorted(users.items()):
            if self._api.is_mine(user_id):
                changes.merge(
                    await self._db(
                        "lux_privacy_quota_resync_user", _resync_user_txn, user_id, with_events
                    )
                )
        return changes

    async def settle(
        self, media_ids: list[str], event_ids: list[str], expunged_ids: list[str]
    ) -> Changes:
        """After an eviction: re-read these items; expunged events free nothing more."""

        def txn(cur: Cursor) -> Changes:
            changes = Changes()
            rechecks = synapse_quota.recheck_media_txn(cur, media_ids)
            ledger.apply_rechecks_txn(cur, MEDIA, rechecks, changes)
            rechecks = synapse_quota.recheck_events_txn(cur, event_ids)
            ledger.apply_rechecks_txn(cur, EVENTS, rechecks, changes)
            ledger.mark_expunged_txn(cur, expunged_ids)
            ledger.apply_counters_txn(cur, changes)
            return changes

        return await self._db("lux_privacy_quota_settle", txn)

    async def _resync_dirty(self) -> None:
        dirty = await self._store.dirty_users()
        if not dirty:
            return
        started = self._clock_ms()
        await self.resync_users(dirty)
        await self._store.clear_dirty(list(dirty), started - DIRTY_GRACE_MS)

    async def _resync_audited(self) -> None:
        users, last_id = await self._db("lux_privacy_quota_audited", _audited_users_txn)
        if users:
            await self.resync_users({user: True for user in users})
        if last_id is not None:
            await self._db(
                "lux_privacy_quota_audit_watermark", set_state_txn, AUDIT_WATERMARK, last_id
            )


def _resync_user_txn(cur: Cursor, user_id: str, with_events: bool) -> Changes:
    changes = Changes()
    stored = synapse_quota.user_media_txn(cur, user_id)
    ledger.add_media_txn(cur, stored, changes)
    known = set(ledger.ledger_ids_txn(cur, MEDIA, user_id)) - {m.media_id for m in stored}
    ledger.apply_rechecks_txn(
        cur, MEDIA, synapse_quota.recheck_media_txn(cur, sorted(known)), changes
    )
    if with_events:
        event_ids = ledger.ledger_ids_txn(cur, EVENTS, user_id)
        ledger.apply_rechecks_txn(
            cur, EVENTS, synapse_quota.recheck_events_txn(cur, event_ids), changes
        )
    ledger.apply_counters_txn(cur, changes)
    return changes


def _audited_users_txn(cur: Cursor) -> tuple[set[str], int | None]:
    """Users named by audit rows of other rules after the watermark, and the last row ID."""
    after = state_txn(cur, AUDIT_WATERMARK) or 0
    cur.execute(
        "SELECT id, user_id FROM lux_privacy_audit WHERE id > ? AND rule <> 'quota' ORDER BY id",
        (after,),
    )
    rows = cur.fetchall()
    if not rows:
        return set(), None
    return {str(r[1]) for r in rows if r[1] is not None}, int(rows[-1][0])
