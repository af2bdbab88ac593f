"""``GET /audit/verify``: recompute the audit's hash chain and name the first bad row.

The chain is read page by page (``audit_chain.PAGE`` links per short transaction, so
memory stays bounded whatever the audit's size), from the anchor to the head read at
the start: links appended meanwhile are left to the next verification. Each link must
follow the previous one (``seq`` one more, ``prev_hash`` its hash) and hash to its
``row_hash``; the last must be the head. A row in a final state outside the chain was
written around the module. What is named:

- ``edited``: the row's content no longer gives its hash (a field changed);
- ``missing``: a link is missing (a row deleted); ``seq`` names it, ``id`` the row after;
- ``relinked``: the row does not follow the previous link (rows re-numbered or re-hashed);
- ``unchained``: a completed row outside the chain (a row inserted);
- ``head``: the chain ends before or elsewhere than its head (the newest rows deleted).

Pruning that runs during a verification moves the anchor: the verification then starts
again once from the new anchor rather than report the pruned rows as missing.
"""

from typing import Any

import attrs

from synapse_lux_privacy.db import Cursor, DbRunner
from synapse_lux_privacy.store import audit_chain
from synapse_lux_privacy.store.audit_chain import ChainHead


@attrs.frozen
class Mismatch:
    problem: str
    seq: int | None
    id: int | None

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Verification:
    rows: int
    head: ChainHead
    mismatch: Mismatch | None

    @property
    def ok(self) -> bool:
        return self.mismatch is None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"rows": self.rows, "ok": self.ok, **self.head.to_json()}
        if self.mismatch is not None:
            body["first_mismatch"] = self.mismatch.to_json()
        return body


class AuditVerifier:
    def __init__(self, run: DbRunner) -> None:
        self._run = run

    async def verify(self) -> Verification:
        result = await self._verify_once()
        if not result.ok:
            now = await self._run("lux_privacy_audit_verify_head", read_head_txn)
            if now.anchor_seq != result.head.anchor_seq:  # pruned meanwhile
                result = await self._verify_once()
        return result

    async def _verify_once(self) -> Verification:
        head = await self._run("lux_privacy_audit_verify_head", read_head_txn)
        seq, prev, rows = head.anchor_seq, head.anchor_hash, 0
        while seq < head.head_seq:
            page = await self._run(
                "lux_privacy_audit_verify_page", audit_chain.links_after, seq, head.head_seq
            )
            if not page:
                break
            for link in page:
                mismatch = _check(link, seq + 1, prev)
                if mismatch is not None:
                    return Verification(rows, head, mismatch)
                seq, prev, rows = link["chain_seq"], link["row_hash"], rows + 1
        if seq != head.head_seq or prev != head.head_hash:
            return Verification(rows, head, Mismatch("head", seq + 1, None))
        stray = await self._run("lux_privacy_audit_verify_stray", audit_chain.first_unchained)
        if stray is not None:
            return Verification(rows, head, Mismatch("unchained", None, stray["id"]))
        return Verification(rows, head, None)


def _check(link: dict[str, Any], seq: int, prev: str) -> Mismatch | None:
    if link["chain_seq"] > seq:
        return Mismatch("missing", seq, link["id"])
    if link["prev_hash"] != prev:
        return Mismatch("relinked", link["chain_seq"], link["id"])
    if audit_chain.row_hash(link, link["chain_seq"], prev) != link["row_hash"]:
        return Mismatch("edited", link["chain_seq"], link["id"])
    return None


def read_head_txn(cur: Cursor) -> ChainHead:
    """The chain's head and anchor, as they stand."""
    head = audit_chain.read_head(cur)
    if head is None:
        raise RuntimeError("lux_privacy_audit_chain has no head row: the migration did not run")
    return head
