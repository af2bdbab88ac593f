"""Benchmark (R11, R12): the cost of activity tracking on authenticated requests.

The module refreshes each user's last activity on every authenticated request
(Synapse's ``is_user_expired`` callback): a dict lookup in memory, and at most one
batched write per user per few minutes. This measures what that costs, in the same run:

* ``without``: Synapse alone;
* ``with``: Synapse with ``synapse_lux_privacy`` (default configuration).

Both servers run on the same machine and database engine. Each gets the same 20 users
(default); 20 concurrent clients (processes x threads, so that the client is not one
Python interpreter's bottleneck) each loop on ``GET /account/whoami`` and an incremental
``GET /sync?timeout=0``, for a fixed time per round. Rounds alternate between the two
servers (without, with, without, with, ...) so that drift affects both alike.

Also prints the in-process cost of one call of the callback (the tracker alone).

Prints requests per second of each round, the median per server and the ratio
``with / without``. Run from the repository root::

    .venv/bin/python benchmarks/activity_overhead.py [--clients 20] [--seconds 10]
        [--rounds 3] [--database sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
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

from synapse_lux_privacy.features.accounts.tracker import ActivityTracker  # noqa: E402
from tests.harness import MatrixClient, PostgresCluster, SynapseServer, uid  # noqa: E402

PROCESSES = 4


def _client_loop(base_url: str, token: str, since: str, stop_at: float) -> int:
    """One client: whoami and incremental sync, alternately, until ``stop_at``."""
    client = MatrixClient(base_url, access_token=token)
    done = 0
    while time.time() < stop_at:
        client.whoami()
        since = client.sync(since=since, timeout=0)["next_batch"]
        done += 2
    return done


def _process(base_url: str, sessions: list[tuple[str, str]], stop_at: float) -> int:
    """One client process: a thread per session."""
    with ThreadPoolExecutor(len(sessions)) as pool:
        futures = [pool.submit(_client_loop, base_url, t, s, stop_at) for t, s in sessions]
        return sum(f.result() for f in futures)


def _round(server: SynapseServer, sessions: list[tuple[str, str]], seconds: float) -> float:
    """Requests per second of all clients together during one round."""
    start = time.time() + 1.0  # let every process start first
    stop_at = start + seconds
    groups = [sessions[i::PROCESSES] for i in range(PROCESSES)]
    with multiprocessing.Pool(PROCESSES) as pool:
        pending = [pool.apply_async(_process, (server.base_url, g, stop_at)) for g in groups if g]
        total = sum(p.get() for p in pending)
    return total / (time.time() - start)


def _sessions(server: SynapseServer, clients: int) -> list[tuple[str, str]]:
    """Register the users; return (access token, sync token) per client."""
    sessions = []
    for _ in range(clients):
        user = server.register_user(uid("bench"))
        assert user.access_token is not None
        sessions.append((user.access_token, user.sync()["next_batch"]))
    return sessions


def _callback_cost(calls: int = 1_000_000) -> float:
    """Nanoseconds per ``is_user_expired`` call of the tracker (users active in turn)."""

    class NoWriter:
        async def record_users(self, activity: Any) -> None:
            return None

    clock = [0]
    tracker = ActivityTracker(NoWriter(), lambda: clock[0], lambda _user: True)
    users = [f"@user{i}:bench" for i in range(1000)]

    async def run() -> float:
        began = time.perf_counter()
        for i in range(calls):
            await tracker.is_user_expired(users[i % 1000])
        return (time.perf_counter() - began) * 1e9 / calls

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()

    print(f"is_user_expired callback alone: {_callback_cost():.0f} ns per call")
    cluster = PostgresCluster() if args.database == "postgres" else None
    if cluster is not None:
        cluster.start()
    servers: dict[str, SynapseServer] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="lux-bench-") as tmp:
            for name, module in (("without", None), ("with", {})):
                pg = cluster.create_database(uid("bench_")) if cluster is not None else None
                servers[name] = SynapseServer(
                    Path(tmp) / name,
                    args.database,
                    pg,
                    module,
                    None,  # type: ignore[arg-type]
                )
                servers[name].start()
            sessions = {name: _sessions(s, args.clients) for name, s in servers.items()}
            for name, server in servers.items():  # warm-up
                _round(server, sessions[name], min(3.0, args.seconds))
            rates: dict[str, list[float]] = {"without": [], "with": []}
            for n in range(args.rounds):
                for name, server in servers.items():
                    rate = _round(server, sessions[name], args.seconds)
                    rates[name].append(rate)
                    print(f"round {n + 1} {name:>7} module: {rate:8.1f} requests/s")
            medians = {name: statistics.median(r) for name, r in rates.items()}
            for name, median in medians.items():
                print(f"median  {name:>7} module: {median:8.1f} requests/s")
            print(
                f"ratio with/without: {medians['with'] / medians['without']:.3f}"
                f" ({args.clients} clients, {args.database}, whoami + sync?timeout=0)"
            )
    finally:
        for server in servers.values():
            server.stop()
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
