"""One row per sweep: its parameters, status, progress and report.

The running sweep writes its counts after every batch, so ``GET /sweeps/{id}`` shows
its progress from any worker, and reads back ``cancel_requested`` there, so
``DELETE /sweeps/{id}`` stops it after its current batch wherever it runs.

A sweep whose process died (SIGKILL, a crash) leaves its row ``running``; every read
shows it ``interrupted`` as soon as its lease (``sweep_lock.py``, holder
``instance/process/sweep_id``) has expired or is gone, and the next sweep to start
stores that status.
"""

import json
from typing import Any

import attrs

from synapse_lux_privacy.db import Cursor, DbRunner
from synapse_lux_privacy.store import audit_chain
from synapse_lux_privacy.store.sweep_lock import SWEEP_LOCK
from synapse_lux_privacy.sweep.report import INTERRUPTED, RUNNING

# The status as stored, except a running sweep without a live lease: interrupted. Its
# parameters: ``_status_args`` (the LIKE pattern is a parameter: a literal '%' would
# be taken for a placeholder on PostgreSQL).
_STATUS = (
    "CASE WHEN s.status = ? AND NOT EXISTS (SELECT 1 FROM lux_privacy_lock l"
    " WHERE l.name = ? AND l.holder LIKE (? || s.sweep_id) AND l.expires_ts > ?)"
    " THEN ? ELSE s.status END"
)
_COLUMNS = (
    "s.sweep_id, s.instance, s.started_ts, s.finished_ts, s.as_of_ts, s.dry_run,"
    f" {_STATUS}, s.report, s.current_rule, s.updated_ts, s.cancel_requested"
)


def _status_args(now_ms: int) -> tuple[object, ...]:
    return (RUNNING, SWEEP_LOCK, "%/", now_ms, INTERRUPTED)


@attrs.frozen
class SweepRecord:
    """A sweep as stored: what ``GET /sweeps/{id}`` answers."""

    sweep_id: str
    instance: str
    started_ts: int
    finished_ts: int | None
    as_of_ts: int
    dry_run: bool
    status: str
    report: dict[str, Any] | None
    current_rule: str | None
    updated_ts: int | None
    cancel_requested: bool

    @staticmethod
    def from_row(row: tuple[Any, ...]) -> "SweepRecord":
        report = json.loads(row[7]) if row[7] else None
        return SweepRecord(
            sweep_id=row[0],
            instance=row[1],
            started_ts=int(row[2]),
            finished_ts=None if row[3] is None else int(row[3]),
            as_of_ts=int(row[4]),
            dry_run=bool(row[5]),
            status=row[6],
            report=report,
            current_rule=row[8],
            updated_ts=None if row[9] is None else int(row[9]),
            cancel_requested=bool(row[10]),
        )

    def to_json(self, now_ms: int) -> dict[str, Any]:
        results = (self.report or {}).get("results", {})
        processed = sum(int(r.get("candidates", 0)) for r in results.values())
        end = self.finished_ts or (now_ms if self.status == RUNNING else self.updated_ts)
        elapsed_s = max(0.001, ((end or self.started_ts) - self.started_ts) / 1000)
        return {
            "sweep_id": self.sweep_id,
            "status": self.status,
            "instance": self.instance,
            "as_of": self.as_of_ts,
            "dry_run": self.dry_run,
            "started_ts": self.started_ts,
            "finished_ts": self.finished_ts,
            "current_rule": self.current_rule if self.status == RUNNING else None,
            "cancel_requested": self.cancel_requested,
            "results": results,
            "pace": (self.report or {}).get("pace"),
            "disk_residue": (self.report or {}).get("disk_residue"),
            "rate_per_s": round(processed / elapsed_s, 1),
            # What is left is unknown until each rule has listed its candidates: a rule
            # pages through them without counting them first (that would cost a second
            # pass over the history).
            "eta_s": None if self.status == RUNNING else 0,
        }


class SweepRunStore:
    """Reads and writes ``lux_privacy_sweeps``."""

    def __init__(self, run: DbRunner, chain_run: DbRunner | None = None) -> None:
        self._run = run
        self._chain_run = chain_run or run  # ``start`` chains interrupted audit rows

    async def start(
        self, sweep_id: str, instance: str, now_ms: int, as_of_ms: int, dry_run: bool
    ) -> int:
        """Record a new sweep; mark what a killed sweep left behind ``interrupted``.

        Sweeps left ``running`` and audit rows left ``started`` belong to a dead
        process: only the lock holder calls this. An interrupted audit row keeps the
        counts of the batch it announced: at most that much was deleted; it is chained
        then (``audit_chain``). Returns how many interrupted sweeps were found.
        """

        def txn(cur: Cursor) -> int:
            head = audit_chain.lock(cur)
            cur.execute(
                "UPDATE lux_privacy_sweeps SET status = ?, finished_ts = COALESCE(updated_ts, ?)"
                " WHERE status = ?",
                (INTERRUPTED, now_ms, RUNNING),
            )
            interrupted = cur.rowcount
            cur.execute("SELECT id FROM lux_privacy_audit WHERE status = 'started' ORDER BY id")
            started = [int(r[0]) for r in cur.fetchall()]
            cur.execute(
                "UPDATE lux_privacy_audit SET status = ? WHERE status = 'started'",
                (INTERRUPTED,),
            )
            audit_chain.append(cur, head, started)
            cur.execute(
                "INSERT INTO lux_privacy_sweeps (sweep_id, instance, started_ts, as_of_ts,"
                " dry_run, status, updated_ts) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (sweep_id, instance, now_ms, as_of_ms, dry_run, RUNNING, now_ms),
            )
            return interrupted

        return await self._chain_run("lux_privacy_sweep_start", txn)

    async def progress(
        self, sweep_id: str, now_ms: int, current_rule: str | None, report: dict[str, Any]
    ) -> bool:
        """Store the counts so far; return True when a cancellation was requested."""

        def txn(cur: Cursor) -> bool:
            cur.execute(
                "UPDATE lux_privacy_sweeps SET updated_ts = ?, current_rule = ?, report = ?"
                " WHERE sweep_id = ?",
                (now_ms, current_rule, json.dumps(report), sweep_id),
            )
            return _cancel_requested_txn(cur, sweep_id)

        return await self._run("lux_privacy_sweep_progress", txn)

    async def cancel_requested(self, sweep_id: str) -> bool:
        """Whether a cancellation of this sweep was requested (from any process)."""

        return await self._run(
            "lux_privacy_sweep_cancel_requested", _cancel_requested_txn, sweep_id
        )

    async def finish(self, sweep_id: str, now_ms: int, status: str, report: dict[str, Any]) -> None:
        def txn(cur: Cursor) -> None:
            cur.execute(
                "UPDATE lux_privacy_sweeps SET finished_ts = ?, updated_ts = ?, status = ?,"
                " report = ?, current_rule = NULL WHERE sweep_id = ?",
                (now_ms, now_ms, status, json.dumps(report), sweep_id),
            )

        await self._run("lux_privacy_sweep_finish", txn)

    async def set_report(self, sweep_id: str, report: dict[str, Any]) -> None:
        """Replace a finished sweep's report (figures measured after its end)."""

        def txn(cur: Cursor) -> None:
            cur.execute(
                "UPDATE lux_privacy_sweeps SET report = ? WHERE sweep_id = ?",
                (json.dumps(report), sweep_id),
            )

        await self._run("lux_privacy_sweep_set_report", txn)

    async def request_cancel(self, sweep_id: str, now_ms: int) -> SweepRecord | None:
        """Ask a running sweep to stop after its batch; None for an unknown sweep."""

        def txn(cur: Cursor) -> SweepRecord | None:
            cur.execute(
                "UPDATE lux_privacy_sweeps SET cancel_requested = ? WHERE sweep_id = ?"
                " AND status = ?",
                (True, sweep_id, RUNNING),
            )
            return _get_txn(cur, sweep_id, now_ms)

        return await self._run("lux_privacy_sweep_cancel", txn)

    async def get(self, sweep_id: str, now_ms: int) -> SweepRecord | None:
        return await self._run("lux_privacy_sweep_get", _get_txn, sweep_id, now_ms)

    async def latest(self, limit: int, now_ms: int) -> list[SweepRecord]:
        """The newest sweeps first."""

        def txn(cur: Cursor) -> list[SweepRecord]:
            cur.execute(
                f"SELECT {_COLUMNS} FROM lux_privacy_sweeps s"
                " ORDER BY s.started_ts DESC, s.sweep_id LIMIT ?",
                (*_status_args(now_ms), limit),
            )
            return [SweepRecord.from_row(row) for row in cur.fetchall()]

        return await self._run("lux_privacy_sweep_latest", txn)

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


def _get_txn(cur: Cursor, sweep_id: str, now_ms: int) -> SweepRecord | None:
    cur.execute(
        f"SELECT {_COLUMNS} FROM lux_privacy_sweeps s WHERE s.sweep_id = ?",
        (*_status_args(now_ms), sweep_id),
    )
    row = cur.fetchone()
    return None if row is None else SweepRecord.from_row(row)


def _cancel_requested_txn(cur: Cursor, sweep_id: str) -> bool:
    cur.execute("SELECT cancel_requested FROM lux_privacy_sweeps WHERE sweep_id = ?", (sweep_id,))
    row = cur.fetchone()
    return row is not None and bool(row[0])
