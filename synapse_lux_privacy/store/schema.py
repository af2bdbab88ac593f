"""Creation and migration of the module's own tables, on SQLite and PostgreSQL.

Each component (the core, and any rule that needs tables of its own) owns an
ordered list of migration steps. ``lux_privacy_schema_version`` records, per
component, how many steps have run. Every step uses ``IF NOT EXISTS`` and the
whole migration runs in one transaction (under an advisory lock on PostgreSQL),
so a restart, a second worker starting at the same moment, or a crash half-way
never leaves the schema broken: the next start simply finishes the work.
"""

from collections.abc import Callable, Mapping, Sequence

from synapse_lux_privacy.db import Cursor, Dialect
from synapse_lux_privacy.store import audit_chain
from synapse_lux_privacy.store.hold_fence import FENCE_MIGRATIONS

# A migration step: SQL (``{id_column}`` is filled in per dialect), or a function run
# on the migration's cursor, for a step SQL alone cannot do (hashing existing rows).
MigrationStep = str | Callable[[Cursor, Dialect], None]

# Held for the duration of a migration on PostgreSQL, so that workers starting
# together take turns. Any constant works; this one spells "luxp".
_PG_ADVISORY_LOCK_KEY = 0x6C757870

_ID_COLUMN = {
    "sqlite": "id INTEGER PRIMARY KEY AUTOINCREMENT",
    "postgres": "id BIGSERIAL PRIMARY KEY",
}

# The core tables (issue #2). Steps are append-only: never edit a released step.
CORE_MIGRATIONS: Sequence[MigrationStep] = (
    # R13, R14 accountability: one row per deletion batch, identifiers and counts only.
    """
    CREATE TABLE IF NOT EXISTS lux_privacy_audit (
        {id_column},
        ts BIGINT NOT NULL,
        sweep_id TEXT,
        rule TEXT NOT NULL,
        status TEXT NOT NULL,
        count BIGINT NOT NULL,
        bytes BIGINT NOT NULL,
        user_id TEXT,
        room_id TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS lux_privacy_audit_ts ON lux_privacy_audit (ts)",
    "CREATE INDEX IF NOT EXISTS lux_privacy_audit_user ON lux_privacy_audit (user_id, ts)",
    # R13: legal holds; a released hold keeps its row (released_ts set).
    """
    CREATE TABLE IF NOT EXISTS lux_privacy_holds (
        hold_id TEXT PRIMARY KEY,
        user_id TEXT,
        room_id TEXT,
        reason TEXT NOT NULL,
        created_ts BIGINT NOT NULL,
        created_by TEXT NOT NULL,
        released_ts BIGINT,
        released_by TEXT
    )
    """,
    # R13: "every hold is recorded": each placement, change and release.
    """
    CREATE TABLE IF NOT EXISTS lux_privacy_hold_log (
        {id_column},
        ts BIGINT NOT NULL,
        hold_id TEXT NOT NULL,
        action TEXT NOT NULL,
        user_id TEXT,
        room_id TEXT,
        reason TEXT,
        actor TEXT NOT NULL
    )
    """,
    # The sweep lock: at most one sweep at a time across every worker.
    """
    CREATE TABLE IF NOT EXISTS lux_privacy_lock (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_ts BIGINT NOT NULL
    )
    """,
    # One row per sweep: when, as of when, and its report once finished.
    """
    CREATE TABLE IF NOT EXISTS lux_privacy_sweeps (
        sweep_id TEXT PRIMARY KEY,
        instance TEXT NOT NULL,
        started_ts BIGINT NOT NULL,
        finished_ts BIGINT,
        as_of_ts BIGINT NOT NULL,
        dry_run BOOLEAN NOT NULL,
        status TEXT NOT NULL,
        report TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS lux_privacy_sweeps_started ON lux_privacy_sweeps (started_ts)",
    # Background sweeps (issue #11): progress seen from every worker, cancellation.
    "ALTER TABLE lux_privacy_sweeps ADD COLUMN current_rule TEXT",
    "ALTER TABLE lux_privacy_sweeps ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE",
    "ALTER TABLE lux_privacy_sweeps ADD COLUMN updated_ts BIGINT",
    # Items whose deletion keeps failing: retried with backoff, listed by GET /failures.
    # Identifiers and the error's class only, never content.
    """
    CREATE TABLE IF NOT EXISTS lux_privacy_failures (
        rule TEXT NOT NULL,
        item_id TEXT NOT NULL,
        user_id TEXT,
        room_id TEXT,
        first_ts BIGINT NOT NULL,
        last_ts BIGINT NOT NULL,
        attempts INTEGER NOT NULL,
        error_class TEXT NOT NULL,
        next_retry_ts BIGINT NOT NULL,
        PRIMARY KEY (rule, item_id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS lux_privacy_failures_last ON lux_privacy_failures (last_ts)",
    # Audit rows left 'started' by a killed sweep are found without reading the table.
    "CREATE INDEX IF NOT EXISTS lux_privacy_audit_status ON lux_privacy_audit (status)",
    # Storage-provider objects (S3 objects, provider files) deleted with a batch (R2).
    "ALTER TABLE lux_privacy_audit ADD COLUMN provider_objects BIGINT NOT NULL DEFAULT 0",
    # The audit hash chain (issue #24, store/audit_chain.py): a row's place in the chain,
    # the previous row's hash and its own, set when the row reaches its final state.
    "ALTER TABLE lux_privacy_audit ADD COLUMN chain_seq BIGINT",
    "ALTER TABLE lux_privacy_audit ADD COLUMN prev_hash TEXT",
    "ALTER TABLE lux_privacy_audit ADD COLUMN row_hash TEXT",
    "CREATE UNIQUE INDEX IF NOT EXISTS lux_privacy_audit_chain_seq"
    " ON lux_privacy_audit (chain_seq)",
    # The chain's single head row: its last link, locked by every append, and its anchor
    # (the last pruned row, or the start when nothing was pruned yet).
    """
    CREATE TABLE IF NOT EXISTS lux_privacy_audit_chain (
        name TEXT PRIMARY KEY,
        head_seq BIGINT NOT NULL,
        head_hash TEXT NOT NULL,
        anchor_seq BIGINT NOT NULL,
        anchor_hash TEXT NOT NULL,
        anchor_ts BIGINT,
        since_ts BIGINT NOT NULL,
        migrated_seq BIGINT NOT NULL
    )
    """,
    # Existing rows of a provider that upgrades are chained once, here.
    audit_chain.chain_existing_rows,
    # Signed certificates of sweeps and erasures, as issued (proof/service.py).
    """
    CREATE TABLE IF NOT EXISTS lux_privacy_certificates (
        kind TEXT NOT NULL,
        subject_id TEXT NOT NULL,
        issued_ts BIGINT NOT NULL,
        certificate TEXT NOT NULL,
        PRIMARY KEY (kind, subject_id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS lux_privacy_certificates_issued"
    " ON lux_privacy_certificates (issued_ts)",
)

# R13: the interlock between placing a hold and a batch in flight (``hold_fence.py``).
MIGRATIONS: Mapping[str, Sequence[MigrationStep]] = {
    "core": CORE_MIGRATIONS,
    "hold_fence": FENCE_MIGRATIONS,
}


def apply_migrations(
    cursor: Cursor,
    dialect: Dialect,
    migrations: Mapping[str, Sequence[MigrationStep]] = MIGRATIONS,
) -> dict[str, int]:
    """Bring every component's tables up to date; return the steps run per component."""
    if dialect == "postgres":
        cursor.execute("SELECT pg_advisory_xact_lock(?)", (_PG_ADVISORY_LOCK_KEY,))
    cursor.execute(
        "CREATE TABLE IF NOT EXISTS lux_privacy_schema_version ("
        " component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    )
    applied: dict[str, int] = {}
    for component, steps in migrations.items():
        cursor.execute(
            "SELECT version FROM lux_privacy_schema_version WHERE component = ?",
            (component,),
        )
        row = cursor.fetchone()
        current = int(row[0]) if row else 0
        if current > len(steps):
            raise RuntimeError(
                f"lux_privacy schema component {component!r} is at version {current}, newer"
                f" than this module knows ({len(steps)}): was the module downgraded?"
            )
        for step in steps[current:]:
            if isinstance(step, str):
                cursor.execute(step.format(id_column=_ID_COLUMN[dialect]))
            else:
                step(cursor, dialect)
        if row is None:
            cursor.execute(
                "INSERT INTO lux_privacy_schema_version (component, version) VALUES (?, ?)",
                (component, len(steps)),
            )
        elif current != len(steps):
            cursor.execute(
                "UPDATE lux_privacy_schema_version SET version = ? WHERE component = ?",
                (len(steps), component),
            )
        applied[component] = len(steps) - current
    return applied
