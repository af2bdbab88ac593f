"""A Synapse worker deployment for integration tests: Redis, a main process and two workers.

:class:`WorkerDeployment` runs, on one PostgreSQL database:

* :class:`RedisServer` - Debian's ``redis-server`` on a free 127.0.0.1 port, nothing on disk;
* the main process - a :class:`SynapseServer` whose ``homeserver.yaml`` is the *shared*
  configuration (``instance_map``, ``redis``, ``run_background_tasks_on``, the module);
* ``client_worker`` - a ``synapse.app.generic_worker`` serving client traffic;
* ``background_worker`` - a generic worker named in ``run_background_tasks_on``, so the
  only process that runs Synapse's background tasks and the module's periodic sweep, and
  the one that serves sweeps requested through the module's admin API (its first
  listener serves that API and ``/health``, nothing of Synapse's client API).

Every worker reads the shared ``homeserver.yaml`` and then its own ``worker.yaml``
(``-c shared -c worker``), exactly as in production (``config/workers/``). Every process
has a replication listener on loopback listed in ``instance_map``. Clients made by
:meth:`WorkerDeployment.register_user` talk to the client worker; :meth:`WorkerDeployment.on`
points the same session at another process. :meth:`WorkerDeployment.stop` stops every
process, and anything still running at interpreter exit is stopped too.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .client import MatrixClient
from .ports import free_port
from .synapse_server import SynapseServer, deep_merge

CLIENT_WORKER = "client_worker"
BACKGROUND_WORKER = "background_worker"
MAIN_INSTANCE = "main"  # Synapse's name for the main process in instance_map
_LOOPBACK = "127.0.0.1"
_LIVE_REDIS: set[RedisServer] = set()


def find_redis_server() -> str:
    """The ``redis-server`` binary (Debian's ``redis-server`` package)."""
    found = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin:/usr/sbin")
    if found is None:
        raise RuntimeError(
            "redis-server not found: install Debian's 'redis-server' package "
            "(scripts/test.sh does this)"
        )
    return found


class RedisServer:
    """A throw-away ``redis-server`` on loopback: no snapshots, no append-only file."""

    def __init__(self, tmp_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(tmp_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.host = _LOOPBACK
        self.port = free_port()
        self.log_path = self.dir / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"RedisServer({self.host}:{self.port})"

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 20) -> None:
        """Start ``redis-server`` and wait until it answers PING."""
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        command = [
            find_redis_server(),
            "--bind", self.host,
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.dir),
            "--logfile", str(self.log_path),
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            command,
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _LIVE_REDIS.add(self)
        deadline = time.monotonic() + timeout
        while not self._answers_ping():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
                raise RuntimeError(f"{self!r} did not start:\n{log[-4000:]}")
            time.sleep(0.05)

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM, wait up to 10 s, then SIGKILL. Idempotent."""
        proc, self._proc = self._proc, None
        _LIVE_REDIS.discard(self)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _replication_listener(port: int) -> dict[str, Any]:
    return {
        "port": port,
        "bind_addresses": [_LOOPBACK],
        "type": "http",
        "tls": False,
        "resources": [{"names": ["replication"], "compress": False}],
    }


class MainProcess(SynapseServer):
    """The main process: a SynapseServer plus a replication listener on loopback."""

    def __init__(
        self,
        tmp_dir: str | os.PathLike[str],
        pg_params: dict[str, Any],
        module_config: dict[str, Any] | None,
        shared_config: dict[str, Any],
        replication_port: int,
    ) -> None:
        self.replication_port = replication_port  # read by _build_config, called by super
        super().__init__(tmp_dir, "postgres", pg_params, module_config, shared_config)

    def _build_config(self, extra: dict[str, Any]) -> dict[str, Any]:
        config = super()._build_config(extra)
        config["listeners"].append(_replication_listener(self.replication_port))
        return config

    def boot_label(self) -> str:
        return f"{self.database} main process (workers)"


class SynapseWorker(SynapseServer):
    """A ``synapse.app.generic_worker`` reading the main process's config, then its own.

    Its first listener (``base_url``) serves the client API when ``serves_clients``;
    otherwise only ``/health`` and the module's admin API (Synapse adds a module's web
    resources to every HTTP listener), as ``config/workers/background_worker.yaml``.
    """

    config_file_name = "worker.yaml"

    def __init__(
        self,
        tmp_dir: str | os.PathLike[str],
        main: MainProcess,
        name: str,
        replication_port: int,
        serves_clients: bool,
    ) -> None:
        # Read by _build_config, which SynapseServer.__init__ calls.
        self.main = main
        self.worker_name = name
        self.replication_port = replication_port
        self.serves_clients = serves_clients
        super().__init__(tmp_dir, main.database, main.pg_params, main.module_config)
        self.shared_secret = main.shared_secret

    def __repr__(self) -> str:
        return f"SynapseWorker({self.worker_name}, {self.base_url})"

    def _build_config(self, extra: dict[str, Any]) -> dict[str, Any]:
        served = "client" if self.serves_clients else "health"
        listeners = [
            {
                "port": self.port,
                "bind_addresses": [_LOOPBACK],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": [served], "compress": False}],
            },
            _replication_listener(self.replication_port),
        ]
        return {
            "worker_app": "synapse.app.generic_worker",
            "worker_name": self.worker_name,
            "worker_listeners": listeners,
            "worker_log_config": str(self.dir / "log.config"),
            **extra,
        }

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "synapse.app.generic_worker",
            "-c", str(self.main.config_path),
            "-c", str(self.config_path),
        ]  # fmt: skip

    def boot_label(self) -> str:
        return f"{self.database} {self.worker_name}"


class WorkerDeployment:
    """Redis, a main process, a client worker and a background-tasks worker (PostgreSQL).

    ``module_config=None`` runs without the module; ``extra_config`` is merged into the
    shared ``homeserver.yaml`` (read by every process).
    """

    def __init__(
        self,
        tmp_dir: str | os.PathLike[str],
        pg_params: dict[str, Any],
        module_config: dict[str, Any] | None = None,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        base = Path(tmp_dir)
        self.redis = RedisServer(base / "redis")
        ports = {name: free_port() for name in (MAIN_INSTANCE, CLIENT_WORKER, BACKGROUND_WORKER)}
        shared: dict[str, Any] = {
            "instance_map": {
                name: {"host": _LOOPBACK, "port": port} for name, port in ports.items()
            },
            "redis": {"enabled": True, "host": self.redis.host, "port": self.redis.port},
            "run_background_tasks_on": BACKGROUND_WORKER,
        }
        shared = deep_merge(shared, extra_config or {})
        self.main = MainProcess(
            base / "main", pg_params, module_config, shared, ports[MAIN_INSTANCE]
        )
        self.client_worker = SynapseWorker(
            base / CLIENT_WORKER, self.main, CLIENT_WORKER, ports[CLIENT_WORKER], True
        )
        self.background_worker = SynapseWorker(
            base / BACKGROUND_WORKER, self.main, BACKGROUND_WORKER, ports[BACKGROUND_WORKER], False
        )
        self.boot_seconds: float | None = None

    @property
    def processes(self) -> list[SynapseServer]:
        """The main process, then the client worker, then the background worker."""
        return [self.main, self.client_worker, self.background_worker]

    @property
    def workers(self) -> list[SynapseWorker]:
        """The two workers."""
        return [self.client_worker, self.background_worker]

    def start(self, timeout: float = 120) -> None:
        """Start Redis, the main process (it prepares the database), then both workers."""
        began = time.monotonic()
        try:
            self.redis.start()
            self.main.start(timeout)
            for worker in self.workers:
                worker.spawn()
            for worker in self.workers:
                worker.wait_until_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        self.boot_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Stop the workers, the main process and Redis. Idempotent."""
        for process in reversed(self.processes):
            with contextlib.suppress(Exception):
                process.stop()
        self.redis.stop()

    def __enter__(self) -> WorkerDeployment:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- clients ---------------------------------------------------------------------

    def register_user(
        self, localpart: str, admin: bool = False, displayname: str | None = None
    ) -> MatrixClient:
        """Register through the main process; the client talks to the client worker."""
        client = self.main.register_user(localpart, admin=admin, displayname=displayname)
        return self.on(client, self.client_worker)

    @staticmethod
    def on(client: MatrixClient, process: SynapseServer) -> MatrixClient:
        """The same session (token, device), talking to another process."""
        other = MatrixClient(
            process.base_url, client.access_token, client.user_id, client.device_id
        )
        other.password = client.password
        return other

    # -- logs ------------------------------------------------------------------------

    def log_lines(self, marker: str) -> Iterator[tuple[SynapseServer, str]]:
        """Every log line containing ``marker``, with the process that wrote it."""
        for process in self.processes:
            for line in process.log_text().splitlines():
                if marker in line:
                    yield process, line


@atexit.register
def _stop_all_redis() -> None:
    for server in list(_LIVE_REDIS):
        with contextlib.suppress(Exception):
            server.stop()
