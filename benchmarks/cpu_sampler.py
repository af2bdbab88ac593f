"""What ran on the machine while a benchmark measured users' latency (issue 22).

A thread samples, every ``every`` seconds:

- the CPU time used since the last sample by Synapse's process, PostgreSQL's client
  backends (Synapse's queries), its autovacuum workers, its other background processes
  (checkpointer, WAL writer, ...), and everything else on the machine (the probe
  client, this script): from ``/proc``;
- the database's active queries (``pg_stat_activity``: a sampling profile of what the
  database is doing).

``summary`` gives, per phase of the run (idle, and the sweep's steps and rests), the
cores each group used on average and the queries most often seen running. Used by
``sweep_latency.py --sample``. A benchmark's helper, not a test.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import psycopg2

TICKS = os.sysconf("SC_CLK_TCK")
GROUPS = ("synapse", "pg queries", "pg autovacuum", "pg background", "other")


@attrs.frozen
class Sample:
    """One interval: its bounds (epoch s), CPU seconds per group, active queries."""

    began: float
    ended: float
    cpu: dict[str, float]
    queries: tuple[str, ...]


def _stat(pid: int | str) -> list[str] | None:
    """A process's ``/proc/PID/stat`` fields after its name (state first), or None if
    it has gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _ticks(pid: int) -> tuple[int, int] | None:
    """(user + system ticks, start time in ticks since boot) of a process."""
    fields = _stat(pid)
    if fields is None:
        return None
    return int(fields[11]) + int(fields[12]), int(fields[19])


def _children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(entry)
            if fields is not None and int(fields[1]) == parent:
                found.append(int(entry))
    return found


def _pg_group(pid: int) -> str:
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return "pg background"
    if "autovacuum worker" in title:
        return "pg autovacuum"
    if re.search(r"\d+\.\d+\.\d+\.\d+\(\d+\)|\[local\]", title):
        return "pg queries"
    return "pg background"


def _machine_ticks() -> int:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    # user nice system idle iowait irq softirq steal: all but idle and iowait.
    return sum(int(v) for i, v in enumerate(fields[:8]) if i not in (3, 4))


def normalise(query: str) -> str:
    """A query's shape: literals replaced, whitespace collapsed, cut to 90 characters."""
    query = re.sub(r"'[^']*'", "'?'", query)
    query = re.sub(r"\b\d+\b", "N", query)
    return " ".join(query.split())[:90]


class Sampler:
    """Samples in a thread between ``start`` and ``stop``."""

    def __init__(
        self, synapse_pid: int, pg_data_dir: Path, pg_params: dict[str, Any], every: float = 0.5
    ) -> None:
        self._synapse = synapse_pid
        self._postmaster = int((pg_data_dir / "postmaster.pid").read_text().split()[0])
        self._params = {k: v for k, v in pg_params.items() if k != "database"}
        self._params["dbname"] = pg_params["database"]
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.samples: list[Sample] = []

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        conn = psycopg2.connect(**self._params)
        conn.autocommit = True
        cursor = conn.cursor()
        me = conn.get_backend_pid()
        with open("/proc/uptime") as uptime:
            since = int(float(uptime.read().split()[0]) * TICKS)
        last: dict[int, int] = {}
        machine = _machine_ticks()
        began = time.time()
        while not self._stop.wait(self._every):
            cpu = dict.fromkeys(GROUPS, 0.0)
            seen: dict[int, int] = {}
            for pid, group in [(self._synapse, "synapse")] + [
                (pid, _pg_group(pid)) for pid in _children(self._postmaster) if pid != me
            ]:
                ticks = _ticks(pid)
                if ticks is None:
                    continue
                used, started = ticks
                seen[pid] = used
                before = last.get(pid, 0 if started > since else used)
                cpu[group] += (used - before) / TICKS
            now_machine = _machine_ticks()
            cpu["other"] = max(0.0, (now_machine - machine) / TICKS - sum(cpu.values()))
            cursor.execute(
                "SELECT backend_type, query FROM pg_stat_activity"
                " WHERE state = 'active' AND pid <> pg_backend_pid()"
            )
            queries = tuple(
                f"[{kind}] {normalise(query or '')}" for kind, query in cursor.fetchall()
            )
            ended = time.time()
            self.samples.append(Sample(began, ended, cpu, queries))
            last, machine, began = seen, now_machine, ended
        conn.close()


def summary(
    samples: Sequence[Sample], phases: dict[str, Callable[[float, float], bool]], top: int = 6
) -> list[str]:
    """Per phase (a name and a test of a sample's bounds): cores per group, and the
    queries seen running in the most samples (average count of backends running it)."""
    lines = []
    for name, holds in phases.items():
        chosen = [s for s in samples if holds(s.began, s.ended)]
        wall = sum(s.ended - s.began for s in chosen)
        if not chosen or wall <= 0:
            continue
        cores = ", ".join(f"{g} {sum(s.cpu[g] for s in chosen) / wall:.2f}" for g in GROUPS)
        lines.append(f"  {name}: {len(chosen)} samples, {wall:.0f} s; cores: {cores}")
        seen = Counter(q for s in chosen for q in s.queries)
        for query, count in seen.most_common(top):
            lines.append(f"    {count / len(chosen):5.2f}  {query}")
    return lines
