"""Benchmark (R4): upload-path overhead of the quota, and eviction speed.

Two Synapse servers on the same machine and database engine, each restored from the
same dataset of the shared generator (``benchmarks/dataset``: users, rooms, clear and
encrypted messages, uploads; not aged, since the quota evicts by size, oldest first):

* ``without``: Synapse alone;
* ``with``: Synapse with ``synapse_lux_privacy``, a 5 GiB default quota (so every upload
  goes through the module's media callbacks) and the eviction loop slowed to 1 h so
  that only the measured sweep evicts.

1. Upload path: the same dataset user uploads 100 KiB files to both servers
   alternately; median and p99 latency of each, and their ratio.
2. Eviction: on ``with``, every dataset user gets a quota of ``--quota-share`` of what
   they store, so each is over it; a dry-run sweep brings the accounting up to date,
   then a real sweep of the ``quota`` rule alone is timed: items evicted per second
   (uploads deleted through Synapse's media repository, messages expunged through its
   event expiry), oldest first, across all users at once.

Run from the repository root::

    .venv/bin/python benchmarks/quota.py [--uploads 500] [--quota-share 0.5]
        [--database sqlite|postgres] [dataset options, see --help]

(``--quota-share 1`` evicts nothing: the upload path only.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from benchmarks.dataset import (  # noqa: E402
    DatasetSpec,
    Manifest,
    add_spec_arguments,
    ensure_snapshot,
    lux_module,
    restore,
    spec_from_args,
)
from tests.harness import MatrixClient, PostgresCluster  # noqa: E402
from tests.harness.client import q  # noqa: E402

UPLOAD_SIZE = 100 * 1024
LUX_CONFIG = {"quota": {"default_bytes": "5G", "eviction_interval": "1h"}}
DATASET = DatasetSpec(users=50, rooms=100, messages=5_000, media=1_000)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=500)
    parser.add_argument("--quota-share", type=float, default=0.5)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    add_spec_arguments(parser, DATASET)
    args = parser.parse_args()

    cluster = PostgresCluster() if args.database == "postgres" else None
    if cluster is not None:
        cluster.start()
    servers: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="lux-bench-") as tmp:
        try:
            snapshot = ensure_snapshot(spec_from_args(args), args.database, cluster)
            for name, modules in (("without", []), ("with", [lux_module(LUX_CONFIG)])):
                server, manifest = restore(snapshot, Path(tmp) / name, cluster, modules, None)
                server.start()
                servers[name] = server
            print(f"database: {args.database}")
            user = manifest.users[0]
            clients = {
                name: MatrixClient(server.base_url, manifest.tokens[user][0], user)
                for name, server in servers.items()
            }
            _upload_latency(clients, args.uploads)
            if args.quota_share < 1:
                admin = MatrixClient(
                    servers["with"].base_url, manifest.admin_token, manifest.admin_user_id
                )
                _eviction_speed(admin, manifest, args.quota_share)
        finally:
            for server in servers.values():
                server.stop()
            if cluster is not None:
                cluster.stop()


def _upload_latency(clients: dict[str, MatrixClient], uploads: int) -> None:
    for client in clients.values():  # warm-up
        for _ in range(20):
            client.upload_media(os.urandom(UPLOAD_SIZE))
    timings: dict[str, list[float]] = {name: [] for name in clients}
    order = list(clients)
    for n in range(uploads):
        data = os.urandom(UPLOAD_SIZE)
        for name in order if n % 2 == 0 else reversed(order):  # alternate, against drift
            began = time.perf_counter()
            clients[name].upload_media(data)
            timings[name].append(time.perf_counter() - began)

    print(f"\n{uploads} uploads of {UPLOAD_SIZE // 1024} KiB per server")
    print(f"{'':>10} {'median ms':>10} {'p99 ms':>8}")
    for name in clients:
        print(
            f"{name:>10} {statistics.median(timings[name]) * 1000:10.2f}"
            f" {_percentile(timings[name], 0.99) * 1000:8.2f}"
        )
    median_ratio = statistics.median(timings["with"]) / statistics.median(timings["without"])
    p99_ratio = _percentile(timings["with"], 0.99) / _percentile(timings["without"], 0.99)
    print(f"ratio with/without: median {median_ratio:.2f}, p99 {p99_ratio:.2f}")


def _eviction_speed(admin: MatrixClient, manifest: Manifest, share: float) -> None:
    admin.timeout = 3600  # the sweep answers when it has finished
    began = time.monotonic()
    forecast = _sweep(admin, dry_run=True)  # brings the usage accounting up to date
    print(f"\naccounting caught up (dry run): {time.monotonic() - began:.1f} s")

    def usage(user_id: str) -> int:
        status, body = admin.lux("GET", f"/users/{q(user_id)}/quota")
        assert status == 200, body
        return int(body["used_bytes"])

    def limit(user_id: str) -> int:
        quota = max(1, int(usage(user_id) * share))
        status, body = admin.lux("PUT", f"/users/{q(user_id)}/quota", {"quota_bytes": quota})
        assert status == 200, body
        return quota

    with ThreadPoolExecutor(max_workers=8) as pool:
        stored = sum(pool.map(usage, manifest.users))
        allowed = sum(pool.map(limit, manifest.users))
    forecast = _sweep(admin, dry_run=True)
    print(
        f"{len(manifest.users)} users store {stored} bytes; quotas of {share:.0%} of it:"
        f" {forecast['candidates']} items over quota"
    )
    began = time.monotonic()
    done = _sweep(admin, dry_run=False)
    elapsed = time.monotonic() - began
    print(
        f"eviction: {done['deleted']} items ({done['bytes']} bytes) in {elapsed:.1f} s:"
        f" {done['deleted'] / elapsed:.0f} items/s"
    )
    with ThreadPoolExecutor(max_workers=8) as pool:
        left = sum(pool.map(usage, manifest.users))
    print(f"usage left: {left} bytes (quotas total {allowed}; expunged messages keep a shell)")


def _sweep(admin: Any, dry_run: bool) -> dict[str, int]:
    status, report = admin.lux("POST", "/sweep", {"rules": ["quota"], "dry_run": dry_run})
    assert status == 200, report
    result: dict[str, int] = report["results"]["quota"]
    return result


if __name__ == "__main__":
    main()
