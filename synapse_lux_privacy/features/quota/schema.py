"""The quota feature's own tables (R4). Steps are append-only: never edit a released step.

The two ledgers hold one row per counted item (identifiers, time and size, never
content); ``lux_privacy_quota_usage`` holds their sums per user, changed in the same
transaction as the ledger rows, so that a request reads a user's usage in one row.
A ledger row goes as soon as the module sees its item gone (R3: no metadata outlives
the message or file it belongs to).
"""

from collections.abc import Sequence

QUOTA_MIGRATIONS: Sequence[str] = (
    # R4: bytes each local user stores, by kind; the sums of the ledgers below.
    """
    CREATE TABLE IF NOT EXISTS lux_privacy_quota_usage (
        user_id TEXT PRIMARY KEY,
        media_bytes BIGINT NOT NULL,
        event_bytes BIGINT NOT NULL
    )
    """,
    # R4: per-user quotas set through the admin API (no row: quota.default_bytes).
    """
    CREATE TABLE IF NOT EXISTS lux_privacy_quota_overrides (
        user_id TEXT PRIMARY KEY,
        quota_bytes BIGINT NOT NULL,
        updated_ts BIGINT NOT NULL,
        updated_by TEXT NOT NULL
    )
    """,
    # R4: every counted upload: the file and its thumbnails.
    """
    CREATE TABLE IF NOT EXISTS lux_privacy_quota_media (
        media_id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        ts BIGINT NOT NULL,
        size BIGINT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS lux_privacy_quota_media_user"
    " ON lux_privacy_quota_media (user_id, ts, media_id)",
    # R4: every counted event (non-state, sent by a local user): stored JSON length, and
    # what it would keep once expunged.
    """
    CREATE TABLE IF NOT EXISTS lux_privacy_quota_events (
        event_id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        room_id TEXT NOT NULL,
        ts BIGINT NOT NULL,
        size BIGINT NOT NULL,
        pruned_size BIGINT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS lux_privacy_quota_events_user"
    " ON lux_privacy_quota_events (user_id, ts, event_id)",
    # Watermarks and timestamps of the accounting: name -> value.
    """
    CREATE TABLE IF NOT EXISTS lux_privacy_quota_state (
        name TEXT PRIMARY KEY,
        value BIGINT NOT NULL
    )
    """,
    # Users whose uploads (or whole usage, full_resync = 1) must be re-read from Synapse.
    """
    CREATE TABLE IF NOT EXISTS lux_privacy_quota_dirty (
        user_id TEXT PRIMARY KEY,
        marked_ts BIGINT NOT NULL,
        full_resync INTEGER NOT NULL
    )
    """,
    # R4: what was evicted and not yet told to the user in a server notice.
    """
    CREATE TABLE IF NOT EXISTS lux_privacy_quota_notices (
        user_id TEXT PRIMARY KEY,
        pending_count BIGINT NOT NULL,
        pending_bytes BIGINT NOT NULL,
        last_sent_ts BIGINT
    )
    """,
)
