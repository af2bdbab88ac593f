"""Run a real Synapse homeserver process for integration tests.

:class:`SynapseServer` writes a ``homeserver.yaml`` into its own directory, starts
``python -m synapse.app.homeserver`` and waits for ``/health``. Every started server
is tracked and stopped at interpreter exit, so nothing is left running.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import ctypes
import hashlib
import hmac
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Literal

import requests
import yaml
from signedjson.key import generate_signing_key, write_signing_keys

from .client import MatrixClient, MatrixError
from .database import Database
from .ports import free_port

SERVER_NAME = "lux.test"
MODULE_NAME = "synapse_lux_privacy.LuxPrivacyModule"
REPO_ROOT = Path(__file__).resolve().parents[2]
_LIVE: set[SynapseServer] = set()
BOOT_TIMES: list[tuple[str, float]] = []  # (description, seconds), for the test summary
_UNLIMITED = {"per_second": 100000, "burst_count": 1000000}
_TAIL_LINES = 60
# What a failed test shows of each running homeserver's log (``log_excerpt``).
_EXCERPT_LINES = 80
_LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} - ")
_EXCERPT_MARKS = (" - WARNING - ", " - ERROR - ", " - CRITICAL - ", "lux_privacy", "server_notices")
_EXCERPT_NOISE = ("synapse.storage.SQL", "synapse.access.http", "Processed request")


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``extra`` merged in recursively (``extra`` wins; lists replace)."""
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def unlimited_rate_limits() -> dict[str, Any]:
    """Synapse rate-limit settings that never trigger."""
    u = _UNLIMITED
    return {
        "rc_message": u,
        "rc_registration": u,
        "rc_registration_token_validity": u,
        "rc_login": {"address": u, "account": u, "failed_attempts": u},
        "rc_admin_redaction": u,
        "rc_joins": {"local": u, "remote": u},
        "rc_joins_per_room": u,
        "rc_3pid_validation": u,
        "rc_invites": {"per_room": u, "per_user": u, "per_issuer": u},
        "rc_third_party_invite": u,
        "rc_media_create": u,
        "rc_presence": {"per_user": u},
        "rc_delayed_event_mgmt": u,
        "rc_room_creation": u,
        "rc_reports": u,
        "rc_user_directory": u,
        "rc_profile": u,
        "rc_key_requests": u,
    }


def _tail(path: Path, lines: int = _TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(missing)"
    return "\n".join(text.splitlines()[-lines:])


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the test process dies (Linux PR_SET_PDEATHSIG)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class SynapseServer:
    """One Synapse homeserver process (server name ``lux.test``) living in ``tmp_dir``."""

    config_file_name = "homeserver.yaml"  # a worker writes its own file beside the shared one

    def __init__(
        self,
        tmp_dir: str | os.PathLike[str],
        database: Literal["sqlite", "postgres"] = "sqlite",
        pg_params: dict[str, Any] | None = None,
        module_config: dict[str, Any] | None = None,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        """Write the config. ``module_config=None`` runs Synapse *without* the module."""
        if database not in ("sqlite", "postgres"):
            raise ValueError(f"unknown database {database!r}")
        if database == "postgres" and pg_params is None:
            raise ValueError("database='postgres' needs pg_params")
        self.dir = Path(tmp_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.database = database
        self.pg_params = pg_params
        self.module_config = module_config
        self.server_name = SERVER_NAME
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.shared_secret = secrets.token_hex(16)
        self.config_path = self.dir / self.config_file_name
        self.log_path = self.dir / "homeserver.log"
        self.stdout_path = self.dir / "synapse.stdout"
        self.boot_seconds: float | None = None
        self._began = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        self._db: Database | None = None
        self.config = self._build_config(extra_config or {})
        self._write_files()

    def __repr__(self) -> str:
        return f"SynapseServer({self.database}, {self.base_url}, module={self.module_config})"

    # -- configuration ---------------------------------------------------------------

    def _build_config(self, extra: dict[str, Any]) -> dict[str, Any]:
        if self.database == "sqlite":
            db: dict[str, Any] = {
                "name": "sqlite3",
                "args": {"database": str(self.dir / "homeserver.db")},
            }
        else:
            assert self.pg_params is not None
            db = {"name": "psycopg2", "args": {**self.pg_params, "cp_min": 1, "cp_max": 5}}
        config: dict[str, Any] = {
            "server_name": self.server_name,
            "public_baseurl": self.base_url + "/",
            "pid_file": str(self.dir / "homeserver.pid"),
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [
                        {"names": ["client", "federation", "metrics"], "compress": False}
                    ],
                }
            ],
            "enable_metrics": True,
            "database": db,
            "media_store_path": str(self.dir / "media_store"),
            "signing_key_path": str(self.dir / "signing.key"),
            "log_config": str(self.dir / "log.config"),
            "registration_shared_secret": self.shared_secret,
            "macaroon_secret_key": secrets.token_hex(16),
            "form_secret": secrets.token_hex(16),
            "enable_registration": False,
            "report_stats": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "bcrypt_rounds": 4,
            "url_preview_enabled": False,
            "user_directory": {"enabled": True, "search_all_users": True},
            **unlimited_rate_limits(),
        }
        if self.module_config is not None:
            config["modules"] = [{"module": MODULE_NAME, "config": self.module_config}]
        return deep_merge(config, extra)

    def _write_files(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        key_path = self.dir / "signing.key"
        if not key_path.exists():
            with key_path.open("w") as f:
                write_signing_keys(f, [generate_signing_key("a_lux")])
        log_config = {
            "version": 1,
            "formatters": {
                "precise": {
                    "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - "
                    "%(request)s - %(message)s"
                }
            },
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "precise",
                    "filename": str(self.log_path),
                    "encoding": "utf8",
                }
            },
            "loggers": {"synapse.storage.SQL": {"level": "INFO"}},
            "root": {"level": "INFO", "handlers": ["file"]},
            "disable_existing_loggers": False,
        }
        (self.dir / "log.config").write_text(yaml.safe_dump(log_config))

    # -- process lifecycle -----------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """PID of the running Synapse process, if any."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 120) -> None:
        """Start Synapse and wait until ``/health`` answers 200."""
        self.spawn()
        self.wait_until_healthy(timeout)

    def command(self) -> list[str]:
        """The command line of the Synapse process (a worker runs another app)."""
        return [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.config_path)]

    def boot_label(self) -> str:
        """How this process is named in the boot-time summary."""
        module = "without module" if self.module_config is None else "with module"
        return f"{self.database} {module}"

    def spawn(self) -> None:
        """Start the process without waiting for it; then call :meth:`wait_until_healthy`.

        Lets several processes boot side by side (e.g. the workers of a deployment).
        """
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        self._began = time.monotonic()
        with self.stdout_path.open("ab") as out:
            self._proc = subprocess.Popen(
                self.command(),
                cwd=self.dir,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
                # PDEATHSIG follows the spawning *thread*: only use it from the main one.
                preexec_fn=_die_with_parent if _in_main_thread() else None,
            )
        _LIVE.add(self)

    def wait_until_healthy(self, timeout: float = 120) -> None:
        """Wait until ``/health`` answers 200, at most ``timeout`` s after :meth:`spawn`."""
        deadline = self._began + timeout
        while True:
            proc = self._proc
            if proc is None:
                raise RuntimeError(f"{self!r} was not started")
            if proc.poll() is not None:
                self._fail(f"Synapse exited with code {proc.returncode} during start-up")
            if time.monotonic() > deadline:
                self.kill()
                self._fail(f"Synapse did not become healthy within {timeout} s")
            try:
                if requests.get(self.base_url + "/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.boot_seconds = time.monotonic() - self._began
        BOOT_TIMES.append((self.boot_label(), self.boot_seconds))

    def _fail(self, reason: str) -> None:
        _LIVE.discard(self)
        raise RuntimeError(
            f"{reason} ({self!r}, dir {self.dir})\n"
            f"--- last {_TAIL_LINES} lines of stdout/stderr ---\n{_tail(self.stdout_path)}\n"
            f"--- last {_TAIL_LINES} lines of homeserver.log ---\n{_tail(self.log_path)}"
        )

    def stop(self) -> None:
        """SIGTERM, wait up to 20 s, then SIGKILL. Idempotent."""
        self._close_db()
        proc, self._proc = self._proc, None
        _LIVE.discard(self)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def kill(self) -> None:
        """SIGKILL at once (simulates a crash)."""
        self._close_db()
        proc, self._proc = self._proc, None
        _LIVE.discard(self)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def restart(self, timeout: float = 120) -> None:
        """Stop (gracefully) and start again with the same config and data."""
        self.stop()
        self.start(timeout)

    # -- logs, metrics, database -----------------------------------------------------

    def log_text(self) -> str:
        """The full ``homeserver.log`` written so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_excerpt(self, lines: int = _EXCERPT_LINES) -> str:
        """The last ``lines`` lines of ``homeserver.log`` that tell what went wrong: the
        module's own lines, Synapse's warnings and errors (with their tracebacks) and
        server notices, without the SQL and request logs."""
        kept: list[str] = []
        keeping = False
        for line in self.log_text().splitlines():
            if _LOG_LINE.match(line):
                keeping = any(mark in line for mark in _EXCERPT_MARKS) and not any(
                    noise in line for noise in _EXCERPT_NOISE
                )
            if keeping:
                kept.append(line)
        return "\n".join(kept[-lines:])

    def wait_for_log(self, text: str, timeout: float = 30) -> None:
        """Wait until ``text`` appears in the log, else raise ``TimeoutError``."""
        deadline = time.monotonic() + timeout
        while text not in self.log_text():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not logged within {timeout} s")
            time.sleep(0.2)

    def metrics_text(self) -> str:
        """The Prometheus metrics page (``/_synapse/metrics``)."""
        resp = requests.get(self.base_url + "/_synapse/metrics", timeout=30)
        resp.raise_for_status()
        return resp.text

    def db(self) -> Database:
        """A (cached) direct connection to this server's database."""
        if self._db is None or self._db.closed:
            if self.database == "sqlite":
                self._db = Database(sqlite_path=str(self.dir / "homeserver.db"))
            else:
                self._db = Database(pg_params=self.pg_params)
        return self._db

    def _close_db(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- users -----------------------------------------------------------------------

    def user_id(self, localpart: str) -> str:
        """``@localpart:lux.test``."""
        return f"@{localpart}:{self.server_name}"

    def client(self, access_token: str | None = None) -> MatrixClient:
        """An anonymous (or token-only) client for this server."""
        return MatrixClient(self.base_url, access_token=access_token)

    def register_user(
        self,
        localpart: str,
        password: str | None = None,
        admin: bool = False,
        displayname: str | None = None,
    ) -> MatrixClient:
        """Register via the shared-secret admin API; return a logged-in client."""
        password = password if password is not None else "pw-" + localpart
        url = self.base_url + "/_synapse/admin/v1/register"
        nonce = requests.get(url, timeout=30).json()["nonce"]
        mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
        mac.update(
            b"\x00".join(
                [
                    nonce.encode(),
                    localpart.encode(),
                    password.encode(),
                    b"admin" if admin else b"notadmin",
                ]
            )
        )
        body: dict[str, Any] = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": mac.hexdigest(),
        }
        if displayname is not None:
            body["displayname"] = displayname
        resp = requests.post(url, json=body, timeout=30)
        if resp.status_code != 200:
            data = resp.json()
            raise MatrixError(resp.status_code, data.get("errcode"), data.get("error"))
        data = resp.json()
        client = MatrixClient(
            self.base_url,
            access_token=data["access_token"],
            user_id=data["user_id"],
            device_id=data.get("device_id"),
        )
        client.password = password
        return client

    def login(
        self,
        user_id_or_localpart: str,
        password: str,
        device_id: str | None = None,
        initial_device_display_name: str | None = None,
    ) -> MatrixClient:
        """``m.login.password`` login, optionally on a named device; return the client."""
        body: dict[str, Any] = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user_id_or_localpart},
            "password": password,
        }
        if device_id is not None:
            body["device_id"] = device_id
        if initial_device_display_name is not None:
            body["initial_device_display_name"] = initial_device_display_name
        data = self.client().call("POST", "/_matrix/client/v3/login", json=body)
        client = MatrixClient(
            self.base_url,
            access_token=data["access_token"],
            user_id=data["user_id"],
            device_id=data["device_id"],
        )
        client.password = password
        return client


def live_servers() -> list[SynapseServer]:
    """The homeserver processes this test run started and has not stopped."""
    return sorted(_LIVE, key=lambda server: str(server.dir))


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.stop()
