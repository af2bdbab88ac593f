"""One row per sweep: its parameters, status and report (for operators and the metrics)."""

import json
from typing import Any

from synapse_lux_privacy.db import Cursor, DbRunner


class SweepRunStore:
    """Reads and writes ``lux_privacy_sweeps``."""

    def __init__(self, run: DbRunner) -> None:
        self._run = run

    async def start(
        self, sweep_id: str, instance: str, now_ms: int, as_of_ms: int, dry_run: bool
    ) -> int:
        """Record a new sweep; mark sweeps left ``running`` by a killed process ``interrupted``.

        Returns how many interrupted sweeps were found. Only the lock holder calls
        this, so any other ``running`` row belongs to a dead process.
        """

        def txn(cur: Cursor) -> int:
            cur.execute(
                "UPDATE lux_privacy_sweeps SET status = 'interrupted' WHERE status = 'running'", ()
            )
            interrupted = cur.rowcount
            cur.execute(
                "INSERT INTO lux_privacy_sweeps (sweep_id, instance, started_ts, as_of_ts,"
                " dry_run, status) VALUES (?, ?, ?, ?, ?, 'running')",
                (sweep_id, instance, now_ms, as_of_ms, dry_run),
            )
            return interrupted

        return await self._run("lux_privacy_sweep_start", txn)

    async def finish(self, sweep_id: str, now_ms: int, status: str, report: dict[str, Any]) -> None:
        def txn(cur: Cursor) -> None:
            cur.execute(
                "UPDATE lux_privacy_sweeps SET finished_ts = ?, status = ?, report = ?"
                " WHERE sweep_id = ?",
                (now_ms, status, json.dumps(report), sweep_id),
            )

        await self._run("lux_privacy_sweep_finish", txn)

    async def last_finished_ts(self) -> int | None:
        """When the newest real (not dry-run) sweep completed without errors."""

        def txn(cur: Cursor) -> int | None:
            cur.execute(
                "SELECT MAX(finished_ts) FROM lux_privacy_sweeps"
                " WHERE status = 'completed' AND dry_run = ?",
                (False,),
            )
            row = cur.fetchone()
            return None if row is None or row[0] is None else int(row[0])

        return await self._run("lux_privacy_last_sweep", txn)
