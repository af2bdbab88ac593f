"""The e-mail warnings sent before an R12 deletion: the module's ``lux_privacy_account_warnings``.

A warning is claimed (row written) before it is sent, in one statement, so that two
passes (two workers, or a pass and an admin request) never both send it; a send that
fails releases the claim for the next pass.
"""

from collections.abc import Sequence

import attrs

from synapse_lux_privacy.db import Cursor, DbRunner

# Writes the claim unless this lead time's warning was already sent after the
# account's last activity (then the statement changes no row).
_CLAIM = (
    "INSERT INTO lux_privacy_account_warnings"
    " (user_id, lead_ms, sent_ts, deletion_due_ts, addresses) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (user_id, lead_ms) DO UPDATE SET sent_ts = excluded.sent_ts,"
    " deletion_due_ts = excluded.deletion_due_ts, addresses = excluded.addresses"
    " WHERE lux_privacy_account_warnings.sent_ts < ?"
)


@attrs.frozen
class SentWarning:
    lead_ms: int
    sent_ts: int
    deletion_due_ts: int
    addresses: int


class WarningStore:
    def __init__(self, run: DbRunner) -> None:
        self._run = run

    async def was_sent(self, user_id: str, lead_ms: int, last_active_ts: int) -> bool:
        """Whether this lead time's warning went out after the last activity."""

        def txn(cur: Cursor) -> bool:
            cur.execute(
                "SELECT 1 FROM lux_privacy_account_warnings WHERE user_id = ? AND lead_ms = ?"
                " AND sent_ts >= ?",
                (user_id, lead_ms, last_active_ts),
            )
            return cur.fetchone() is not None

        return await self._run("lux_privacy_warning_sent", txn)

    async def claim(
        self, user_id: str, lead_ms: int, last_active_ts: int, now_ms: int, due_ts: int, n: int
    ) -> bool:
        """Record the warning as sent now; False if it already was (after the activity)."""

        def txn(cur: Cursor) -> bool:
            cur.execute(_CLAIM, (user_id, lead_ms, now_ms, due_ts, n, last_active_ts))
            return cur.rowcount == 1

        return await self._run("lux_privacy_warning_claim", txn)

    async def release(self, user_id: str, lead_ms: int, now_ms: int) -> None:
        """Forget a claim whose sending failed, so that the next pass tries again."""

        def txn(cur: Cursor) -> None:
            cur.execute(
                "DELETE FROM lux_privacy_account_warnings WHERE user_id = ? AND lead_ms = ?"
                " AND sent_ts = ?",
                (user_id, lead_ms, now_ms),
            )

        await self._run("lux_privacy_warning_release", txn)

    async def sent(self, user_id: str) -> Sequence[SentWarning]:
        """The warnings recorded for a user (R14 report), longest lead time first."""

        def txn(cur: Cursor) -> list[SentWarning]:
            cur.execute(
                "SELECT lead_ms, sent_ts, deletion_due_ts, addresses"
                " FROM lux_privacy_account_warnings WHERE user_id = ? ORDER BY lead_ms DESC",
                (user_id,),
            )
            return [SentWarning(*(int(v) for v in row)) for row in cur.fetchall()]

        return await self._run("lux_privacy_warnings_of_user", txn)
