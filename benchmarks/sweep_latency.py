"""Benchmark: what a sweep costs the users (R1, R2): send and ``/messages`` p99, idle vs during.

On a monolith (PostgreSQL), restored from the shared dataset aged as of now (half of
the events past ``retention.messages``), a client sends a message and paginates
``/messages`` (20 events) in a room of its own, in turns, ``--rate`` requests per
second of each; the latencies are recorded for ``--idle`` seconds with no sweep, then
while a background sweep (``POST /sweeps``: messages, then the media rules) runs to its
end, or for at most ``--window`` seconds, after which the sweep is cancelled (a sweep of
a million events takes many minutes unpaced and hours paced: the latencies are then
those of its first minutes). This is done once per mode (``--modes``), each on a fresh
restore, so every mode meets the same data. A mode is ``defaults`` (the shipped
settings), ``none`` (no pace: ``sweep_adaptive_pace.enabled`` false) or settings joined
by ``+``: ``pace=N`` (``sweep_pace``), ``adaptive`` (the adaptive pace, on by default),
``slowdown=X``, ``minpace=N`` and ``rest=X`` (its ``max_slowdown``, ``min_pace`` and
``rest``), ``batch=N`` (``sweep_batch_size``: fewer events per purge).

``--workers``: the same on a worker deployment (main process, client worker, background
worker, Redis): the client talks to the client worker, and the sweep is the periodic
one of the background worker (``sweep_interval`` set so that it starts after the idle
measurement; the account, session and IP-log periods are set to 100 years so that only
the content rules have work, as in the monolith runs).

It prints, per mode: the sweep's time and items deleted, the load average before and
after, and the median and p99 of each request idle and during the sweep, with their
ratio (during / idle). ``--sample`` (monolith): also what ran meanwhile, idle, and
during the sweep in samples with and without one of its steps: the cores used by
Synapse, by PostgreSQL's backends, its autovacuum and its background processes, and the
queries most often running (``cpu_sampler.py``). A script, not a test: figures vary
with the machine and its load.

    .venv/bin/python benchmarks/sweep_latency.py --rooms 300 --messages 10000 \
        --modes none pace=100 adaptive
"""

from __future__ import annotations

import argparse
import bisect
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.content_retention import CONTENT_MEDIA_RULES, admin_client  # noqa: E402
from benchmarks.cpu_sampler import Sampler, summary  # noqa: E402
from benchmarks.dataset import (  # noqa: E402
    DatasetSpec,
    add_spec_arguments,
    ensure_snapshot,
    lux_module,
    restore,
    spec_from_args,
)
from tests.harness import (  # noqa: E402
    MatrixClient,
    PostgresCluster,
    SynapseServer,
    wait_for,
)
from tests.harness.workers import BACKGROUND_WORKER, WorkerDeployment  # noqa: E402

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
        # When (epoch s) each request began, in the order of ``send`` and ``paginate``.
        self.send_at: list[float] = []
        self.paginate_at: list[float] = []

    def run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            began_at = time.time()
            self._client.send_message(self._room, "probe")
            sent = time.monotonic()
            self._client.messages(self._room, limit=20)
            done = time.monotonic()
            self.send.append(sent - began)
            self.paginate.append(done - sent)
            self.send_at.append(began_at)
            self.paginate_at.append(began_at + sent - began)
            time.sleep(max(0.0, self._period - (done - began)))

    def measure(self, seconds: float | None, until: Any = None) -> Probe:
        """Record for ``seconds`` or until ``until()`` is true; a fresh Probe's figures."""
        self._stop.clear()
        self.send, self.paginate, self.send_at, self.paginate_at = [], [], [], []
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


def mode_config(mode: str) -> dict[str, Any]:
    """The module settings of a mode (``none``, ``pace=100+adaptive``, ``batch=20``...)."""
    config: dict[str, Any] = {}
    adaptive: dict[str, Any] = {}
    for part in mode.split("+"):
        key, _, value = part.partition("=")
        if key == "defaults":
            continue
        if key == "none":
            adaptive["enabled"] = False
        elif key == "pace":
            config["sweep_pace"] = float(value)
        elif key == "batch":
            config["sweep_batch_size"] = int(value)
        elif key == "adaptive":
            adaptive["enabled"] = True
        elif key == "slowdown":
            adaptive["max_slowdown"] = float(value)
        elif key == "minpace":
            adaptive["min_pace"] = float(value)
        elif key == "rest":
            adaptive["rest"] = float(value)
        else:
            raise SystemExit(f"unknown mode setting {part!r}")
    if adaptive:
        config["sweep_adaptive_pace"] = adaptive
    return config


def prepare(admin: MatrixClient, client: MatrixClient, args: Any) -> Probe:
    room = admin.create_room()
    for i in range(100):
        admin.send_message(room, f"history {i}")
    probe = Probe(client, room, args.rate)
    probe.measure(5)  # warm-up
    return probe


def one_run(
    snapshot: Path, workdir: Path, cluster: PostgresCluster, mode: str, args: Any
) -> dict[str, Any]:
    module = lux_module({**mode_config(mode), "sweep_interval": "1d"})
    server, manifest = restore(snapshot, workdir, cluster, [module], int(time.time() * 1000))
    log_steps(server)
    server.start()
    try:
        admin = admin_client(server.base_url, manifest)
        probe = prepare(admin, admin_client(server.base_url, manifest), args)
        load_before = os.getloadavg()[0]
        sampler = None
        if args.sample:
            assert server.pid is not None and server.pg_params is not None
            sampler = Sampler(server.pid, cluster.data_dir, server.pg_params)
            sampler.start()
        idle_at = time.time()
        idle = probe.measure(args.idle)
        idle_send, idle_page = list(idle.send), list(idle.paginate)
        sweep_at = time.time()
        status, body = admin.lux("POST", "/sweeps", {"rules": ["messages", *CONTENT_MEDIA_RULES]})
        assert status == 202, body
        sweep_id = body["sweep_id"]
        state: dict[str, Any] = {}

        def finished() -> bool:
            _, state["sweep"] = admin.lux("GET", f"/sweeps/{sweep_id}")
            return bool(state["sweep"]["status"] != "running")

        began = time.monotonic()
        during = probe.measure(args.window, finished)
        took = time.monotonic() - began
        swept_at = time.time()
        if sampler is not None:
            sampler.stop()
        if not finished():
            cancel(admin, sweep_id, finished)
        sweep = state["sweep"]
        log = server.log_text()
        return {
            "mode": mode,
            "sweep_s": took,
            "deleted": {k: v["deleted"] for k, v in sweep["results"].items()},
            "status": sweep["status"],
            "load": (load_before, os.getloadavg()[0]),
            "send": (idle_send, list(during.send)),
            "paginate": (idle_page, list(during.paginate)),
            "send_at": list(during.send_at),
            "paginate_at": list(during.paginate_at),
            "steps": step_phases(log),
            "pace_log": _pace_log(log),
            "purges": purges_per_room(log),
            "samples": sampler.samples if sampler is not None else [],
            "windows": (idle_at, sweep_at, swept_at),
        }
    finally:
        server.stop()


# The messages rule's line per purge (``features/content/messages.py``).
PURGE_LINE = re.compile(r"lux_privacy: purged (\S+) below depth")


# The pacer's lines (``sweep/pacer.py``, DEBUG): one per step, written when the step
# ends, and after a batch its rest and its pause, written when they begin.
STEP_LINE = re.compile(r"lux_privacy: step of \d+ items in ([\d.]+) s, rest ([\d.]+) s")
BATCH_REST_LINE = re.compile(
    r"lux_privacy: batch of \d+ items: [\d.]+ s besides its steps, rest ([\d.]+) s"
)
PAUSE_LINE = re.compile(r"lux_privacy: batch of \d+ in [\d.]+ s, .*, pause ([\d.]+) s")


def log_steps(server: SynapseServer) -> None:
    """Log the pacer's line per step (call before the server starts)."""
    path = server.dir / "log.config"
    config = yaml.safe_load(path.read_text())
    config.setdefault("loggers", {})["synapse_lux_privacy.sweep.pacer"] = {"level": "DEBUG"}
    path.write_text(yaml.safe_dump(config))


def step_phases(log: str) -> dict[str, list[tuple[float, float]]]:
    """The sweep's steps and rests (after steps, after batches, the controller's
    pauses) as (start, end) epoch seconds, from the pacer's lines."""
    phases: dict[str, list[tuple[float, float]]] = {"step": [], "rest": []}
    for line in log.splitlines():
        found = STEP_LINE.search(line)
        if found:
            ended = logged_time(line)
            phases["step"].append((ended - float(found[1]), ended))
            phases["rest"].append((ended, ended + float(found[2])))
        for pattern in (BATCH_REST_LINE, PAUSE_LINE):
            found = pattern.search(line)
            if found and float(found[1]) > 0:
                began = logged_time(line)
                phases["rest"].append((began, began + float(found[1])))
    phases["rest"].sort()
    return phases


def phase_of(began: float, took: float, phases: dict[str, list[tuple[float, float]]]) -> str:
    """``step`` if a request overlapped a step, ``rest`` if it fell wholly in a rest,
    else ``other`` (the batches' planning, finding and bookkeeping between steps)."""
    ended = began + took
    if overlaps(began, ended, phases["step"]):
        return "step"
    rests = phases["rest"]
    at = bisect.bisect_right(rests, (began, float("inf")))
    if at and rests[at - 1][0] <= began and ended <= rests[at - 1][1]:
        return "rest"
    return "other"


def where_slow(run: dict[str, Any], kind: str) -> str:
    """Where the requests during the sweep fell (step, rest, other) and their p99s."""
    _, during = run[kind]
    phases = [phase_of(b, t, run["steps"]) for b, t in zip(run[f"{kind}_at"], during, strict=True)]
    slowest = sorted(range(len(during)), key=lambda i: -during[i])[: max(1, len(during) // 100)]
    parts = []
    for phase in ("step", "rest", "other"):
        took = [t for t, ph in zip(during, phases, strict=True) if ph == phase]
        if took:
            worst = sum(1 for i in slowest if phases[i] == phase)
            parts.append(
                f"{phase} {len(took)} (p99 {p(took, 0.99):.1f} ms, {worst} of the slowest 1 %)"
            )
    return ", ".join(parts)


def overlaps(began: float, ended: float, intervals: Sequence[tuple[float, float]]) -> bool:
    """Whether [began, ended] overlaps one of the sorted, disjoint ``intervals`` (the
    last two starting before ``ended`` are enough to tell)."""
    at = bisect.bisect_left(intervals, (ended,))
    return any(start < ended and began < end for start, end in intervals[max(0, at - 2) : at])


def sampled(run: dict[str, Any]) -> list[str]:
    """What ran (``cpu_sampler``) idle, and during the sweep in samples that overlap one
    of its steps and in samples that overlap none (rests and the work between steps)."""
    idle_at, sweep_at, swept_at = run["windows"]
    steps = run["steps"]["step"]

    def during(b: float, e: float) -> bool:
        return sweep_at <= b and e <= swept_at

    return summary(
        run["samples"],
        {
            "idle": lambda b, e: idle_at <= b and e <= sweep_at,
            "during the sweep": during,
            "with a step": lambda b, e: during(b, e) and overlaps(b, e, steps),
            "without a step": lambda b, e: during(b, e) and not overlaps(b, e, steps),
        },
    )


def logged_time(line: str) -> float:
    """When (epoch s) a line of the server's log was written."""
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def purges_per_room(log: str) -> Counter[str]:
    """How many times the messages rule purged each room, from its line per purge."""
    return Counter(PURGE_LINE.findall(log))


def cancel(admin: MatrixClient, sweep_id: str, finished: Callable[[], bool]) -> None:
    """Stop a sweep measured for ``--window`` seconds; it ends after its current batch."""
    status, body = admin.lux("DELETE", f"/sweeps/{sweep_id}")
    assert status == 202, body
    wait_for(finished, timeout=600, what=f"the end of cancelled sweep {sweep_id}")


# The periodic sweep of the worker runs: this long after the workers start.
WORKER_SWEEP_AFTER_S = 120
LONG = "100y"


def workers_run(
    snapshot: Path, workdir: Path, cluster: PostgresCluster, mode: str, args: Any
) -> dict[str, Any]:
    """One mode on a worker deployment; the background worker's periodic sweep."""
    module = {
        **mode_config(mode),
        "allow_short_periods": True,
        "sweep_interval": f"{WORKER_SWEEP_AFTER_S}s",
        "sessions": {"inactive_logout_after": LONG},
        "accounts": {"inactive_delete_after": LONG},
        "logs": {"ip_retention": LONG},
    }
    restored, manifest = restore(
        snapshot, workdir / "restored", cluster, [], time.time_ns() // 10**6
    )
    assert restored.pg_params is not None
    deployment = start_deployment(restored, workdir, module)
    booted = time.monotonic()
    try:
        main = admin_client(deployment.main.base_url, manifest)
        client = admin_client(deployment.client_worker.base_url, manifest)
        probe = prepare(main, client, args)
        db = deployment.main.db()

        def sweep_row() -> tuple[Any, ...] | None:
            return db.query_one(
                "SELECT sweep_id, status FROM lux_privacy_sweeps WHERE instance = ?"
                " ORDER BY started_ts LIMIT 1",
                (BACKGROUND_WORKER,),
            )

        load_before = os.getloadavg()[0]
        idle = probe.measure(None, lambda: sweep_row() is not None)
        idle_send, idle_page = list(idle.send), list(idle.paginate)
        print(f"workers: idle measured {time.monotonic() - booted:.0f} s after boot")
        began = time.monotonic()
        during = probe.measure(None, lambda: (sweep_row() or (None, "running"))[1] != "running")
        took = time.monotonic() - began
        sweep_id, status = sweep_row() or (None, None)
        _, body = main.lux("GET", f"/sweeps/{sweep_id}")
        return {
            "mode": f"workers, {mode}",
            "sweep_s": took,
            "deleted": {k: v["deleted"] for k, v in body["results"].items() if v["deleted"]},
            "status": status,
            "load": (load_before, os.getloadavg()[0]),
            "send": (idle_send, list(during.send)),
            "paginate": (idle_page, list(during.paginate)),
            "pace_log": _pace_log(deployment.background_worker.log_text()),
        }
    finally:
        deployment.stop()


def start_deployment(
    restored: SynapseServer, workdir: Path, module: dict[str, Any]
) -> WorkerDeployment:
    """A started deployment on the restored database, its media store and signing key;
    tried again (new ports) when a port the harness picked was taken meanwhile."""
    for attempt in range(3):
        base = workdir / f"deployment{attempt}"
        (base / "main").mkdir(parents=True)
        shutil.copy2(restored.dir / "signing.key", base / "main" / "signing.key")
        shutil.copytree(restored.dir / "media_store", base / "main" / "media_store")
        assert restored.pg_params is not None
        deployment = WorkerDeployment(base, restored.pg_params, module)
        try:
            deployment.start()
        except RuntimeError as error:
            print(f"workers: the deployment did not start ({str(error)[:200]}); again")
            continue
        return deployment
    raise SystemExit("workers: the deployment did not start three times")


def _pace_log(log: str) -> str:
    lines = [line for line in log.splitlines() if "adaptive pace backed off" in line]
    return lines[-1].split(" - ")[-1] if lines else ""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_spec_arguments(parser, SMALL)
    parser.add_argument("--modes", nargs="+", default=["defaults", "none"], help="see above")
    parser.add_argument("--rate", type=float, default=5.0, help="probe requests/s of each kind")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds measured idle")
    parser.add_argument(
        "--window",
        type=float,
        default=None,
        help="measure the sweep for at most this many seconds, then cancel it (monolith)",
    )
    parser.add_argument("--workers", action="store_true", help="on a worker deployment (see above)")
    parser.add_argument(
        "--sample",
        action="store_true",
        help="sample CPU per process group and the database's active queries (monolith)",
    )
    args = parser.parse_args(argv)
    if args.window is not None and args.workers:
        parser.error("--window applies to the monolith runs (the workers' sweep is periodic)")
    for mode in args.modes:
        mode_config(mode)

    on_fresh_restores(args, args.modes, workers_run if args.workers else one_run, report)


# One run: (snapshot, its work folder, the cluster, the setting, the arguments) -> figures.
OneRun = Callable[[Path, Path, PostgresCluster, str, Any], dict[str, Any]]
Report = Callable[[Sequence[dict[str, Any]], Any], None]


def on_fresh_restores(args: Any, settings: Sequence[str], one: OneRun, report: Report) -> None:
    """``one`` per setting, each on its own restore of the dataset in a throwaway
    PostgreSQL cluster; each run's figures as it ends, then all of them together."""
    workdir = Path(tempfile.mkdtemp(prefix="lux-bench-"))
    cluster = PostgresCluster()
    cluster.start()
    runs = []
    try:
        snapshot = ensure_snapshot(spec_from_args(args), "postgres", cluster)
        for i, setting in enumerate(settings):
            runs.append(one(snapshot, workdir / f"run{i}", cluster, setting, args))
            report([runs[-1]], args)
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    report(runs, args)


def latency_line(kind: str, idle: Sequence[float], during: Sequence[float]) -> str:
    """A request kind's median and p99, idle and during, and their ratios."""
    return (
        f"  {kind:8} idle median {statistics.median(idle) * 1000:6.1f} ms"
        f" p99 {p(idle, 0.99):6.1f} ms | during median"
        f" {statistics.median(during) * 1000:6.1f} ms p99 {p(during, 0.99):6.1f} ms"
        f" | p99 ratio {p(during, 0.99) / p(idle, 0.99):.2f}"
        f" median ratio {statistics.median(during) / statistics.median(idle):.2f}"
        f" ({len(idle)}/{len(during)} requests)"
    )


def report(runs: Sequence[dict[str, Any]], args: Any) -> None:
    print(f"dataset: {spec_from_args(args)}")
    for run in runs:
        load = "load average (1 min) {:.2f} -> {:.2f}".format(*run["load"])
        print(
            f"{run['mode']}: sweep {run['sweep_s']:.1f} s ({run['status']}), {load},"
            f" deleted {run['deleted']} {run['pace_log']}"
        )
        if "purges" in run:  # the monolith's log holds this sweep's purges only
            purges = run["purges"]
            again = sum(1 for count in purges.values() if count > 1)
            print(
                f"  messages: {sum(purges.values())} purges in {len(purges)} rooms,"
                f" {again} rooms purged more than once"
            )
        for kind in ("send", "paginate"):
            print(latency_line(kind, *run[kind]))
            if run.get("steps", {}).get("step"):
                print(f"    during, by phase: {where_slow(run, kind)}")
        if run.get("steps", {}).get("step"):
            steps = run["steps"]
            print(
                f"  steps: {len(steps['step'])}, {sum(e - s for s, e in steps['step']):.1f} s"
                f" deleting, {sum(e - s for s, e in steps['rest']):.1f} s resting,"
                f" of {run['sweep_s']:.1f} s"
            )
        if run.get("samples"):
            print("\n".join(sampled(run)))


if __name__ == "__main__":
    main()
