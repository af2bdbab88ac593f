"""Accountability records expire too: ``audit.retention`` (24 months by default).

Audit rows, failure rows and finished sweep records name users and rooms, so they
are personal data: they are deleted once older than the retention, in small
batches, by every full sweep. Their age is real (the wall clock), never a sweep's
``as_of``: a forecast "as of" next year must not erase today's trail.

The audit is a hash chain (``audit_chain``): its rows go from the start of the chain
only, and the last one pruned stays as the chain's anchor, so the rest still verifies.
Certificates (counts of a sweep, or an erasure's subject) go with the records.
"""

from synapse_lux_privacy.db import Cursor, DbRunner
from synapse_lux_privacy.store import audit_chain

# (table, key, timestamp column, extra condition): what a record's age is counted from.
_RECORDS: tuple[tuple[str, str, str, str], ...] = (
    ("lux_privacy_failures", "rule, item_id", "last_ts", ""),
    ("lux_privacy_sweeps", "sweep_id", "started_ts", " AND status <> 'running'"),
    ("lux_privacy_certificates", "kind, subject_id", "issued_ts", ""),
)

# Rows per DELETE statement: each transaction stays short.
BATCH = 1000


class RecordRetention:
    def __init__(self, run: DbRunner, chain_run: DbRunner | None = None) -> None:
        self._run = run
        self._chain_run = chain_run or run  # pruning moves the chain's anchor

    async def prune(self, before_ts: int) -> int:
        """Delete every record older than ``before_ts``; return how many went."""
        total = 0
        while True:
            deleted = await self._run("lux_privacy_prune_audit", audit_chain.prune_batch, before_ts)
            total += deleted
            if deleted < audit_chain.PAGE:
                break
        for table, key, column, extra in _RECORDS:
            while True:
                deleted = await self._run(
                    "lux_privacy_prune_records", _prune_batch, table, key, column, extra, before_ts
                )
                total += deleted
                if deleted < BATCH:
                    break
        return total


def _prune_batch(cur: Cursor, table: str, key: str, column: str, extra: str, before_ts: int) -> int:
    cur.execute(
        f"DELETE FROM {table} WHERE ({key}) IN (SELECT {key} FROM {table}"
        f" WHERE {column} < ?{extra} LIMIT ?)",
        (before_ts, BATCH),
    )
    return int(cur.rowcount)
