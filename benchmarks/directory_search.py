"""Benchmark (R10): user directory search latency with and without the module, same run.

Two Synapse servers on the same machine and database engine, each with the same 10,000
users (default), are searched alternately with the same terms:

* ``without``: Synapse alone;
* ``with``: Synapse with ``synapse_lux_privacy`` (``require_consent: true``), half of the
  users consenting (every even one, set through the module's admin API).

The users come from the shared dataset generator (``benchmarks/dataset``): a dataset
of ``--users`` users (a few small rooms, no messages) built once through Synapse's
module API and restored on both servers. Each user's display name is
"<Given> <Family>" from two lists of 100 names, so a given name matches 100 users and
a full name one; half of the users consented to the national directory (through the
module's admin API, when the dataset was built).

Prints the median and p99 latency of each server, their ratio, and how many results a
search returned on average. Run from the repository root::

    .venv/bin/python benchmarks/directory_search.py [--users 10000] [--searches 1000]
        [--database sqlite|postgres]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from benchmarks.dataset import DatasetSpec, ensure_snapshot, lux_module, restore  # noqa: E402
from benchmarks.dataset.build import GIVEN, display_name  # noqa: E402
from tests.harness import MatrixClient, PostgresCluster, SynapseServer  # noqa: E402


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--searches", type=int, default=1_000)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()

    spec = DatasetSpec(users=args.users, rooms=10, messages=0, media=0, devices_per_user=1)
    cluster = PostgresCluster() if args.database == "postgres" else None
    if cluster is not None:
        cluster.start()
    servers: dict[str, SynapseServer] = {}
    with tempfile.TemporaryDirectory(prefix="lux-bench-") as tmp:
        try:
            snapshot = ensure_snapshot(spec, args.database, cluster)
            for name, modules in (("without", []), ("with", [lux_module()])):
                server, manifest = restore(snapshot, Path(tmp) / name, cluster, modules, None)
                server.start()
                servers[name] = server
            searcher = manifest.users[0]
            clients = {
                name: MatrixClient(server.base_url, manifest.tokens[searcher][0], searcher)
                for name, server in servers.items()
            }
            print(f"{args.users} users, {round(args.users * spec.consenting_users)} consenting")
            _run(clients, args.users, args.searches)
        finally:
            for server in servers.values():
                server.stop()
            if cluster is not None:
                cluster.stop()


def _run(clients: Mapping[str, MatrixClient], users: int, searches: int) -> None:
    rng = random.Random(42)
    terms = [
        rng.choice(GIVEN) if rng.random() < 0.5 else display_name(rng.randrange(min(users, 10_000)))
        for _ in range(200)
    ]
    for name in clients:  # warm-up: every term once on each server
        for term in terms:
            clients[name].directory_search(term, limit=10)

    timings: dict[str, list[float]] = {name: [] for name in clients}
    found: dict[str, list[int]] = {name: [] for name in clients}
    order = list(clients)
    for n in range(searches):
        term = terms[n % len(terms)]
        for name in order if n % 2 == 0 else reversed(order):  # alternate, against drift
            elapsed, count = _search(clients[name].directory_search, term)
            timings[name].append(elapsed)
            found[name].append(count)

    print(f"\n{searches} searches per server (limit 10, terms: 50% given names, 50% full names)")
    print(f"{'':>10} {'median ms':>10} {'p99 ms':>8} {'mean results':>13}")
    for name in clients:
        print(
            f"{name:>10} {statistics.median(timings[name]) * 1000:10.2f}"
            f" {_percentile(timings[name], 0.99) * 1000:8.2f}"
            f" {statistics.mean(found[name]):13.2f}"
        )
    median_ratio = statistics.median(timings["with"]) / statistics.median(timings["without"])
    p99_ratio = _percentile(timings["with"], 0.99) / _percentile(timings["without"], 0.99)
    print(f"\nratio with/without: median {median_ratio:.2f}, p99 {p99_ratio:.2f}")


def _search(search: Callable[..., list[str]], term: str) -> tuple[float, int]:
    began = time.perf_counter()
    results = search(term, limit=10)
    return time.perf_counter() - began, len(results)


if __name__ == "__main__":
    main()
