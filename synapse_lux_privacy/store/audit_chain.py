"""The audit as a hash chain (R13, R14 accountability; issue #24).

What is chained: an audit row is written ``started`` before its batch is deleted and
completed (``done``, or ``interrupted`` by the next sweep) afterwards; a row of which
nothing was deleted is dropped. A row is therefore chained once, when it reaches its
final state, and never changed after: ``chain_seq`` (its place, 1, 2, 3, ...),
``prev_hash`` (the previous link's hash) and ``row_hash``, the SHA-256 of the canonical
JSON (``canonicaljson``) of its fields with ``seq`` and ``prev``. A ``started`` row is
not in the chain yet (it may still change or go).

One chain for every worker: each append runs in the transaction that finalises its rows,
and first locks the single head row of ``lux_privacy_audit_chain`` (an UPDATE of it, a
row lock on PostgreSQL; SQLite serialises writers anyway), so appends from several
processes take turns. Those transactions run at READ COMMITTED on PostgreSQL
(``ModuleDatabase.read_committed``): one that waited for the lock then reads the head
its predecessor committed. (At Synapse's default REPEATABLE READ it would fail with a
serialisation error and be run again, at most five times.) Whoever finalises audit rows
calls ``lock`` first in its transaction (before touching any audit row: one lock order,
no deadlock), then ``append``.

Pruning (``prune``, by ``audit.retention``) deletes a prefix of the chain and keeps the
last pruned link as the anchor, from which ``verify`` starts. Existing rows of a
provider that upgrades are chained once by the migration (``chain_existing_rows``);
``since_ts`` and ``migrated_seq`` say from when, and up to which link, the chain holds
rows that were written before it existed.

Hashed fields: the values of ``HASHED_COLUMNS`` that are not NULL. A nullable column
added later to the audit and to this list leaves the hashes of older rows unchanged.
"""

import hashlib
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs
from canonicaljson import encode_canonical_json

from synapse_lux_privacy.db import Cursor, Dialect, chunks, execute_batch, placeholders

CHAIN = "audit"
# The hash the first link follows.
GENESIS_HASH = "0" * 64
HASHED_COLUMNS = (
    "id",
    "ts",
    "sweep_id",
    "rule",
    "status",
    "count",
    "bytes",
    "user_id",
    "room_id",
    "provider_objects",
)
# What a row's completion sets (``append``'s ``final``).
FINAL_COLUMNS = ("status", "ts", "count", "bytes", "provider_objects")
_CHAIN_COLUMNS = "chain_seq, prev_hash, row_hash"
ROW_COLUMNS = ", ".join(HASHED_COLUMNS) + ", " + _CHAIN_COLUMNS
# Rows per page: for the migration, verification and pruning (bounded memory).
PAGE = 1000


@attrs.define
class ChainHead:
    """The head row of the chain, as read (and locked) in a transaction."""

    head_seq: int
    head_hash: str
    anchor_seq: int
    anchor_hash: str
    anchor_ts: int | None
    since_ts: int
    migrated_seq: int

    def to_json(self) -> dict[str, Any]:
        return {
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "anchor": {"seq": self.anchor_seq, "hash": self.anchor_hash, "ts": self.anchor_ts},
            "since_ts": self.since_ts,
            "migrated_seq": self.migrated_seq,
        }


def row_hash(fields: dict[str, Any], seq: int, prev: str) -> str:
    """The hash of one link: its hashed fields that are not NULL, ``seq`` and ``prev``."""
    content = {k: fields[k] for k in HASHED_COLUMNS if fields.get(k) is not None}
    content["seq"] = seq
    content["prev"] = prev
    return hashlib.sha256(encode_canonical_json(content)).hexdigest()


def row_fields(row: Sequence[Any]) -> dict[str, Any]:
    """A row read with ``ROW_COLUMNS`` as a dict (integers as ``int``)."""
    fields = dict(zip((*HASHED_COLUMNS, "chain_seq", "prev_hash", "row_hash"), row, strict=True))
    for key in ("id", "ts", "count", "bytes", "provider_objects", "chain_seq"):
        if fields[key] is not None:
            fields[key] = int(fields[key])
    return fields


_HEAD_COLUMNS = "head_seq, head_hash, anchor_seq, anchor_hash, anchor_ts, since_ts, migrated_seq"


def lock(cur: Cursor) -> ChainHead:
    """Lock the head row for the rest of the transaction and read it (one statement)."""
    cur.execute(
        "UPDATE lux_privacy_audit_chain SET head_seq = head_seq WHERE name = ?"
        f" RETURNING {_HEAD_COLUMNS}",
        (CHAIN,),
    )
    head = _head(cur.fetchone())
    if head is None:
        raise RuntimeError("lux_privacy_audit_chain has no head row: the migration did not run")
    return head


def read_head(cur: Cursor) -> ChainHead | None:
    cur.execute(f"SELECT {_HEAD_COLUMNS} FROM lux_privacy_audit_chain WHERE name = ?", (CHAIN,))
    return _head(cur.fetchone())


def _head(row: Sequence[Any] | None) -> ChainHead | None:
    if row is None:
        return None
    return ChainHead(
        head_seq=int(row[0]),
        head_hash=row[1],
        anchor_seq=int(row[2]),
        anchor_hash=row[3],
        anchor_ts=None if row[4] is None else int(row[4]),
        since_ts=int(row[5]),
        migrated_seq=int(row[6]),
    )


def append(
    cur: Cursor,
    head: ChainHead,
    row_ids: Sequence[int],
    final: Mapping[int, Mapping[str, Any]] | None = None,
) -> None:
    """Chain these rows, in this order, after ``head``, in their final state.

    ``head`` comes from ``lock`` in the same transaction. ``final`` gives, per row, the
    values of ``FINAL_COLUMNS`` it takes now (written with its link, in one UPDATE);
    a row without them is chained as it stands. Rows already chained or missing are
    left out.
    """
    if not row_ids:
        return
    final = final or {}
    by_id: dict[int, dict[str, Any]] = {}
    for some in chunks(row_ids):
        cur.execute(
            f"SELECT {ROW_COLUMNS} FROM lux_privacy_audit WHERE id IN ({placeholders(some)})"
            " AND chain_seq IS NULL",
            tuple(some),
        )
        by_id.update((int(r[0]), row_fields(r)) for r in cur.fetchall())
    updates = []
    for row_id in row_ids:
        fields = by_id.get(row_id)
        if fields is None:
            continue
        fields.update(final.get(row_id, {}))
        seq = head.head_seq + 1
        link = row_hash(fields, seq, head.head_hash)
        updates.append((*(fields[c] for c in FINAL_COLUMNS), seq, head.head_hash, link, row_id))
        head.head_seq, head.head_hash = seq, link
    # One round trip per page of rows on PostgreSQL, not one per row (issue 22: a
    # media batch's hundreds of rows made one transaction of 0.2 s).
    execute_batch(
        cur,
        "UPDATE lux_privacy_audit SET status = ?, ts = ?, count = ?, bytes = ?,"
        " provider_objects = ?, chain_seq = ?, prev_hash = ?, row_hash = ? WHERE id = ?",
        updates,
    )
    _save(cur, head)


def _save(cur: Cursor, head: ChainHead) -> None:
    cur.execute(
        "UPDATE lux_privacy_audit_chain SET head_seq = ?, head_hash = ?, anchor_seq = ?,"
        " anchor_hash = ?, anchor_ts = ? WHERE name = ?",
        (head.head_seq, head.head_hash, head.anchor_seq, head.anchor_hash, head.anchor_ts, CHAIN),
    )


def prune_batch(cur: Cursor, before_ts: int) -> int:
    """Delete up to PAGE links from the start of the chain, oldest first, as long as they
    are older than ``before_ts``; the last one deleted becomes the anchor. Return how
    many went. Rows never chained (``started`` ones) older than ``before_ts`` go too."""
    head = lock(cur)
    cur.execute(
        "SELECT chain_seq, row_hash, ts FROM lux_privacy_audit WHERE chain_seq IS NOT NULL"
        " ORDER BY chain_seq LIMIT ?",
        (PAGE,),
    )
    last: tuple[Any, ...] | None = None
    for row in cur.fetchall():
        if int(row[2]) >= before_ts:
            break
        last = row
    deleted = 0
    if last is not None:
        cur.execute("DELETE FROM lux_privacy_audit WHERE chain_seq <= ?", (int(last[0]),))
        deleted = int(cur.rowcount)
        head.anchor_seq, head.anchor_hash, head.anchor_ts = int(last[0]), last[1], int(last[2])
        _save(cur, head)
    cur.execute(
        "DELETE FROM lux_privacy_audit WHERE id IN (SELECT id FROM lux_privacy_audit"
        " WHERE chain_seq IS NULL AND ts < ? LIMIT ?)",
        (before_ts, PAGE),
    )
    return deleted + int(cur.rowcount)


def links_after(cur: Cursor, after_seq: int, up_to_seq: int) -> list[dict[str, Any]]:
    """One page of links after ``after_seq`` (at most ``up_to_seq``), in chain order."""
    cur.execute(
        f"SELECT {ROW_COLUMNS} FROM lux_privacy_audit WHERE chain_seq > ? AND chain_seq <= ?"
        " ORDER BY chain_seq LIMIT ?",
        (after_seq, up_to_seq, PAGE),
    )
    return [row_fields(r) for r in cur.fetchall()]


def first_unchained(cur: Cursor) -> dict[str, Any] | None:
    """A row in a final state that is not in the chain: written around the module."""
    cur.execute(
        f"SELECT {ROW_COLUMNS} FROM lux_privacy_audit WHERE chain_seq IS NULL"
        " AND status <> 'started' ORDER BY id LIMIT 1"
    )
    row = cur.fetchone()
    return None if row is None else row_fields(row)


def chain_existing_rows(cur: Cursor, dialect: Dialect) -> None:
    """Migration step: create the head row and chain the rows already there, by ID.

    Runs once, when a provider upgrades (or on a new install, with nothing to chain).
    ``since_ts`` is now: rows chained here were written before the chain existed, and
    the chain vouches for them only from this moment (``migrated_seq`` is their last
    link).
    """
    cur.execute(
        "INSERT INTO lux_privacy_audit_chain (name, head_seq, head_hash, anchor_seq,"
        " anchor_hash, since_ts, migrated_seq) VALUES (?, 0, ?, 0, ?, ?, 0)",
        (CHAIN, GENESIS_HASH, GENESIS_HASH, int(time.time() * 1000)),
    )
    head = lock(cur)
    for ids in _unchained_ids(cur):
        append(cur, head, ids)
    cur.execute(
        "UPDATE lux_privacy_audit_chain SET migrated_seq = head_seq WHERE name = ?", (CHAIN,)
    )


def _unchained_ids(cur: Cursor) -> Iterator[list[int]]:
    after = 0
    while True:
        cur.execute(
            "SELECT id FROM lux_privacy_audit WHERE id > ? AND chain_seq IS NULL"
            " AND status <> 'started' ORDER BY id LIMIT ?",
            (after, PAGE),
        )
        ids = [int(r[0]) for r in cur.fetchall()]
        if not ids:
            return
        yield ids
        after = ids[-1]
