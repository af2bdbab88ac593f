"""The data-subject requests' tables (R14: GDPR articles 15 and 17).

One row per export and per erasure: who asked, when, for whom, how far it got and
what it counted; never content. They name users, so finished rows older than
``audit.retention`` are deleted with the audit trail's rows (``RequestStore.prune``).
Steps are append-only: never edit a released step.
"""

from collections.abc import Mapping, Sequence

RIGHTS_MIGRATIONS: Mapping[str, Sequence[str]] = {
    "rights": (
        # R14, art. 15: an export is queued, then built by the process that runs
        # background tasks; its archive is deleted at expires_ts (exports.retention).
        """
        CREATE TABLE IF NOT EXISTS lux_privacy_exports (
            export_id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            requested_by TEXT NOT NULL,
            requested_ts BIGINT NOT NULL,
            status TEXT NOT NULL,
            files BIGINT NOT NULL,
            bytes BIGINT NOT NULL,
            finished_ts BIGINT,
            expires_ts BIGINT,
            error TEXT
        )
        """,
        "CREATE INDEX IF NOT EXISTS lux_privacy_exports_status"
        " ON lux_privacy_exports (status, requested_ts)",
        # R14, art. 17: an erasure on request, with the reason the admin gave.
        """
        CREATE TABLE IF NOT EXISTS lux_privacy_erasures (
            erasure_id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            requested_by TEXT NOT NULL,
            requested_ts BIGINT NOT NULL,
            reason TEXT NOT NULL,
            status TEXT NOT NULL,
            media_deleted BIGINT NOT NULL,
            media_bytes BIGINT NOT NULL,
            provider_objects BIGINT NOT NULL,
            media_kept BIGINT NOT NULL,
            finished_ts BIGINT,
            error TEXT
        )
        """,
        "CREATE INDEX IF NOT EXISTS lux_privacy_erasures_status"
        " ON lux_privacy_erasures (status, requested_ts)",
    ),
}
