"""In-memory activity tracking on every authenticated request (R11, R12).

Synapse calls the account-validity callback ``is_user_expired`` on each
authenticated client request, so this is a hot path: the tracker only touches a
dict. A user's activity is written at most once per ``WRITE_WINDOW_MS`` per
process, by ``flush`` (a looping call on every instance, and once more at
shutdown, best effort). The callback always returns None, so Synapse's own
expiry decision is unchanged.
"""

from collections.abc import Callable, Mapping
from typing import Protocol

# How often pending activity is written, on every Synapse process.
FLUSH_INTERVAL_MS = 60 * 1000
# A user's activity is written at most once per this window (per process): the
# record may lag real activity by this much plus one flush interval, which is
# nothing next to months-long limits.
WRITE_WINDOW_MS = 5 * 60 * 1000


class ActivityWriter(Protocol):
    async def record_users(self, activity: Mapping[str, int]) -> None: ...


class ActivityTracker:
    """Notes activity in memory and writes it in batches."""

    def __init__(
        self,
        writer: ActivityWriter,
        clock_ms: Callable[[], int],
        is_own_request: Callable[[str], bool],
        window_ms: int = WRITE_WINDOW_MS,
    ) -> None:
        self._writer = writer
        self._clock_ms = clock_ms
        self._is_own_request = is_own_request
        self._window_ms = window_ms
        self._pending: dict[str, int] = {}
        self._written: dict[str, int] = {}

    async def is_user_expired(self, user_id: str) -> bool | None:
        """Synapse's ``is_user_expired`` callback: note the request, never decide expiry.

        Synapse also calls it outside requests (the pusher pool, before pushing a
        notification to a user); only a request made by the user themself counts.
        """
        if self._is_own_request(user_id):
            self.note(user_id)
        return None

    def note(self, user_id: str) -> None:
        """Remember that the user is active now, unless written within the window."""
        now = self._clock_ms()
        written = self._written.get(user_id)
        if written is None or now - written >= self._window_ms:
            self.record(user_id, now)

    def record(self, user_id: str, ts: int) -> None:
        """Queue this activity for the next flush, whatever the window."""
        self._pending[user_id] = max(ts, self._pending.get(user_id, ts))

    def pending_ts(self, user_id: str) -> int | None:
        """Activity noted here and not written yet."""
        return self._pending.get(user_id)

    async def flush(self) -> None:
        """Write the pending activity in one transaction; on failure keep it for the next."""
        batch, self._pending = self._pending, {}
        if batch:
            try:
                await self._writer.record_users(batch)
            except Exception:
                for user_id, ts in batch.items():
                    self.record(user_id, ts)
                raise
            self._written.update(batch)
        horizon = self._clock_ms() - self._window_ms
        self._written = {u: ts for u, ts in self._written.items() if ts > horizon}
