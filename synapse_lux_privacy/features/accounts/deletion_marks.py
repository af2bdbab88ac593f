"""Account deletions started and not finished (R12, R7): ``lux_privacy_account_deletions``.

The accounts rule marks a user before deactivating them and clears the mark once
their media is deleted too. A process killed in between leaves the mark, and the
next sweep selects the user again (``synapse_adapter.accounts.find_idle_accounts``)
to finish the deletion.
"""

from synapse_lux_privacy.db import Cursor, DbRunner


class DeletionMarks:
    """Reads and writes of ``lux_privacy_account_deletions`` only."""

    def __init__(self, run: DbRunner) -> None:
        self._run = run

    async def start(self, user_id: str, now_ms: int) -> None:
        """Record that the deletion of ``user_id`` begins (kept if already recorded)."""

        def txn(cur: Cursor) -> None:
            cur.execute(
                "INSERT INTO lux_privacy_account_deletions (user_id, started_ts) VALUES (?, ?)"
                " ON CONFLICT (user_id) DO NOTHING",
                (user_id, now_ms),
            )

        await self._run("lux_privacy_account_deletion_started", txn)

    async def finish(self, user_id: str) -> None:
        """The deletion of ``user_id`` is complete."""

        def txn(cur: Cursor) -> None:
            cur.execute("DELETE FROM lux_privacy_account_deletions WHERE user_id = ?", (user_id,))

        await self._run("lux_privacy_account_deletion_finished", txn)
