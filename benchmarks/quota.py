"""Benchmark (R4): upload-path overhead of the quota, and eviction speed.

Two Synapse servers on the same machine and database engine:

* ``without``: Synapse alone;
* ``with``: Synapse with ``synapse_lux_privacy``, a 5 GiB default quota (so every upload
  goes through the module's media callbacks) and the eviction loop slowed to 1 h so
  that only the measured sweep evicts.

1. Upload path: the same user uploads 100 KiB files to both servers alternately;
   median and p99 latency of each, and their ratio.
2. Eviction: on ``with``, one user gets ``--items`` items (half 1 KiB uploads, half
   text messages), then a 1-byte quota, so every item is over it; a dry-run sweep
   brings the accounting up to date, then a real sweep of the ``quota`` rule alone
   is timed: items evicted per second (uploads deleted through Synapse's media
   repository, messages expunged through its event expiry).

Run from the repository root::

    .venv/bin/python benchmarks/quota.py [--uploads 500] [--items 10000]
        [--database sqlite|postgres]

(``--items 0`` measures the upload path only.)
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

UPLOAD_SIZE = 100 * 1024
LUX_CONFIG = {"quota": {"default_bytes": "5G", "eviction_interval": "1h"}}


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    from tests.harness import PostgresCluster, SynapseServer, uid

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=500)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()

    cluster = PostgresCluster() if args.database == "postgres" else None
    if cluster is not None:
        cluster.start()
    servers: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="lux-bench-") as tmp:
        try:
            for name, module_config in (("without", None), ("with", LUX_CONFIG)):
                pg = cluster.create_database(uid("bench_")) if cluster is not None else None
                server = SynapseServer(Path(tmp) / name, args.database, pg, module_config)
                server.start()
                servers[name] = server
            print(f"database: {args.database}")
            _upload_latency(servers, args.uploads)
            if args.items:
                _eviction_speed(servers["with"], args.items)
        finally:
            for server in servers.values():
                server.stop()
            if cluster is not None:
                cluster.stop()


def _upload_latency(servers: dict[str, Any], uploads: int) -> None:
    clients = {name: server.register_user("benchuploader") for name, server in servers.items()}
    for client in clients.values():  # warm-up
        for _ in range(20):
            client.upload_media(os.urandom(UPLOAD_SIZE))
    timings: dict[str, list[float]] = {name: [] for name in servers}
    order = list(servers)
    for n in range(uploads):
        data = os.urandom(UPLOAD_SIZE)
        for name in order if n % 2 == 0 else reversed(order):  # alternate, against drift
            began = time.perf_counter()
            clients[name].upload_media(data)
            timings[name].append(time.perf_counter() - began)

    print(f"\n{uploads} uploads of {UPLOAD_SIZE // 1024} KiB per server")
    print(f"{'':>10} {'median ms':>10} {'p99 ms':>8}")
    for name in servers:
        print(
            f"{name:>10} {statistics.median(timings[name]) * 1000:10.2f}"
            f" {_percentile(timings[name], 0.99) * 1000:8.2f}"
        )
    median_ratio = statistics.median(timings["with"]) / statistics.median(timings["without"])
    p99_ratio = _percentile(timings["with"], 0.99) / _percentile(timings["without"], 0.99)
    print(f"ratio with/without: median {median_ratio:.2f}, p99 {p99_ratio:.2f}")


def _eviction_speed(server: Any, items: int) -> None:
    admin = server.register_user("benchadmin", admin=True)
    admin.timeout = 3600  # the sweep answers when it has finished
    user = server.register_user("benchhoarder")
    room = user.create_room()
    began = time.monotonic()
    uploads, messages = items // 2, items - items // 2

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda _: user.upload_media(os.urandom(1024)), range(uploads)))
    for i in range(messages):  # one at a time: parallel sends to one room fork its DAG
        user.send_message(room, f"message {i} " + "m" * 200)
    print(
        f"\ncreated {uploads} uploads and {messages} messages in {time.monotonic() - began:.1f} s"
    )

    status, body = admin.lux("PUT", f"/users/{user.user_id}/quota", {"quota_bytes": 1})
    assert status == 200, body
    began = time.monotonic()
    forecast = _sweep(admin, dry_run=True)
    print(
        f"dry run (accounting caught up, {forecast['candidates']} candidates):"
        f" {time.monotonic() - began:.1f} s"
    )
    began = time.monotonic()
    done = _sweep(admin, dry_run=False)
    elapsed = time.monotonic() - began
    print(
        f"eviction: {done['deleted']} items ({done['bytes']} bytes) in {elapsed:.1f} s:"
        f" {done['deleted'] / elapsed:.0f} items/s"
    )
    status, quota = admin.lux("GET", f"/users/{user.user_id}/quota")
    print(f"usage left (what expunged messages still store): {quota['used_bytes']} bytes")


def _sweep(admin: Any, dry_run: bool) -> dict[str, int]:
    status, report = admin.lux("POST", "/sweep", {"rules": ["quota"], "dry_run": dry_run})
    assert status == 200, report
    result: dict[str, int] = report["results"]["quota"]
    return result


if __name__ == "__main__":
    main()
