"""Benchmark: ``synapse-lux-privacy estimate`` against the first sweep it forecasts (R1-R12).

On PostgreSQL, the shared dataset restored aged as of now (half the events past 24
months, half the uploads past 12, sessions and accounts past their limits), once per
mode (the pace settings: ``defaults``, or ``minpace=N``: ``sweep_adaptive_pace`` on with
``min_pace: N``): the estimate runs as an operator runs it by default (a dry run and the
cost model, nothing deleted; a fresh restore has no recorded sweep, so its figures are
the benchmarks' range), then the real first sweep (``POST /sweeps``) is timed. With
``--window S`` the real sweep is stopped after S seconds and each rule it reached is
projected from its own progress (its time x the items the dry run found / those it
tried); the ratio then covers the rules it reached.

    .venv/bin/python benchmarks/backlog_estimate.py --modes defaults,minpace=2
    .venv/bin/python benchmarks/backlog_estimate.py --clone-rooms 80 --window 1200 --modes defaults
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
from typing import Any

from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.dataset import (  # noqa: E402
    DatasetSpec,
    add_spec_arguments,
    ensure_snapshot,
    lux_module,
    restore,
    spec_from_args,
)
from synapse_lux_privacy.admin_cli import backlog  # noqa: E402
from synapse_lux_privacy.admin_cli.client import AdminClient  # noqa: E402
from synapse_lux_privacy.admin_cli.estimate_command import (  # noqa: E402
    EstimateCommand,
    estimate_table,
)
from synapse_lux_privacy.sweep.rule import RULE_NAMES  # noqa: E402
from tests.harness import PostgresCluster  # noqa: E402

SMALL = DatasetSpec(users=1000, rooms=300, messages=10_000, media=1000)
# The national directory's rule has nothing to do without a national directory service.
RULES = [r for r in RULE_NAMES if r != "directory"]


def mode_config(mode: str) -> dict[str, Any]:
    """The module's pace settings for a mode: ``defaults`` or ``minpace=N``."""
    if mode == "defaults":
        return {}
    name, _, value = mode.partition("=")
    if name == "minpace":
        return {"sweep_adaptive_pace": {"enabled": True, "min_pace": float(value)}}
    raise SystemExit(f"unknown mode {mode!r} (defaults, minpace=N)")


def load() -> float:
    return round(os.getloadavg()[0], 1)


def real_sweep(
    client: AdminClient, rules: list[str], window_s: float | None
) -> tuple[dict[str, Any], bool]:
    """The real sweep, to its end or stopped after ``window_s``; its record, and whether
    it was stopped."""
    sweep_id = client.call("POST", "/sweeps", {"rules": rules})["sweep_id"]
    started = time.monotonic()
    stopped = False
    while True:
        record: dict[str, Any] = client.call("GET", f"/sweeps/{sweep_id}")
        if record["status"] != "running":
            return record, stopped
        if window_s is not None and not stopped and time.monotonic() - started >= window_s:
            client.call("DELETE", f"/sweeps/{sweep_id}")
            stopped = True
        time.sleep(2)


def measure(
    snapshot: Path, cluster: PostgresCluster, mode: str, rules: list[str], window_s: float | None
) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="lux-bench-"))
    config = {"sweep_interval": "1d", **mode_config(mode)}
    try:
        now = int(time.time() * 1000)
        server, manifest = restore(snapshot, workdir / "aged", cluster, [lux_module(config)], now)
        server.start()
        try:
            client = AdminClient(server.base_url, manifest.admin_token)
            command = EstimateCommand(client, Console(file=io.StringIO()), interval_s=1.0)
            load_before = load()
            settings = client.call("GET", "/sweep/settings")
            outcome = command.estimate(settings, None, rules, None)
            load_estimated = load()
            record, stopped = real_sweep(client, rules, window_s)
            load_after = load()
        finally:
            server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    result = outcome.estimate
    out = Console(width=160)
    print(f"\n== mode {mode}: {result.pace.describe()}")
    print(f"load average (1 min): {load_before} before, {load_estimated} after the estimate,")
    print(f"  {load_after} after the real sweep (a 2-core machine shared with other sessions)")
    print(f"dry run: {outcome.dry_run_s:.1f} s")
    out.print(estimate_table(result))
    results = record.get("results") or {}
    print(f"real sweep: {record['status']}{' (stopped after the window)' if stopped else ''}")
    reached = [name for name in rules if (results.get(name) or {}).get("seconds")]
    stopped_rule = reached[-1] if reached else None
    estimated_total = real_total = 0.0
    for r in result.rules:
        got = results.get(r.rule) or {}
        seconds = float(got.get("seconds") or 0.0)
        tried = backlog.tried(got)
        if r.items == 0 or r.seconds is None:
            continue
        if stopped and seconds == 0:
            print(f"  {r.rule}: not reached in the window")
            continue
        # Only the rule the window stopped is projected; a rule that ran to its end took
        # its time, whatever it found left (ip_logs after sessions deleted the devices).
        projected = stopped and r.rule == stopped_rule and 0 < tried < r.items
        real = seconds * r.items / tried if projected else seconds
        how = f" (projected from {tried} of {r.items} in {seconds:.0f} s)" if projected else ""
        print(
            f"  {r.rule}: estimate {r.seconds:.1f} s (range {r.low_s:.1f}-{r.high_s:.1f}),"
            f" real {real:.1f} s{how}, real/estimate {real / r.seconds:.2f}"
        )
        estimated_total += r.seconds
        real_total += real
    if estimated_total:
        print(
            f"total over these rules: estimate {estimated_total:.1f} s, real {real_total:.1f} s,"
            f" real/estimate {real_total / estimated_total:.2f}"
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_spec_arguments(parser, SMALL)
    parser.add_argument("--modes", default="defaults,minpace=2", help="comma-separated modes")
    parser.add_argument(
        "--rules",
        default=",".join(RULES),
        help="comma-separated rules (default: all but directory)",
    )
    parser.add_argument(
        "--window", type=float, default=None, metavar="S", help="stop the real sweep after S s"
    )
    args = parser.parse_args(argv)
    cluster = PostgresCluster()
    cluster.start()
    try:
        spec = spec_from_args(args)
        snapshot = ensure_snapshot(spec, "postgres", cluster)
        print(f"dataset: {spec}")
        for mode in args.modes.split(","):
            measure(snapshot, cluster, mode, args.rules.split(","), args.window)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
