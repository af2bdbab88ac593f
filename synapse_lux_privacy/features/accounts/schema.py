"""The accounts feature's tables (R11, R12): the module's own last activity per user and
device, and the account deletions started but not finished.

Synapse's only record of activity is its IP log (``user_ips``) and ``devices.last_seen``;
the first is purged after ``logs.ip_retention`` (R9) and the second goes with the
device (R11). These tables keep what the rules need after both are gone.
"""

from collections.abc import Mapping, Sequence

ACCOUNTS_MIGRATIONS: Mapping[str, Sequence[str]] = {
    "accounts": (
        # R12: last recorded activity per local user (registration, login, requests,
        # and the activity of the user's devices folded in at each sweep).
        """
        CREATE TABLE IF NOT EXISTS lux_privacy_user_activity (
            user_id TEXT PRIMARY KEY,
            last_active_ts BIGINT NOT NULL
        )
        """,
        # R11: per device, when the module first saw it (the basis for a device that
        # Synapse never saw) and the latest last_seen copied from Synapse's devices table.
        """
        CREATE TABLE IF NOT EXISTS lux_privacy_device_activity (
            user_id TEXT NOT NULL,
            device_id TEXT NOT NULL,
            first_seen_ts BIGINT NOT NULL,
            last_seen_ts BIGINT,
            PRIMARY KEY (user_id, device_id)
        )
        """,
        # R12, R7: accounts whose deletion the accounts rule started and has not finished
        # (deactivated, media not deleted yet); the next sweep finishes them.
        """
        CREATE TABLE IF NOT EXISTS lux_privacy_account_deletions (
            user_id TEXT PRIMARY KEY,
            started_ts BIGINT NOT NULL
        )
        """,
    ),
    # R12: the e-mail warnings sent before a deletion, one row per account and lead
    # time; a later activity (last activity after sent_ts) starts a new round.
    "account_warnings": (
        """
        CREATE TABLE IF NOT EXISTS lux_privacy_account_warnings (
            user_id TEXT NOT NULL,
            lead_ms BIGINT NOT NULL,
            sent_ts BIGINT NOT NULL,
            deletion_due_ts BIGINT NOT NULL,
            addresses INTEGER NOT NULL,
            PRIMARY KEY (user_id, lead_ms)
        )
        """,
        # A row is a claim until the warning went out (R12, R14): only delivered
        # warnings are reported, and a claim its pass never delivered is taken over.
        # Rows written before this step were recorded once sent.
        "ALTER TABLE lux_privacy_account_warnings"
        " ADD COLUMN delivered BOOLEAN NOT NULL DEFAULT TRUE",
    ),
}
