"""Benchmark: ``synapse-lux-privacy estimate`` against the first sweep it forecasts (R1-R12).

On PostgreSQL, the shared dataset restored aged as of now (half the events past 24
months, half the uploads past 12, sessions and accounts past their limits): the
estimate runs as an operator would run it (a dry run, then a timed sample of each rule
with something to delete), then, with ``--validate``, the real sweep of what the samples
left is timed and set against the estimate's "time left".

    .venv/bin/python benchmarks/backlog_estimate.py --rooms 300 --messages 10000 --validate
    .venv/bin/python benchmarks/backlog_estimate.py --sample-seconds 30 --project 100 [dataset]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.content_retention import admin_client  # noqa: E402
from benchmarks.dataset import (  # noqa: E402
    DatasetSpec,
    add_spec_arguments,
    ensure_snapshot,
    lux_module,
    restore,
    spec_from_args,
)
from synapse_lux_privacy.admin_cli.client import AdminClient  # noqa: E402
from synapse_lux_privacy.admin_cli.estimate_command import (  # noqa: E402
    EstimateCommand,
    forecast_table,
)
from synapse_lux_privacy.sweep.rule import RULE_NAMES  # noqa: E402
from tests.harness import PostgresCluster  # noqa: E402

SMALL = DatasetSpec(users=1000, rooms=300, messages=10_000, media=1000)
# The national directory's rule has nothing to do without a national directory service.
RULES = [r for r in RULE_NAMES if r != "directory"]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_spec_arguments(parser, SMALL)
    parser.add_argument("--sample-seconds", type=float, default=20.0, help="sample per rule")
    parser.add_argument("--project", type=float, action="append", default=[], metavar="N")
    parser.add_argument(
        "--rules",
        default=",".join(RULES),
        help="comma-separated rules (default: all but directory)",
    )
    parser.add_argument(
        "--validate", action="store_true", help="then time the real sweep of what is left"
    )
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="lux-bench-"))
    cluster = PostgresCluster()
    cluster.start()
    loads = [os.getloadavg()[0]]
    try:
        snapshot = ensure_snapshot(spec_from_args(args), "postgres", cluster)
        now = int(time.time() * 1000)
        server, manifest = restore(
            snapshot, workdir / "aged", cluster, [lux_module({"sweep_interval": "1d"})], now
        )
        server.start()
        try:
            rows = server.db().number("SELECT COUNT(*) FROM events")
            client = AdminClient(server.base_url, manifest.admin_token)
            console = Console(file=io.StringIO())
            rules = args.rules.split(",")
            result = EstimateCommand(client, console, interval_s=0.5).estimate(
                None, rules, args.sample_seconds
            )
            loads.append(os.getloadavg()[0])
            actual = None
            if args.validate:
                started = time.monotonic()
                admin_client(server.base_url, manifest).lux("POST", "/sweep", {"rules": rules})
                actual = time.monotonic() - started
                loads.append(os.getloadavg()[0])
        finally:
            server.stop()
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    out = Console(width=120)
    print(f"dataset: {spec_from_args(args)}, {rows} event rows; load average (1 min): {loads}")
    out.print(forecast_table(result))
    print(f"dry run: {result.dry_run_s:.1f} s")
    print(f"estimated time left after the samples: {result.left_s} s")
    print(f"estimated whole backlog, samples included: {result.whole_s} s")
    for factor in args.project:
        print(f"projected for a backlog {factor:g} times larger: {result.project(factor)} s")
    if actual is not None and result.left_s:
        ratio = actual / result.left_s
        print(f"real sweep of what was left: {actual:.1f} s; real / estimated: {ratio:.2f}")


if __name__ == "__main__":
    main()
