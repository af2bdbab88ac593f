"""What the upload path keeps in memory, so that an upload costs no database work (R4).

- ``QuotaCache``: each user's quota, read from the database at most every
  ``CACHE_MS``; the admin API forgets a user's entry when it changes their quota on
  this process (other processes see the change within ``CACHE_MS``).
- ``DirtyMarks``: the users who uploaded (or were deactivated) since the last flush,
  written to the database in one transaction every ``FLUSH_MS`` by every process.
  The eviction loop then re-reads those users' uploads.
"""

from collections.abc import Callable

from synapse_lux_privacy.features.quota.usage_store import UsageStore

CACHE_MS = 10_000
FLUSH_MS = 1_000
_MAX_ENTRIES = 100_000


class QuotaCache:
    def __init__(
        self, store: UsageStore, default_bytes: int | None, clock_ms: Callable[[], int]
    ) -> None:
        self._store = store
        self._default = default_bytes
        self._clock_ms = clock_ms
        self._entries: dict[str, tuple[int | None, int]] = {}  # user -> (quota, read at)

    async def quota(self, user_id: str) -> int | None:
        now = self._clock_ms()
        entry = self._entries.get(user_id)
        if entry is not None and entry[1] > now - CACHE_MS:
            return entry[0]
        if len(self._entries) >= _MAX_ENTRIES:
            self._entries.clear()
        quota = await self._store.quota(user_id, self._default)
        self._entries[user_id] = (quota, now)
        return quota

    def forget(self, user_id: str) -> None:
        self._entries.pop(user_id, None)


class DirtyMarks:
    def __init__(self, store: UsageStore, clock_ms: Callable[[], int]) -> None:
        self._store = store
        self._clock_ms = clock_ms
        self._pending: dict[str, bool] = {}  # user -> re-read sent events too

    def mark(self, user_id: str, full_resync: bool) -> None:
        self._pending[user_id] = self._pending.get(user_id, False) or full_resync

    async def flush(self) -> None:
        """Write the marks; on failure they stay for the next flush."""
        if not self._pending:
            return
        marks, self._pending = self._pending, {}
        try:
            await self._store.mark_dirty(marks, self._clock_ms())
        except Exception:
            for user_id, full in marks.items():
                self.mark(user_id, full)
            raise
