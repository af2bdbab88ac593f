"""Benchmark: a sweep with nothing due (R1, R2, R3), with and without the scan marks.

On PostgreSQL, the shared dataset restored aged as of now (half of the events past
``retention.messages``): a real sweep of the content rules (messages, then the media
rules) deletes what is due, then sweeps with nothing due are timed (median of
``--repeat``, after one warm-up), two ways in the same run on the same data:

- ``with mark``: as the module runs, each sweep starting from the marks the previous one
  left (``features/content/scan_marks.py``): only rooms (messages rule) and attachment
  events (attachments rule) changed since are judged;
- ``full pass``: the marks deleted before each sweep, so the messages rule judges every
  room with an old event and the attachments rule every old attachment event again
  (what every sweep did before the marks, and what the first sweep of each day does).

It also times the same sweeps on a fresh restore (not aged: nothing old at all). Run it
at two dataset sizes to see whether the cost follows the history kept.

    .venv/bin/python benchmarks/idle_sweep.py --rooms 300 --messages 10000
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.content_retention import CONTENT_MEDIA_RULES, admin_client, sweep  # noqa: E402
from benchmarks.dataset import (  # noqa: E402
    DatasetSpec,
    add_spec_arguments,
    ensure_snapshot,
    lux_module,
    restore,
    spec_from_args,
)
from tests.harness import Database, MatrixClient, PostgresCluster  # noqa: E402

SMALL = DatasetSpec(users=100, rooms=300, messages=10_000, media=200)
RULES = ["messages", *CONTENT_MEDIA_RULES]


def timed_noop(admin: MatrixClient, db: Database, forget_mark: bool, repeat: int) -> float:
    """Median milliseconds of ``repeat`` sweeps with nothing due, after a warm-up."""
    times = []
    for _ in range(repeat + 1):
        if forget_mark:
            db.execute("DELETE FROM lux_privacy_scan_marks")
        elapsed, results = sweep(admin, RULES)
        assert all(r["deleted"] == 0 for r in results.values()), results
        times.append(elapsed)
    return statistics.median(times[1:]) * 1000


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_spec_arguments(parser, SMALL)
    parser.add_argument("--repeat", type=int, default=5, help="timed sweeps per figure")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="lux-bench-"))
    cluster = PostgresCluster()
    cluster.start()
    loads = [os.getloadavg()[0]]
    module = [lux_module({"sweep_interval": "1d"})]
    try:
        snapshot = ensure_snapshot(spec_from_args(args), "postgres", cluster)
        figures: dict[str, tuple[int, float, float]] = {}
        for label, now in (("fresh", None), ("after a real sweep", int(time.time() * 1000))):
            server, manifest = restore(snapshot, workdir / label[:5], cluster, module, now)
            server.start()
            try:
                admin = admin_client(server.base_url, manifest)
                db = server.db()
                if now is not None:
                    took, results = sweep(admin, RULES)
                    print(f"real sweep: {took:.1f} s, {results['messages']}")
                rows = db.number("SELECT COUNT(*) FROM events")
                with_mark = timed_noop(admin, db, False, args.repeat)
                full = timed_noop(admin, db, True, args.repeat)
                figures[label] = (rows, with_mark, full)
            finally:
                server.stop()
            loads.append(os.getloadavg()[0])
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(f"dataset: {spec_from_args(args)}; load average (1 min) during the run: {loads}")
    print(f"sweep with nothing due (median of {args.repeat}):")
    for label, (rows, with_mark, full) in figures.items():
        print(
            f"  {label:20} {rows:8} event rows: with mark {with_mark:8.1f} ms,"
            f" full pass {full:8.1f} ms"
        )


if __name__ == "__main__":
    main()
