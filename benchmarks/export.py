"""Benchmark (R14, GDPR art. 15): a data-subject export of a user with a long history.

Starts Synapse with the module, gives one user ``--messages`` messages (spread over
``--rooms`` rooms, half of them encrypted) and ``--media-mib`` MiB of uploads (files of
``--file-mib`` MiB), then measures, in the same run:

* the export's time (``POST /users/{id}/exports`` until ``completed``) and the
  archive's size, and the download's time;
* the Synapse process's resident memory (``VmRSS``, sampled every 50 ms): its median
  while idle and its peak during the export; the difference is what the export costs;
* the send latency of another user (one message at a time, in a room of their own)
  while idle and during the export: p50 and p99, and the ratio of the p99s (the issue's
  target: at most 1.5); then idle again for as long as before, which shows how much
  the machine itself drifted during the run.

With ``--from-dataset``, the exported user is instead the heavy sender of a stored
dataset (``benchmarks/dataset``, options prefixed ``--dataset-``), restored on
PostgreSQL: the issue's run is the 1M dataset with a user whose 1,235 messages in their
room become 100,035 once the rooms are cloned 80 times; ``--media-mib`` is uploaded by
that user on top. ``--messages`` and ``--rooms`` are then unused.

Run from the repository root::

    .venv/bin/python benchmarks/export.py [--database postgres] [--messages 2000]
        [--rooms 4] [--media-mib 256] [--file-mib 4] [--idle-seconds 20]
    LUX_BENCH_DATASETS=/work/datasets .venv/bin/python benchmarks/export.py --from-dataset \
        --dataset-rooms 300 --dataset-messages 10000 --dataset-media 1000 \
        --dataset-clone-rooms 80 --dataset-heavy-sender-messages 1235 --media-mib 1024
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from benchmarks.dataset import (  # noqa: E402
    DatasetSpec,
    add_spec_arguments,
    ensure_snapshot,
    lux_module,
    restore,
    spec_from_args,
)
from tests.harness import MatrixClient, PostgresCluster, SynapseServer, uid  # noqa: E402
from tests.harness.client import q  # noqa: E402

DATASET = "dataset-"  # the prefix of the dataset's options

MIB = 1024 * 1024


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class Sampler(threading.Thread):
    """Samples the process's RSS every 50 ms into ``samples`` until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self._pid = pid
        self.samples: list[tuple[float, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.samples.append((time.monotonic(), _rss_bytes(self._pid)))
            time.sleep(0.05)

    def between(self, start: float, end: float) -> list[int]:
        return [rss for at, rss in self.samples if start <= at <= end]


class Sender(threading.Thread):
    """Another user sending one message at a time; (time, latency) of each send."""

    def __init__(self, client: MatrixClient, room_id: str) -> None:
        super().__init__(daemon=True)
        self._client = client
        self._room = room_id
        self.sends: list[tuple[float, float]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stopped.is_set():
            began = time.monotonic()
            self._client.send_message(self._room, f"ping {n}")
            self.sends.append((began, time.monotonic() - began))
            n += 1
            time.sleep(0.1)

    def between(self, start: float, end: float) -> list[float]:
        return [lat for at, lat in self.sends if start <= at <= end]


def _p(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def _fill(server: SynapseServer, user: MatrixClient, args: argparse.Namespace) -> None:
    """``--messages`` in ``--rooms`` rooms from ``user``, then their uploads."""
    other = server.register_user(uid("peer"))
    rooms = [
        user.create_room(name=f"r{i}", encrypted=i % 2 == 1, invite=[str(other.user_id)])
        for i in range(args.rooms)
    ]
    began = time.monotonic()

    def send(i: int) -> None:
        room = rooms[i % len(rooms)]
        if room in rooms[1::2]:
            user.send_encrypted(room, "Q" * 200)
        else:
            user.send_message(room, f"message {i} " + "x" * 80)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, range(args.messages)))
    print(f"sent {args.messages} messages in {time.monotonic() - began:.0f} s", flush=True)
    _upload(user, args)


def _upload(user: MatrixClient, args: argparse.Namespace) -> None:
    """``--media-mib`` of random files of ``--file-mib`` uploaded by ``user``."""
    began = time.monotonic()
    files = max(1, args.media_mib // args.file_mib)
    with ThreadPoolExecutor(4) as pool:
        list(
            pool.map(
                lambda i: user.upload_media(os.urandom(args.file_mib * MIB), "application/pdf"),
                range(files),
            )
        )
    print(f"uploaded {files} files of {args.file_mib} MiB in {time.monotonic() - began:.0f} s")


def _restored(
    workdir: Path, cluster: PostgresCluster, args: argparse.Namespace
) -> tuple[SynapseServer, MatrixClient, MatrixClient]:
    """The stored dataset's server (started), its admin and its heavy sender, who then
    uploads ``--media-mib``."""
    spec = spec_from_args(args, DATASET)
    snapshot = ensure_snapshot(spec, "postgres", cluster)
    server, manifest = restore(snapshot, workdir, cluster, [lux_module()], None)
    server.start()
    assert manifest.heavy_sender, (
        "the dataset has no heavy sender (--dataset-heavy-sender-messages)"
    )
    admin = MatrixClient(server.base_url, manifest.admin_token, manifest.admin_user_id)
    heavy = manifest.heavy_sender
    user = MatrixClient(server.base_url, manifest.tokens[heavy][0], heavy)
    _upload(user, args)
    return server, admin, user


def _history(server: SynapseServer, user_id: str) -> tuple[int, int]:
    """The messages ``user_id`` sent and the rooms they are in, counted in the database."""
    db = server.db()
    try:
        messages = db.number(
            "SELECT COUNT(*) FROM events WHERE sender = ?"
            " AND type IN ('m.room.message', 'm.room.encrypted')",
            (user_id,),
        )
        rooms = db.number("SELECT COUNT(DISTINCT room_id) FROM events WHERE sender = ?", (user_id,))
    finally:
        db.close()
    return messages, rooms


def _export(admin: MatrixClient, user_id: str) -> dict[str, Any]:
    status, body = admin.lux("POST", f"/users/{q(user_id)}/exports")
    assert status == 202, body
    path = f"/users/{q(user_id)}/exports/{body['export_id']}"
    while True:
        status, record = admin.lux("GET", path)
        if record["status"] in ("completed", "failed"):
            assert record["status"] == "completed", record
            record["path"] = path
            return dict(record)
        time.sleep(0.5)


def _download(admin: MatrixClient, path: str) -> int:
    """Stream the archive, counting its bytes (never holding it in memory)."""
    url = admin.base_url + "/_synapse/client/lux_privacy/v1" + path
    headers = {"Authorization": f"Bearer {admin.access_token}"}
    with admin.session.get(url, headers=headers, stream=True, timeout=600) as resp:
        resp.raise_for_status()
        return sum(len(chunk) for chunk in resp.iter_content(MIB))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="postgres")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rooms", type=int, default=4)
    parser.add_argument("--media-mib", type=int, default=256)
    parser.add_argument("--file-mib", type=int, default=4)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument(
        "--from-dataset",
        action="store_true",
        help="export the heavy sender of a stored dataset (--dataset-* options) instead",
    )
    add_spec_arguments(
        parser, DatasetSpec(rooms=300, messages=10_000, media=1_000, clone_rooms=80), DATASET
    )
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}, {os.cpu_count()} CPUs", flush=True)
    cluster = PostgresCluster() if args.database == "postgres" else None
    if cluster is not None:
        cluster.start()
    server: SynapseServer | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="lux-bench-") as tmp:
            if args.from_dataset:
                assert cluster is not None, "--from-dataset restores a PostgreSQL snapshot"
                server, admin, user = _restored(Path(tmp), cluster, args)
            else:
                pg = cluster.create_database(uid("bench_")) if cluster is not None else None
                server = SynapseServer(Path(tmp), args.database, pg, {}, None)
                server.start()
                admin = server.register_user("admin", admin=True)
                user = server.register_user("exported")
                _fill(server, user, args)
            messages, rooms = _history(server, str(user.user_id))
            print(f"the exported user sent {messages} messages in {rooms} rooms", flush=True)
            peer = server.register_user(uid("sender"))
            sender = Sender(peer, peer.create_room(name="elsewhere"))
            assert server.pid is not None
            sampler = Sampler(server.pid)
            sampler.start()
            sender.start()
            idle_from = time.monotonic()
            time.sleep(args.idle_seconds)
            idle_to = time.monotonic()
            record = _export(admin, str(user.user_id))
            export_to = time.monotonic()
            time.sleep(args.idle_seconds)  # idle again: the machine's own drift
            after_to = time.monotonic()
            sender.stopped.set()
            sampler.stopped.set()
            sender.join()
            seconds = (record["finished_ts"] - record["requested_ts"]) / 1000
            began = time.monotonic()
            received = _download(admin, record["path"] + "/archive")
            download_s = time.monotonic() - began
            assert received == record["bytes"], (received, record["bytes"])
            idle_rss = statistics.median(sampler.between(idle_from, idle_to))
            peak_rss = max(sampler.between(idle_to, export_to))
            idle, during = sender.between(idle_from, idle_to), sender.between(idle_to, export_to)
            after = sender.between(export_to, after_to)
            print(f"load average after: {os.getloadavg()}")
            print(
                f"export: {messages} messages in {rooms} rooms,"
                f" {args.media_mib} MiB of media ({args.database}):"
                f" {seconds:.1f} s, {record['files']} entries,"
                f" {record['bytes'] / MIB:.1f} MiB archive; download {download_s:.1f} s"
            )
            print(
                f"Synapse RSS: idle median {idle_rss / MIB:.0f} MiB, peak during export"
                f" {peak_rss / MIB:.0f} MiB: +{(peak_rss - idle_rss) / MIB:.0f} MiB"
            )
            print(
                f"other user's send: idle p50 {_p(idle, 50) * 1000:.0f} ms p99"
                f" {_p(idle, 99) * 1000:.0f} ms ({len(idle)} sends); during export p50"
                f" {_p(during, 50) * 1000:.0f} ms p99 {_p(during, 99) * 1000:.0f} ms"
                f" ({len(during)} sends); p99 ratio {_p(during, 99) / _p(idle, 99):.2f};"
                f" idle again after it p50 {_p(after, 50) * 1000:.0f} ms p99"
                f" {_p(after, 99) * 1000:.0f} ms ({len(after)} sends)"
            )
            both = idle + after
            print(
                f"against both idle windows ({len(both)} sends): p50 ratio"
                f" {_p(during, 50) / _p(both, 50):.2f}, p99 ratio"
                f" {_p(during, 99) / _p(both, 99):.2f}"
            )
    finally:
        if server is not None:
            server.stop()
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
