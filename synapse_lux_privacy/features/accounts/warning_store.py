"""The e-mail warnings sent before an R12 deletion: the module's ``lux_privacy_account_warnings``.

A warning is claimed (row written, ``delivered`` false) before it is sent, in one
statement, so that two passes (two workers, or a pass and an admin request) never both
send it; it is marked ``delivered`` once sent. A send that fails releases the claim for
the next pass; a claim never delivered (the process died while sending) is taken over
by a pass once it is ``CLAIM_STALE_MS`` old. Warnings are thus sent at least once, and
the R14 report lists only delivered ones.
"""

from collections.abc import Sequence

import attrs

from synapse_lux_privacy.db import Cursor, DbRunner

# A claim not delivered after this long belongs to a pass that died while sending: far
# longer than sending one warning takes (Synapse's mailer gives up on a server after
# a few minutes), far shorter than the days between lead times.
CLAIM_STALE_MS = 60 * 60 * 1000

# Writes the claim unless this lead time's warning was already delivered after the
# account's last activity, or another pass's recent claim is being sent (then the
# statement changes no row).
_CLAIM = (
    "INSERT INTO lux_privacy_account_warnings"
    " (user_id, lead_ms, sent_ts, deletion_due_ts, addresses, delivered)"
    " VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (user_id, lead_ms) DO UPDATE SET sent_ts = excluded.sent_ts,"
    " deletion_due_ts = excluded.deletion_due_ts, addresses = excluded.addresses,"
    " delivered = excluded.delivered"
    " WHERE (lux_privacy_account_warnings.delivered AND lux_privacy_account_warnings.sent_ts < ?)"
    " OR (NOT lux_privacy_account_warnings.delivered"
    " AND lux_privacy_account_warnings.sent_ts < ?)"
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
                " AND sent_ts >= ? AND delivered = ?",
                (user_id, lead_ms, last_active_ts, True),
            )
            return cur.fetchone() is not None

        return await self._run("lux_privacy_warning_sent", txn)

    async def claim(
        self, user_id: str, lead_ms: int, last_active_ts: int, now_ms: int, due_ts: int, n: int
    ) -> bool:
        """Claim the warning for sending now; False if it was already delivered (after the
        activity) or another pass is sending it."""

        def txn(cur: Cursor) -> bool:
            cur.execute(
                _CLAIM,
                (
                    user_id,
                    lead_ms,
                    now_ms,
                    due_ts,
                    n,
                    False,
                    last_active_ts,
                    now_ms - CLAIM_STALE_MS,
                ),
            )
            return cur.rowcount == 1

        return await self._run("lux_privacy_warning_claim", txn)

    async def delivered(self, user_id: str, lead_ms: int, claimed_ms: int) -> None:
        """The warning claimed at ``claimed_ms`` went out: it is recorded as sent."""

        def txn(cur: Cursor) -> None:
            cur.execute(
                "UPDATE lux_privacy_account_warnings SET delivered = ?"
                " WHERE user_id = ? AND lead_ms = ? AND sent_ts = ?",
                (True, user_id, lead_ms, claimed_ms),
            )

        await self._run("lux_privacy_warning_delivered", txn)

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
        """The warnings delivered to a user (R14 report), longest lead time first."""

        def txn(cur: Cursor) -> list[SentWarning]:
            cur.execute(
                "SELECT lead_ms, sent_ts, deletion_due_ts, addresses"
                " FROM lux_privacy_account_warnings WHERE user_id = ? AND delivered = ?"
                " ORDER BY lead_ms DESC",
                (user_id, True),
            )
            return [SentWarning(*(int(v) for v in row)) for row in cur.fetchall()]

        return await self._run("lux_privacy_warnings_of_user", txn)
