"""Benchmark (R10): user directory search latency with and without the module, same run.

Two Synapse servers on the same machine and database engine, each with the same 10,000
users (default), are searched alternately with the same terms:

* ``without``: Synapse alone;
* ``with``: Synapse with ``synapse_lux_privacy`` (``require_consent: true``), half of the
  users consenting (every even one, set through the module's admin API).

Users are created fast, in-process, by ``BulkUserLoader``: a benchmark-only Synapse
module (loaded by both servers) that calls Synapse's registration handler through
``ModuleApi.register_user``, a batch per HTTP request, instead of 10,000 HTTP
registrations. Each user's display name is "<Given> <Family>" from two lists of 100
names, so a given name matches 100 users and a full name one.

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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from synapse.module_api import (
    DirectServeJsonResource,
    ModuleApi,
    SynapseRequest,
    parse_json_object_from_request,
)

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

LOADER_PATH = "/_synapse/client/lux_bench/users"
GIVEN = [f"Given{chr(65 + i // 26)}{chr(97 + i % 26)}" for i in range(100)]
FAMILY = [f"Family{chr(65 + i // 26)}{chr(97 + i % 26)}" for i in range(100)]
BATCH = 500


def localpart(i: int) -> str:
    return f"bench{i:06d}"


def display_name(i: int) -> str:
    return f"{GIVEN[i % 100]} {FAMILY[(i // 100) % 100]}"


class BulkUserLoader:
    """Benchmark-only Synapse module: ``POST {"start": i, "count": n}`` registers users."""

    def __init__(self, config: Mapping[str, Any], api: ModuleApi) -> None:
        api.register_web_resource(LOADER_PATH, _LoaderResource(api))

    @staticmethod
    def parse_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
        return config


class _LoaderResource(DirectServeJsonResource):
    isLeaf = True

    def __init__(self, api: ModuleApi) -> None:
        super().__init__()
        self._api = api

    async def _async_render_POST(self, request: SynapseRequest) -> tuple[int, Any]:
        body = parse_json_object_from_request(request)
        start, count = int(body["start"]), int(body["count"])
        for i in range(start, start + count):
            await self._api.register_user(localpart(i), displayname=display_name(i))
        return 200, {"registered": count}


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    from tests.harness import PostgresCluster, SynapseServer, uid

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--searches", type=int, default=1_000)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()

    loader = {"module": "benchmarks.directory_search.BulkUserLoader", "config": {}}
    lux = {"module": "synapse_lux_privacy.LuxPrivacyModule", "config": {}}
    cluster = PostgresCluster() if args.database == "postgres" else None
    if cluster is not None:
        cluster.start()
    servers: dict[str, SynapseServer] = {}
    with tempfile.TemporaryDirectory(prefix="lux-bench-") as tmp:
        try:
            for name, modules in (("without", [loader]), ("with", [loader, lux])):
                pg = cluster.create_database(uid("bench_")) if cluster is not None else None
                server = SynapseServer(
                    Path(tmp) / name, args.database, pg, None, {"modules": modules}
                )  # type: ignore[arg-type]
                server.start()
                servers[name] = server
            _run(servers, args.users, args.searches)
        finally:
            for server in servers.values():
                server.stop()
            if cluster is not None:
                cluster.stop()


def _run(servers: Mapping[str, Any], users: int, searches: int) -> None:
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        batches = [
            (server, start, min(BATCH, users - start))
            for server in servers.values()
            for start in range(0, users, BATCH)
        ]
        list(pool.map(lambda b: _load(*b), batches))
    print(f"registered {users} users on each server in {time.monotonic() - began:.1f} s")

    began = time.monotonic()
    with_module = servers["with"]
    admin = with_module.register_user("benchadmin", admin=True)

    def consent(i: int) -> None:
        user_id = f"@{localpart(i)}:{with_module.server_name}"
        status, body = admin.lux("PUT", f"/users/{user_id}/directory_consent", {"consent": True})
        assert status == 200, body

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(consent, range(0, users, 2)))
    print(f"consent given to {len(range(0, users, 2))} users in {time.monotonic() - began:.1f} s")

    rng = random.Random(42)
    terms = [
        rng.choice(GIVEN) if rng.random() < 0.5 else display_name(rng.randrange(min(users, 10_000)))
        for _ in range(200)
    ]
    clients = {name: server.register_user("benchsearcher") for name, server in servers.items()}
    for name in servers:  # warm-up: every term once on each server
        for term in terms:
            clients[name].directory_search(term, limit=10)

    timings: dict[str, list[float]] = {name: [] for name in servers}
    found: dict[str, list[int]] = {name: [] for name in servers}
    order = list(servers)
    for n in range(searches):
        term = terms[n % len(terms)]
        for name in order if n % 2 == 0 else reversed(order):  # alternate, against drift
            elapsed, count = _search(clients[name].directory_search, term)
            timings[name].append(elapsed)
            found[name].append(count)

    print(f"\n{searches} searches per server (limit 10, terms: 50% given names, 50% full names)")
    print(f"{'':>10} {'median ms':>10} {'p99 ms':>8} {'mean results':>13}")
    for name in servers:
        print(
            f"{name:>10} {statistics.median(timings[name]) * 1000:10.2f}"
            f" {_percentile(timings[name], 0.99) * 1000:8.2f}"
            f" {statistics.mean(found[name]):13.2f}"
        )
    median_ratio = statistics.median(timings["with"]) / statistics.median(timings["without"])
    p99_ratio = _percentile(timings["with"], 0.99) / _percentile(timings["without"], 0.99)
    print(f"\nratio with/without: median {median_ratio:.2f}, p99 {p99_ratio:.2f}")


def _load(server: Any, start: int, count: int) -> None:
    response = server.client().session.post(
        server.base_url + LOADER_PATH, json={"start": start, "count": count}, timeout=600
    )
    response.raise_for_status()


def _search(search: Callable[..., list[str]], term: str) -> tuple[float, int]:
    began = time.perf_counter()
    results = search(term, limit=10)
    return time.perf_counter() - began, len(results)


if __name__ == "__main__":
    main()
