"""Benchmark (issue #24): the cost of the audit's hash chain, with and without, side by side.

1. Audit writes per second: the module's own ``AuditStore`` writes batches (``start_batch``
   then ``finish_batch``, ``--groups`` rows each, as a sweep does) on SQLite and on
   PostgreSQL, in this process, through a runner that behaves as Synapse's pool does
   (one transaction per call; on PostgreSQL REPEATABLE READ, and a transaction that
   meets a serialisation failure runs again). Rounds alternate with and without the
   chain; with ``--writers N`` (PostgreSQL) N threads write at once and the chain is
   verified afterwards (``GET /audit/verify``'s code), so the figure also shows the
   appends staying one chain.
2. The messages sweep's duration: the shared dataset (``benchmarks/dataset``) restored
   and aged as of the same instant on two servers, one with the module and one with
   ``benchmarks.unchained_audit`` (the chain's lock and append are no-ops there: a
   benchmark-only class, not a configuration key), then a real sweep of the
   ``messages`` rule timed on each, alternately (the order flips every round), for
   ``--rounds`` rounds. Both servers log their transactions (``transactions.py``), so
   the time spent in the audit's own transactions is also printed: with and without
   the chain, the difference is the chain's cost, whatever the machine's load does to
   the sweep's wall time.

"Without the chain" is a benchmark-only code path (``unchained_audit.unchain``). The
figures vary with the machine and its load: the script prints the load average.

    .venv/bin/python benchmarks/audit_chain.py                      # both parts
    .venv/bin/python benchmarks/audit_chain.py --skip-sweep --batches 500
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import unchained_audit  # noqa: E402
from benchmarks.dataset import (  # noqa: E402
    DatasetSpec,
    add_spec_arguments,
    ensure_snapshot,
    lux_module,
    restore,
    spec_from_args,
)
from benchmarks.transactions import log_transactions, transactions_in  # noqa: E402
from synapse_lux_privacy.store import audit_chain  # noqa: E402
from synapse_lux_privacy.store.audit import AuditGroup, AuditStore  # noqa: E402
from synapse_lux_privacy.store.audit_verification import AuditVerifier  # noqa: E402
from synapse_lux_privacy.store.schema import apply_migrations  # noqa: E402
from tests.harness import MatrixClient, PostgresCluster, uid  # noqa: E402
from tests.harness.module_db import PgCursor, PgRunner, SqliteRunner, drive  # noqa: E402

DATASET = DatasetSpec(users=100, rooms=40, messages=2_000, media=0, clone_rooms=8)
_CHAINED = (audit_chain.lock, audit_chain.append)


class _Writer:
    """A writer's runners: ``run``, and ``chain_run`` for the chain's appends (READ
    COMMITTED on PostgreSQL, as ``ModuleDatabase.read_committed``)."""

    def __init__(self, run: Any, chain_run: Any) -> None:
        self.run, self.chain_run = run, chain_run

    @property
    def retries(self) -> int:
        return int(self.run.retries) + (
            int(self.chain_run.retries) if self.chain_run is not self.run else 0
        )


def _sqlite_writer(path: str) -> _Writer:
    run = SqliteRunner(path)
    return _Writer(run, run)


def set_chain(on: bool) -> None:
    if on:
        audit_chain.lock, audit_chain.append = _CHAINED
    else:
        unchained_audit.unchain()


def write_batches(run: Any, batches: int, groups: int, writer: int) -> None:
    audit = AuditStore(run.run, run.chain_run)
    for i in range(batches):
        planned = [AuditGroup(f"@u{g}:bench", f"!r{writer}:bench", 3, 300) for g in range(groups)]
        ids = drive(audit.start_batch(f"w{writer}", "messages", i, planned))
        drive(audit.finish_batch(ids, planned, i + 1))


def audit_writes(
    make_runner: Callable[[], Any], batches: int, groups: int, writers: int
) -> tuple[float, int]:
    """Rows completed per second by ``writers`` threads; serialisation retries."""
    runners = [make_runner() for _ in range(writers)]
    threads = [
        threading.Thread(target=write_batches, args=(r, batches, groups, n))
        for n, r in enumerate(runners)
    ]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    return writers * batches * groups / elapsed, sum(r.retries for r in runners)


def writes_part(args: argparse.Namespace, cluster: PostgresCluster, workdir: Path) -> None:
    print(f"audit writes: {args.batches} batches of {args.groups} rows per writer")
    engines: list[tuple[str, int, Callable[[], Callable[[], Any]]]] = []

    def sqlite_db() -> Callable[[], Any]:
        path = str(workdir / f"{uid('audit')}.db")
        conn = sqlite3.connect(path)
        apply_migrations(conn.cursor(), "sqlite")
        conn.commit()
        conn.close()
        return lambda: _sqlite_writer(path)

    def pg_db() -> Callable[[], Any]:
        params = cluster.create_database(uid("audit_"))
        first = PgRunner(params)
        with first.conn.cursor() as cur:
            apply_migrations(PgCursor(cur), "postgres")
        first.conn.commit()
        return lambda: _Writer(PgRunner(params), PgRunner(params, "READ COMMITTED"))

    engines.append(("sqlite", 1, sqlite_db))
    engines.append(("postgres", 1, pg_db))
    if args.writers > 1:
        engines.append(("postgres", args.writers, pg_db))
    for engine, writers, make_db in engines:
        rates: dict[bool, list[float]] = {True: [], False: []}
        retries = 0
        for _ in range(args.rounds):
            for chained in (False, True):
                set_chain(chained)
                runner = make_db()
                rate, retried = audit_writes(runner, args.batches, args.groups, writers)
                rates[chained].append(rate)
                retries += retried if chained else 0
                if chained:
                    verified = drive(AuditVerifier(runner().run).verify())
                    assert verified.ok, verified.to_json()
        set_chain(True)
        without, with_chain = statistics.median(rates[False]), statistics.median(rates[True])
        print(
            f"  {engine:8} {writers} writer(s): without {without:8.0f} rows/s,"
            f" with chain {with_chain:8.0f} rows/s ({with_chain / without:.2f}x);"
            f" runs without {[round(r) for r in rates[False]]},"
            f" with {[round(r) for r in rates[True]]};"
            f" serialisation retries {retries}; chain verified ok"
        )


def sweep_part(args: argparse.Namespace, cluster: PostgresCluster, workdir: Path) -> None:
    snapshot = ensure_snapshot(spec_from_args(args), "postgres", cluster)
    now = int(time.time() * 1000)
    variants = {
        "with chain": [lux_module({})],
        "without": [{"module": unchained_audit.MODULE_NAME, "config": {}}],
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    audit_s: dict[str, list[float]] = {name: [] for name in variants}
    deleted: dict[str, list[int]] = {name: [] for name in variants}
    chain_rows = 0
    for round_no in range(args.rounds):
        order = list(variants) if round_no % 2 == 0 else list(reversed(variants))
        for name in order:
            folder = workdir / f"{name.replace(' ', '-')}-{round_no}"
            server, manifest = restore(snapshot, folder, cluster, variants[name], now)
            log_transactions(server)
            server.start()
            try:
                admin = MatrixClient(
                    server.base_url, manifest.admin_token, manifest.admin_user_id, timeout=3600
                )
                began, wall = time.perf_counter(), time.time()
                status, report = admin.lux("POST", "/sweep", {"rules": ["messages"]})
                times[name].append(time.perf_counter() - began)
                assert status == 200, report
                deleted[name].append(report["results"]["messages"]["deleted"])
                txns = transactions_in(server.log_path, wall, time.time())
                audit_s[name].append(
                    sum(s for n, s in txns.seconds.items() if n.startswith("lux_privacy_audit"))
                )
                if name == "with chain":
                    status, verified = admin.lux("GET", "/audit/verify")
                    assert status == 200 and verified["ok"], verified
                    chain_rows = verified["rows"]
            finally:
                server.stop()
    print(f"messages sweep, {args.rounds} rounds alternating (dataset {snapshot.name}):")
    for name in variants:
        print(
            f"  {name:10}: median {statistics.median(times[name]):7.2f} s,"
            f" runs {[round(t, 2) for t in times[name]]}, events deleted {deleted[name]};"
            f" audit transactions {[round(t, 3) for t in audit_s[name]]} s"
        )
    ratio = statistics.median(times["with chain"]) / statistics.median(times["without"])
    paired = [w / o for w, o in zip(times["with chain"], times["without"], strict=True)]
    print(
        f"  ratio with / without: {ratio:.3f} (target <= 1.02); per round"
        f" {[round(r, 3) for r in paired]}; chain rows {chain_rows}"
    )
    extra = statistics.median(audit_s["with chain"]) - statistics.median(audit_s["without"])
    share = extra / statistics.median(times["without"])
    print(
        f"  the chain's own cost: {extra:+.3f} s of audit transaction time per sweep"
        f" ({share:+.2%} of the sweep without it)"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_spec_arguments(parser, DATASET)
    parser.add_argument("--batches", type=int, default=1000, help="batches per writer")
    parser.add_argument("--groups", type=int, default=5, help="audit rows per batch")
    parser.add_argument("--writers", type=int, default=4, help="concurrent PostgreSQL writers")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per part")
    parser.add_argument("--skip-writes", action="store_true")
    parser.add_argument("--skip-sweep", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args(argv)
    print(f"load average at start: {os.getloadavg()}, {os.cpu_count()} CPUs")
    workdir = Path(tempfile.mkdtemp(prefix="lux-bench-chain-"))
    cluster = PostgresCluster()
    cluster.start()
    try:
        if not args.skip_writes:
            writes_part(args, cluster, workdir)
        if not args.skip_sweep:
            sweep_part(args, cluster, workdir)
    finally:
        cluster.stop()
        if args.keep:
            print(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
