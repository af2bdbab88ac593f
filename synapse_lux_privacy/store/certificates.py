"""Signed certificates as issued: ``lux_privacy_certificates``, one per (kind, subject).

A certificate is stored once, as signed, and never changed: ``GET`` answers the very
bytes that were signed (and mailed). They go after ``audit.retention`` with the other
accountability records (``record_retention``).
"""

import json
from typing import Any

from synapse_lux_privacy.db import Cursor, DbRunner


class CertificateStore:
    def __init__(self, run: DbRunner) -> None:
        self._run = run

    async def add(self, kind: str, subject_id: str, issued_ts: int, body: dict[str, Any]) -> None:
        def txn(cur: Cursor) -> None:
            cur.execute(
                "INSERT INTO lux_privacy_certificates (kind, subject_id, issued_ts, certificate)"
                " VALUES (?, ?, ?, ?)",
                (kind, subject_id, issued_ts, json.dumps(body, sort_keys=True)),
            )

        await self._run("lux_privacy_certificate_add", txn)

    async def get(self, kind: str, subject_id: str) -> dict[str, Any] | None:
        def txn(cur: Cursor) -> dict[str, Any] | None:
            cur.execute(
                "SELECT certificate FROM lux_privacy_certificates WHERE kind = ?"
                " AND subject_id = ?",
                (kind, subject_id),
            )
            row = cur.fetchone()
            return None if row is None else dict(json.loads(row[0]))

        return await self._run("lux_privacy_certificate_get", txn)
