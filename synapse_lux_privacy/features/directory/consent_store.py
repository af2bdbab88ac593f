"""Directory consent per user (R10): ``lux_privacy_directory_consent``.

Every consent change and the national directory change it causes are written in one
transaction, so a crash can never leave one without the other. The consent row is
written first: on PostgreSQL (repeatable read) two transactions changing the same
user's consent or outbox then conflict and Synapse retries one of them, so a display
name update never slips in after a withdrawal.
"""

from synapse_lux_privacy.db import Cursor, DbRunner
from synapse_lux_privacy.features.directory import outbox_store
from synapse_lux_privacy.features.directory.policy import (
    NO_CONSENT,
    Consent,
    next_consent,
    sync_action,
)


def _read(cur: Cursor, user_id: str) -> Consent:
    cur.execute(
        "SELECT consent, updated_ts FROM lux_privacy_directory_consent WHERE user_id = ?",
        (user_id,),
    )
    row = cur.fetchone()
    return NO_CONSENT if row is None else Consent(bool(row[0]), int(row[1]))


class ConsentStore:
    """Reads and writes consent; queues national changes when ``national`` is on."""

    def __init__(self, run: DbRunner, national: bool) -> None:
        self._run = run
        self._national = national

    async def get(self, user_id: str) -> Consent:
        return await self._run("lux_privacy_directory_consent_get", _read, user_id)

    async def set(
        self, user_id: str, requested: bool, now_ms: int, display_name: str | None
    ) -> tuple[Consent, bool]:
        """Record a consent request; return the consent and whether a change was queued."""

        def txn(cur: Cursor) -> tuple[Consent, bool]:
            previous = _read(cur, user_id)
            consent = next_consent(previous, requested, now_ms)
            cur.execute(
                "INSERT INTO lux_privacy_directory_consent (user_id, consent, updated_ts)"
                " VALUES (?, ?, ?) ON CONFLICT (user_id) DO UPDATE"
                " SET consent = excluded.consent, updated_ts = excluded.updated_ts",
                (user_id, consent.consent, consent.updated_ts),
            )
            if not self._national:
                return consent, False
            action = sync_action(previous, requested, outbox_store.has_pending_txn(cur, user_id))
            if action is None:
                return consent, False
            return consent, outbox_store.enqueue_txn(cur, user_id, action, display_name, now_ms)

        return await self._run("lux_privacy_directory_consent_set", txn)

    async def queue_update(self, user_id: str, display_name: str | None, now_ms: int) -> bool:
        """Queue a display name update if the user consents (R10); return whether queued."""

        def txn(cur: Cursor) -> bool:
            # Touch the row first (see the module docstring), then check consent.
            cur.execute(
                "UPDATE lux_privacy_directory_consent SET updated_ts = updated_ts"
                " WHERE user_id = ?",
                (user_id,),
            )
            if not _read(cur, user_id).consent:
                return False
            return outbox_store.enqueue_txn(cur, user_id, "put", display_name, now_ms)

        return await self._run("lux_privacy_directory_queue_update", txn)
