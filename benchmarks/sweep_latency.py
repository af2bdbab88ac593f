"""Benchmark: what a sweep costs the users (R1, R2): send and ``/messages`` p99, idle vs during.

On a monolith (PostgreSQL), restored from the shared dataset aged as of now (half of
the events past ``retention.messages``), a client sends a message and paginates
``/messages`` (20 events) in a room of its own, in turns, ``--rate`` requests per
second of each; the latencies are recorded for ``--idle`` seconds with no sweep, then
while a background sweep (``POST /sweeps``: messages, then the media rules) runs to its
end. The same is done on a second restore with ``sweep_pace`` set (``--pace`` items per
second), so the unpaced and paced sweeps meet the same data.

It prints, per run: the sweep's time and items deleted, and the median and p99 of
each request idle and during the sweep, with their ratio (during / idle). A script,
not a test: figures vary with the machine and its load (printed with the figures).

    .venv/bin/python benchmarks/sweep_latency.py --rooms 300 --messages 10000 --pace 100
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.content_retention import CONTENT_MEDIA_RULES, admin_client  # noqa: E402
from benchmarks.dataset import (  # noqa: E402
    DatasetSpec,
    add_spec_arguments,
    ensure_snapshot,
    lux_module,
    restore,
    spec_from_args,
)
from tests.harness import MatrixClient, PostgresCluster  # noqa: E402

SMALL = DatasetSpec(users=100, rooms=300, messages=10_000, media=200)


class Probe:
    """A client sending and paginating in turns at a fixed rate, recording latencies."""

    def __init__(self, client: MatrixClient, room: str, rate: float) -> None:
        self._client = client
        self._room = room
        self._period = 1 / rate
        self._stop = threading.Event()
        self.send: list[float] = []
        self.paginate: list[float] = []

    def run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self._client.send_message(self._room, "probe")
            sent = time.monotonic()
            self._client.messages(self._room, limit=20)
            done = time.monotonic()
            self.send.append(sent - began)
            self.paginate.append(done - sent)
            time.sleep(max(0.0, self._period - (done - began)))

    def measure(self, seconds: float | None, until: Any = None) -> Probe:
        """Record for ``seconds`` or until ``until()`` is true; a fresh Probe's figures."""
        self._stop.clear()
        self.send, self.paginate = [], []
        thread = threading.Thread(target=self.run)
        thread.start()
        began = time.monotonic()
        while (seconds is None or time.monotonic() - began < seconds) and not (
            until is not None and until()
        ):
            time.sleep(0.5)
        self._stop.set()
        thread.join()
        return self


def p(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def one_run(
    snapshot: Path, workdir: Path, cluster: PostgresCluster, pace: float | None, args: Any
) -> dict[str, Any]:
    module = lux_module({"sweep_pace": pace, "sweep_interval": "1d"})
    server, manifest = restore(snapshot, workdir, cluster, [module], int(time.time() * 1000))
    server.start()
    try:
        admin = admin_client(server.base_url, manifest)
        room = admin.create_room()
        for i in range(100):
            admin.send_message(room, f"history {i}")
        probe = Probe(admin_client(server.base_url, manifest), room, args.rate)
        probe.measure(5)  # warm-up
        idle = probe.measure(args.idle)
        idle_send, idle_page = list(idle.send), list(idle.paginate)
        status, body = admin.lux("POST", "/sweeps", {"rules": ["messages", *CONTENT_MEDIA_RULES]})
        assert status == 202, body
        sweep_id = body["sweep_id"]
        state: dict[str, Any] = {}

        def finished() -> bool:
            _, state["sweep"] = admin.lux("GET", f"/sweeps/{sweep_id}")
            return bool(state["sweep"]["status"] != "running")

        began = time.monotonic()
        during = probe.measure(None, finished)
        took = time.monotonic() - began
        sweep = state["sweep"]
        return {
            "pace": pace,
            "sweep_s": took,
            "deleted": {k: v["deleted"] for k, v in sweep["results"].items()},
            "status": sweep["status"],
            "send": (idle_send, list(during.send)),
            "paginate": (idle_page, list(during.paginate)),
        }
    finally:
        server.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_spec_arguments(parser, SMALL)
    parser.add_argument("--pace", type=float, default=100.0, help="sweep_pace of the paced run")
    parser.add_argument("--rate", type=float, default=5.0, help="probe requests/s of each kind")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds measured idle")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="lux-bench-"))
    cluster = PostgresCluster()
    cluster.start()
    runs = []
    loads = []
    try:
        snapshot = ensure_snapshot(spec_from_args(args), "postgres", cluster)
        for i, pace in enumerate((None, args.pace)):
            loads.append(os.getloadavg()[0])
            runs.append(one_run(snapshot, workdir / f"run{i}", cluster, pace, args))
            loads.append(os.getloadavg()[0])
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(f"dataset: {spec_from_args(args)}; load average (1 min) around the runs: {loads}")
    for run in runs:
        label = "no pace" if run["pace"] is None else f"sweep_pace {run['pace']:g}/s"
        print(f"{label}: sweep {run['sweep_s']:.1f} s ({run['status']}), deleted {run['deleted']}")
        for kind in ("send", "paginate"):
            idle, during = run[kind]
            print(
                f"  {kind:8} idle median {statistics.median(idle) * 1000:6.1f} ms"
                f" p99 {p(idle, 0.99):6.1f} ms | during median"
                f" {statistics.median(during) * 1000:6.1f} ms p99 {p(during, 0.99):6.1f} ms"
                f" | p99 ratio {p(during, 0.99) / p(idle, 0.99):.2f} ({len(during)} requests)"
            )


if __name__ == "__main__":
    main()
