"""Benchmark: the content-retention sweep (R1, R2) against Synapse's own ``retention:`` purge.

The dataset comes from the shared generator (``benchmarks/dataset``): users with devices,
rooms with members (half encrypted), clear and encrypted messages, uploads (images with
thumbnails, files) posted as attachment events, built once through Synapse's APIs and
stored as a snapshot. Each run restores it on PostgreSQL and ages it as of now, so
that half of each kind of data is past its Luxchat limit (events spread over 48
months, uploads over 24), then:

- on a fresh (not aged) restore, times a sweep of the content rules with nothing due;
- on an aged restore with the module, times the module's sweep (``POST /sweep``:
  ``messages``, then the media rules), and a sweep with nothing due afterwards;
- on a second aged restore of the same snapshot, as of the same time, starts Synapse
  without the module and with ``retention:`` purge jobs configured for the same
  24-month lifetime, and times them until every due message is gone.

It prints both wall times, the rows each deleted and their ratio, and the cost of a
sweep when nothing is due at two data sizes (the whole dataset before the sweep, and
the half left after it). With ``--transactions``, it also prints where each side's
database time went during the timed deletions (``transactions.py``). A script, not a
test: figures vary with the machine.

    .venv/bin/python benchmarks/content_retention.py        # the issue's sizes (built once: ~1 h)
    .venv/bin/python benchmarks/content_retention.py --rooms 300 --messages 10000 --media 1000
"""

from __future__ import annotations

import argparse
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.dataset import (  # noqa: E402
    DatasetSpec,
    Manifest,
    add_spec_arguments,
    ensure_snapshot,
    lux_module,
    restore,
    spec_from_args,
)
from benchmarks.transactions import (  # noqa: E402
    log_transactions,
    logged_at,
    print_transactions,
    transactions_in,
)
from tests.harness import Database, MatrixClient, PostgresCluster, wait_for  # noqa: E402

DAY = 86_400_000
MONTH = 30 * DAY
CONTENT_MEDIA_RULES = ["attachments", "remote_media", "redacted_content"]
ISSUE_SIZES = DatasetSpec(users=1_000, rooms=3_000, messages=76_000, media=10_000)
SYNAPSE_RETENTION = {
    "retention": {
        "enabled": True,
        "default_policy": {"max_lifetime": "720d"},  # 24 months of 30 days (R1)
        "purge_jobs": [{"interval": "5s"}],
    }
}


# What Synapse logs when one of its retention purge jobs starts.
PURGE_JOB_STARTED = "[purge] Running retention purge job"


def admin_client(base_url: str, manifest: Manifest) -> MatrixClient:
    """The dataset's admin, waiting as long as a sweep takes (it answers when done)."""
    return MatrixClient(base_url, manifest.admin_token, manifest.admin_user_id, timeout=3600)


def counts(db: Database) -> dict[str, int]:
    """Rows of the tables a purge and a media deletion empty."""
    tables = ("events", "event_json", "event_edges", "event_search", "local_media_repository")
    return {t: db.number(f"SELECT COUNT(*) FROM {t}") for t in tables}


def due_messages(db: Database, cutoff: int) -> int:
    return db.number(
        "SELECT COUNT(*) FROM events AS e WHERE e.origin_server_ts < ? AND NOT EXISTS"
        " (SELECT 1 FROM state_events AS s WHERE s.event_id = e.event_id)",
        (cutoff,),
    )


def quota_settled(db: Database, timeout_s: float = 120.0) -> float:
    """Wait until the quota's eviction loop has re-read every uploader the dataset marked
    (``lux_privacy_quota_dirty`` empty; R4): a provider's server did that long before its
    sweep, while a freshly restored one does it in its first minute, beside whatever is
    measured then (454 transactions, 0.34 s of connection time at 12.5k). Seconds waited."""
    return wait_for(
        lambda: db.number("SELECT COUNT(*) FROM lux_privacy_quota_dirty") == 0,
        timeout_s,
        "the quota's re-read of the dataset's uploaders",
    )


def sweep(admin: MatrixClient, rules: list[str], dry_run: bool = False) -> tuple[float, Any]:
    began = time.monotonic()
    status, report = admin.lux("POST", "/sweep", {"rules": rules, "dry_run": dry_run})
    elapsed = time.monotonic() - began
    assert status == 200, report
    return elapsed, report["results"]


def profiled(pid: int | None, path: str | None) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the Synapse process into ``path`` (collapsed stacks), if asked."""
    if path is None or pid is None:
        return None
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    cmd = [spy, "record", "--pid", str(pid), "--format", "raw", "--output", path, "--rate", "50"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profile(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(60)


def noop_sweep(admin: MatrixClient) -> float:
    elapsed, results = sweep(admin, ["messages", *CONTENT_MEDIA_RULES])
    assert all(r["deleted"] == 0 for r in results.values()), results
    return elapsed


def synapse_retention(
    server: Any, cutoff: int, expected: int
) -> tuple[float, float, dict[str, int], dict[str, int]]:
    """Synapse's own purge jobs: wall time from the first job until no due message is left
    (or nothing moved for 60 s), when (epoch s) the first job started; rows before and
    after."""
    db = server.db()
    before = counts(db)
    server.start()
    try:
        server.wait_for_log(PURGE_JOB_STARTED, timeout=120)
        began, began_epoch = time.monotonic(), time.time()
        last_change, last = began, due_messages(db, cutoff)
        while last > 0 and time.monotonic() - last_change < 60:
            time.sleep(0.2)
            now = due_messages(db, cutoff)
            if now != last:
                last_change, last = time.monotonic(), now
        if last:
            print(f"  Synapse left {last} of {expected} due messages")
        return last_change - began, began_epoch, before, counts(db)
    finally:
        server.stop()


def deleted(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {t: before[t] - after[t] for t in before}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_spec_arguments(parser, ISSUE_SIZES)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    parser.add_argument(
        "--profile", metavar="PATH", help="py-spy collapsed stacks of the messages sweep"
    )
    parser.add_argument(
        "--transactions",
        action="store_true",
        help="log every database transaction; print each side's by name",
    )
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="lux-bench-"))
    cluster = PostgresCluster()
    cluster.start()
    try:
        snapshot = ensure_snapshot(spec_from_args(args), "postgres", cluster)
        module = [lux_module({"allow_future_sweeps": True})]

        # Nothing due: the whole dataset, fresh.
        server, manifest = restore(snapshot, workdir / "fresh", cluster, module, None)
        server.start()
        admin = admin_client(server.base_url, manifest)
        full = counts(server.db())
        noop_full = [noop_sweep(admin) for _ in range(4)][1:]  # the first one warms caches
        server.stop()

        # The same data aged as of now, twice: the module on one, Synapse on the other.
        now = int(time.time() * 1000)
        cutoff = now - 24 * MONTH
        server, _ = restore(snapshot, workdir / "ours", cluster, module, now)
        synapse, _ = restore(snapshot, workdir / "synapse", cluster, [], now, SYNAPSE_RETENTION)
        if args.transactions:
            log_transactions(server)
            log_transactions(synapse)
        server.start()
        admin = admin_client(server.base_url, manifest)
        db = server.db()
        settled = quota_settled(db)
        due = due_messages(db, cutoff)
        before = counts(db)
        _, forecast = sweep(admin, ["messages", *CONTENT_MEDIA_RULES], dry_run=True)
        spy = profiled(server.pid, args.profile)
        messages_began = time.time()
        t_messages, r_messages = sweep(admin, ["messages"])
        stop_profile(spy)
        t_media, r_media = sweep(admin, CONTENT_MEDIA_RULES)
        after = counts(db)
        ours_deleted = deleted(before, after)
        left = due_messages(db, cutoff)
        noop_after = [noop_sweep(admin) for _ in range(4)][1:]  # the first one warms caches
        server.stop()

        t_synapse, synapse_began, s_before, s_after = synapse_retention(synapse, cutoff, due)
        synapse_deleted = deleted(s_before, s_after)
    finally:
        cluster.stop()

    print()
    print(
        f"dataset: {len(manifest.rooms)} rooms ({len(manifest.encrypted_rooms)} encrypted),"
        f" {full['events']} event rows ({due} messages due),"
        f" {full['local_media_repository']} uploads; built in {manifest.build_seconds:.0f} s"
    )
    print(f"quota's first re-read of the dataset's uploaders, waited for: {settled:.0f} s")
    print(f"dry run forecast: { {k: v['candidates'] for k, v in forecast.items()} }")
    print(f"module sweep, messages rule:     {t_messages:8.2f} s  {r_messages['messages']}")
    print(f"module sweep, media rules:       {t_media:8.2f} s  {r_media['attachments']}")
    print(f"  rows deleted: {ours_deleted}; due messages left: {left}")
    print(f"Synapse retention purge jobs:    {t_synapse:8.2f} s (media: not deleted)")
    print(f"  rows deleted: {synapse_deleted}")
    ratio = t_synapse / t_messages if t_messages else float("inf")
    print(f"ratio Synapse / module (messages): {ratio:.2f}")
    print(
        f"events deleted per second: module {ours_deleted['events'] / t_messages:.0f},"
        f" Synapse {synapse_deleted['events'] / max(t_synapse, 1e-9):.0f}"
    )
    print("sweep with nothing due (median of 3):")
    for label, size, times in (
        ("whole dataset", full["events"], noop_full),
        ("after the sweep", after["events"], noop_after),
    ):
        print(f"  {label:16} {size:8} event rows: {sorted(times)[1] * 1000:8.1f} ms")
    if args.transactions:
        print("database transactions (connection time), by name:")
        print_transactions(
            "  module, messages rule",
            transactions_in(server.log_path, messages_began, messages_began + t_messages),
        )
        first_job = logged_at(synapse.log_path, PURGE_JOB_STARTED)
        print_transactions(
            "  Synapse's purge jobs",
            transactions_in(synapse.log_path, first_job, synapse_began + t_synapse),
        )
    if args.keep:
        print(f"work folder kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
