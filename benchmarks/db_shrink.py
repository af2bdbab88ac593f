"""Benchmark: does the database shrink after a sweep? (R1, R15, issue 22)

The shared dataset (``LUX_BENCH_DATASETS``) is restored twice on PostgreSQL and aged as
of now, side by side:

- **module**: Synapse with the module at its shipped defaults (``--unpaced``: with
  ``sweep_adaptive_pace: {enabled: false}``, for the 1M dataset, whose paced sweep takes
  hours; the rows a sweep deletes are the same); a real messages sweep (``POST /sweep``,
  ``rules: [messages]``);
- **Synapse's jobs**: Synapse without the module, with ``retention:`` purge jobs for the
  same 24-month lifetime (``content_retention.SYNAPSE_RETENTION``), until no due
  message is left; then restarted without them, as after a provider's daily job (at
  their 5-second interval, each job runs Synapse's purge in every room, with its
  temporary tables, and grows the system catalogs through the wait below).

The two deletions run at the same time (sizes, not speed, are measured here). Both
servers then keep running until Synapse's deferred state-group deletion has run
(groups a purge orphaned are marked pending and deleted ``DELAY_BEFORE_DELETION_MS``,
10 minutes, later, by a job every minute); then a plain ``VACUUM`` of the database;
then the operator guide's residue procedure (docs/operator-guide.md, ``pg_repack``).
After each step it prints each side's database size, the tables that changed most and
the rows of ``state_groups_state``. The load average is printed before and after.

A script, not a test: figures vary with the machine.

    LUX_BENCH_DATASETS=/work/datasets .venv/bin/python benchmarks/db_shrink.py \\
        --users 1000 --rooms 300 --messages 10000 --media 1000
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.content_retention import (  # noqa: E402
    MONTH,
    PURGE_JOB_STARTED,
    SYNAPSE_RETENTION,
    admin_client,
    due_messages,
)
from benchmarks.dataset import (  # noqa: E402
    Manifest,
    add_spec_arguments,
    lux_module,
    restore,
    snapshot_path,
    spec_from_args,
    wait_for_background_updates,
)
from benchmarks.disk_residue import load  # noqa: E402
from tests.harness import Database, PostgresCluster, SynapseServer  # noqa: E402
from tests.integration.test_disk_residue import run_guide_procedure  # noqa: E402

# Synapse's StateDeletionDataStore.DELAY_BEFORE_DELETION_MS, and a run of its 1-minute job.
DEFERRED_S = 10 * 60 + 75
SHOWN_TABLES = 6  # the tables whose size changed most, per step

Sizes = dict[str, int]  # table name -> bytes, and the SUMMARIES
SUMMARIES = ("database", "catalogs", "state_groups_state rows", "state_groups rows")


def sizes(db: Database) -> Sizes:
    """The database's size, each table's total size (indexes, TOAST), and the rows of
    ``state_groups_state`` and ``state_groups``."""
    out: Sizes = {
        str(name): int(size)
        for name, size in db.query(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class AS c"
            " JOIN pg_namespace AS n ON n.oid = c.relnamespace"
            " WHERE c.relkind = 'r' AND n.nspname = current_schema()"
        )
    }
    out["database"] = db.number("SELECT pg_database_size(current_database())")
    out["catalogs"] = db.number(
        "SELECT SUM(pg_total_relation_size(c.oid)) FROM pg_class AS c"
        " JOIN pg_namespace AS n ON n.oid = c.relnamespace"
        " WHERE c.relkind = 'r' AND n.nspname = 'pg_catalog'"
    )
    out["state_groups_state rows"] = db.number("SELECT COUNT(*) FROM state_groups_state")
    out["state_groups rows"] = db.number("SELECT COUNT(*) FROM state_groups")
    return out


def pending_state_groups(db: Database) -> int:
    return db.number("SELECT COUNT(*) FROM state_groups_pending_deletion")


def tables_total(found: Sizes) -> int:
    """The tables' total size (with indexes and TOAST), without the catalogs."""
    return sum(v for k, v in found.items() if k not in SUMMARIES)


def mb(value: int) -> str:
    return f"{value / 1e6:8.1f} MB"


def print_step(label: str, first: dict[str, Sizes], now: dict[str, Sizes]) -> None:
    """Each side's database size (and its change since before the deletion) and state rows."""
    print(f"{label}:")
    for side, current in now.items():
        grown = (current["database"] - first[side]["database"]) / 1e6
        tables = tables_total(current)
        print(
            f"  {side:15} database {mb(current['database'])} ({grown:+.1f}),"
            f" its tables {mb(tables)} ({(tables - tables_total(first[side])) / 1e6:+.1f}),"
            f" catalogs {mb(current['catalogs'])},"
            f" state_groups_state {current['state_groups_state rows']:,} rows,"
            f" state_groups {current['state_groups rows']:,}"
        )


def print_tables(side: str, before: Sizes, after: Sizes) -> None:
    changed = sorted(
        (t for t in after if t in before and t not in SUMMARIES),
        key=lambda t: -abs(after[t] - before[t]),
    )[:SHOWN_TABLES]
    listed = ", ".join(f"{t} {(after[t] - before[t]) / 1e6:+.2f}" for t in changed)
    print(f"  {side:15} tables (MB against before the deletion): {listed}")


def synapse_jobs(server: SynapseServer, db: Database, cutoff: int) -> float:
    """Wall time of Synapse's purge jobs until no due message is left (or none moved for
    60 s); the server keeps running."""
    server.wait_for_log(PURGE_JOB_STARTED, timeout=120)
    began = time.monotonic()
    last_change, last = began, due_messages(db, cutoff)
    while last > 0 and time.monotonic() - last_change < 60:
        time.sleep(0.5)
        now = due_messages(db, cutoff)
        if now != last:
            last_change, last = time.monotonic(), now
    if last:
        print(f"  Synapse's jobs left {last} due messages")
    return last_change - began


def module_sweep(server: SynapseServer, manifest: Manifest, out: dict[str, Any]) -> None:
    """A real messages sweep through the admin API: its time and the events it deleted."""
    began = time.monotonic()
    status, report = admin_client(server.base_url, manifest).lux(
        "POST", "/sweep", {"rules": ["messages"]}
    )
    assert status == 200, report
    out.update(s=time.monotonic() - began, deleted=report["results"]["messages"]["deleted"])


def wait_deferred(dbs: dict[str, Database], since: float) -> None:
    """Until Synapse's deferred state-group deletion has run on every side: no group
    pending, and at least DEFERRED_S after the last deletion."""
    while True:
        pending = {side: pending_state_groups(db) for side, db in dbs.items()}
        waited = time.monotonic() - since
        if waited >= DEFERRED_S and not any(pending.values()):
            print(f"  deferred state-group deletion done after {waited:.0f} s")
            return
        if waited > DEFERRED_S + 600:
            print(f"  still pending after {waited:.0f} s: {pending}")
            return
        time.sleep(15)


def run(args: Any) -> None:
    spec = spec_from_args(args)
    snapshot = snapshot_path(spec, "postgres")
    if not (snapshot / "manifest.json").exists():
        raise SystemExit(f"no snapshot {snapshot}: build it with python -m benchmarks.dataset")
    print(f"load before: {load()}")
    workdir = Path(tempfile.mkdtemp(prefix="lux-shrink-"))
    cluster = PostgresCluster()
    cluster.start()
    servers: list[SynapseServer] = []
    try:
        now = int(time.time() * 1000)
        cutoff = now - 24 * MONTH
        config: dict[str, Any] = {"sweep_interval": "1d"}
        if args.unpaced:
            config["sweep_adaptive_pace"] = {"enabled": False}
        ours, manifest = restore(snapshot, workdir / "ours", cluster, [lux_module(config)], now)
        theirs, _ = restore(snapshot, workdir / "synapse", cluster, [], now, SYNAPSE_RETENTION)
        print(f"dataset {snapshot.name}: {due_messages(ours.db(), cutoff):,} messages due")
        dbs = {"module": ours.db(), "Synapse's jobs": theirs.db()}
        first = {side: sizes(db) for side, db in dbs.items()}
        print_step("before the deletion", first, first)

        servers.extend((ours, theirs))
        ours.start()
        wait_for_background_updates(ours)
        theirs.start()
        # The two deletions run at the same time (the sizes do not depend on it; their
        # durations, printed, are each slowed by the other).
        swept: dict[str, Any] = {}
        sweep = threading.Thread(target=module_sweep, args=(ours, manifest, swept))
        sweep.start()
        jobs_s = synapse_jobs(theirs, dbs["Synapse's jobs"], cutoff)
        print(f"Synapse's purge jobs: {jobs_s:.1f} s")
        theirs.stop()
        del theirs.config["retention"]
        theirs.config_path.write_text(yaml.safe_dump(theirs.config, sort_keys=False))
        theirs.start()
        dbs["Synapse's jobs"] = theirs.db()  # stopping the server closed its connection
        sweep.join()
        mode = "unpaced" if args.unpaced else "at the shipped defaults"
        print(f"module sweep ({mode}): {swept['s']:.1f} s, {swept['deleted']:,} events deleted")
        module_done = time.monotonic()
        deleted = {side: sizes(db) for side, db in dbs.items()}
        print_step("right after the deletion", first, deleted)

        wait_deferred(dbs, module_done)
        steps = {"after Synapse's deferred state-group deletion": None, "after VACUUM": "VACUUM"}
        for label, statement in steps.items():
            if statement:
                for db in dbs.values():
                    db.execute(statement)
            now_sizes = {side: sizes(db) for side, db in dbs.items()}
            print_step(label, first, now_sizes)
        for side in dbs:
            print_tables(side, first[side], now_sizes[side])

        for side, server in (("module", ours), ("Synapse's jobs", theirs)):
            assert server.pg_params is not None
            began = time.monotonic()
            run_guide_procedure(cluster, str(server.pg_params["database"]))
            print(f"residue procedure on {side}: {time.monotonic() - began:.1f} s")
        final = {side: sizes(db) for side, db in dbs.items()}
        print_step("after the residue procedure", first, final)
        for side in dbs:
            print_tables(side, first[side], final[side])
        for db in dbs.values():
            db.close()
    finally:
        for server in servers:
            server.stop()
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"load after: {load()}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_spec_arguments(parser, None)
    parser.add_argument("--unpaced", action="store_true", help="the module's sweep unpaced")
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
