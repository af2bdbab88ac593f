"""The directory feature's own tables (R10): consent per user and the national outbox.

Steps are append-only: never edit a released step, add a new one.
"""

from collections.abc import Sequence

DIRECTORY_MIGRATIONS: Sequence[str] = (
    # R10: the consent the provider's identity integration sets, and when it last changed.
    # No row means no consent (privacy by default).
    """
    CREATE TABLE IF NOT EXISTS lux_privacy_directory_consent (
        user_id TEXT PRIMARY KEY,
        consent BOOLEAN NOT NULL,
        updated_ts BIGINT NOT NULL
    )
    """,
    # R10: changes still to push to the national directory, delivered in id order per user.
    # action is 'put' (add or update the entry) or 'delete' (remove it).
    """
    CREATE TABLE IF NOT EXISTS lux_privacy_directory_outbox (
        {id_column},
        user_id TEXT NOT NULL,
        action TEXT NOT NULL,
        display_name TEXT,
        created_ts BIGINT NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt_ts BIGINT NOT NULL,
        last_error TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS lux_privacy_directory_outbox_user"
    " ON lux_privacy_directory_outbox (user_id, id)",
    "CREATE INDEX IF NOT EXISTS lux_privacy_directory_outbox_due"
    " ON lux_privacy_directory_outbox (next_attempt_ts)",
)
