"""The interlock that makes a legal hold bind the moment it is placed (R13).

One row, ``lux_privacy_hold_fence``, holds the generation of the hold set and the
batch in flight:

- placing a hold bumps ``generation`` in the same transaction as the hold
  (``bump_txn``);
- before a batch is deleted, the sweep, in one transaction, writes
  ``batch_generation = generation`` and its lease holder into the row, checks that
  it still holds the sweep lease, and reads the active holds (``mark_txn``); it
  clears the mark after the batch (``clear_txn``);
- ``PUT /holds`` then waits (``in_flight_txn``, polled) until no batch marked
  under an older generation is in flight: its mark is cleared or renewed under a
  newer generation, or its sweep's lease has ended (a sweep stops deleting before
  its lease can expire: ``sweep/lease.py``).

Both writers update the same row first, so the database orders them: on
PostgreSQL (repeatable read) the later one waits for the earlier one's row lock
and is retried by Synapse with a fresh snapshot; SQLite runs one writer at a time.
Either the batch's mark comes first, and the placement sees it and waits for the
batch, or the placement comes first, and the batch's read of the holds sees it.
"""

from synapse_lux_privacy.db import Cursor
from synapse_lux_privacy.store.sweep_lock import SWEEP_LOCK

FENCE = "holds"

FENCE_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS lux_privacy_hold_fence (
        name TEXT PRIMARY KEY,
        generation BIGINT NOT NULL,
        batch_generation BIGINT,
        batch_holder TEXT
    )
    """,
    "INSERT INTO lux_privacy_hold_fence (name, generation) VALUES ('holds', 0)"
    " ON CONFLICT (name) DO NOTHING",
)


def bump_txn(cur: Cursor) -> None:
    """A hold is placed: a new generation (in the placing transaction)."""
    cur.execute(
        "UPDATE lux_privacy_hold_fence SET generation = generation + 1 WHERE name = ?", (FENCE,)
    )


def mark_txn(cur: Cursor, holder: str, now_ms: int) -> bool:
    """Mark a batch of ``holder`` in flight under the current generation; False (nothing
    written) when ``holder`` no longer holds a live sweep lease. The caller reads the
    holds in the same transaction, after this."""
    cur.execute(
        "UPDATE lux_privacy_hold_fence SET batch_generation = generation, batch_holder = ?"
        " WHERE name = ? AND EXISTS (SELECT 1 FROM lux_privacy_lock"
        " WHERE name = ? AND holder = ? AND expires_ts > ?)",
        (holder, FENCE, SWEEP_LOCK, holder, now_ms),
    )
    return bool(cur.rowcount == 1)


def clear_txn(cur: Cursor, holder: str) -> None:
    """The batch of ``holder`` is over."""
    cur.execute(
        "UPDATE lux_privacy_hold_fence SET batch_generation = NULL, batch_holder = NULL"
        " WHERE name = ? AND batch_holder = ?",
        (FENCE, holder),
    )


def in_flight_txn(cur: Cursor, generation: int, now_ms: int) -> bool:
    """Whether a batch marked under a generation older than ``generation`` may still
    be deleting: its mark stands and its sweep still holds a live lease."""
    cur.execute(
        "SELECT 1 FROM lux_privacy_hold_fence f JOIN lux_privacy_lock l"
        " ON l.name = ? AND l.holder = f.batch_holder"
        " WHERE f.name = ? AND f.batch_generation < ? AND l.expires_ts > ?",
        (SWEEP_LOCK, FENCE, generation, now_ms),
    )
    return cur.fetchone() is not None


def generation_txn(cur: Cursor) -> int:
    cur.execute("SELECT generation FROM lux_privacy_hold_fence WHERE name = ?", (FENCE,))
    row = cur.fetchone()
    return 0 if row is None else int(row[0])
