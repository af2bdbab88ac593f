"""A throw-away PostgreSQL server for integration tests.

:class:`PostgresCluster` either runs its own ``postgres`` (``initdb`` into a temporary
directory, ``fsync=off``, ``wal_recycle=off`` as the operator guide asks of a server
whose WAL must lose deleted text, listening on a free 127.0.0.1 port) or, when the environment
variable ``LUX_TEST_POSTGRES`` holds a libpq DSN, uses that existing server. In both
cases tests get fresh databases from :meth:`PostgresCluster.create_database`.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as
``nobody`` (the equivalent of ``runuser -u nobody --``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import parse_dsn

from .ports import free_port

ENV_DSN = "LUX_TEST_POSTGRES"
_RUN_AS = "nobody"
_LIVE: set[PostgresCluster] = set()
_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def find_pg_bin_dir() -> Path:
    """Return the directory holding ``postgres``, ``initdb`` and ``pg_ctl``.

    ``postgres`` on ``PATH`` wins; otherwise the newest ``/usr/lib/postgresql/*/bin``.
    """
    on_path = shutil.which("postgres")
    if on_path:
        bin_dir = Path(os.path.realpath(on_path)).parent
        if (bin_dir / "initdb").exists() and (bin_dir / "pg_ctl").exists():
            return bin_dir
        if shutil.which("initdb") and shutil.which("pg_ctl"):
            return Path(on_path).parent
    candidates = [
        p.parent
        for p in Path("/usr/lib/postgresql").glob("*/bin/postgres")
        if p.parent.parent.name.split(".")[0].isdigit()
    ]
    if not candidates:
        raise RuntimeError(
            "PostgreSQL binaries not found: install the 'postgresql' package "
            f"(scripts/test.sh does this) or set {ENV_DSN} to a libpq DSN"
        )
    return max(candidates, key=lambda p: int(p.parent.name.split(".")[0]))


def _traversable_by_others(path: Path) -> bool:
    """True if every ancestor of ``path`` can be entered by an unprivileged user."""
    for parent in [path, *path.parents]:
        if not os.stat(parent).st_mode & 0o001:
            return False
    return True


class PostgresCluster:
    """A PostgreSQL server handing out fresh databases.

    Use :meth:`start`, then :meth:`create_database` as often as needed, then
    :meth:`stop`. Any cluster still running at interpreter exit is stopped.
    """

    def __init__(self, dsn: str | None = None) -> None:
        """``dsn``: an existing server to use; defaults to ``$LUX_TEST_POSTGRES``."""
        self.dsn: str | None = dsn if dsn is not None else (os.environ.get(ENV_DSN) or None)
        self.host = "127.0.0.1"
        self.port = 0
        self.user = "postgres"
        self.password: str | None = None
        self._admin_db = "postgres"
        self._base: Path | None = None
        self._bin: Path | None = None
        self._created: list[str] = []
        self._running = False

    # -- lifecycle -------------------------------------------------------------------

    @property
    def external(self) -> bool:
        """True when using an existing server given by DSN."""
        return self.dsn is not None

    def start(self) -> None:
        """Start the server (or check the external one is reachable)."""
        if self._running:
            return
        if self.dsn is not None:
            params = parse_dsn(self.dsn)
            self.host = params.get("host", "127.0.0.1")
            self.port = int(params.get("port", 5432))
            self.user = params.get("user", "postgres")
            self.password = params.get("password")
            self._admin_db = params.get("dbname", "postgres")
        else:
            self._start_local()
        self._running = True
        _LIVE.add(self)
        self._admin_connect().close()

    def stop(self) -> None:
        """Stop the server and delete its files (external: drop our databases)."""
        if not self._running:
            return
        self._running = False
        _LIVE.discard(self)
        if self.dsn is not None:
            for name in list(self._created):
                self.drop_database(name)
            return
        assert self._base is not None
        self._pg_ctl("-m", "immediate", "stop", check=False)
        shutil.rmtree(self._base, ignore_errors=True)
        self._base = None

    @property
    def data_dir(self) -> Path:
        """The local server's data directory (not for an external server)."""
        if self._base is None:
            raise RuntimeError("an external PostgreSQL server's data directory is not ours")
        return self._base / "data"

    @property
    def bin_dir(self) -> Path:
        """The directory of the local server's binaries (``pg_repack`` is installed there)."""
        return self._bin if self._bin is not None else find_pg_bin_dir()

    # -- databases -------------------------------------------------------------------

    def create_database(self, name: str = "synapse") -> dict[str, Any]:
        """Create an empty UTF8 / C-locale database; return its connection parameters.

        The result has ``host``, ``port``, ``user``, ``database`` (and ``password`` if
        the server needs one), ready to use as psycopg2 / Synapse ``database.args``.
        On an external server the name gets a random suffix so runs never collide.
        """
        if self.dsn is not None:
            name = f"{name}_{secrets.token_hex(4)}"
        if not _NAME_RE.match(name):
            raise ValueError(f"invalid database name {name!r}")
        conn = self._admin_connect()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    sql.SQL(
                        "CREATE DATABASE {} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' "
                        "TEMPLATE template0"
                    ).format(sql.Identifier(name))
                )
        finally:
            conn.close()
        self._created.append(name)
        return self.params(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting any clients still using it."""
        conn = self._admin_connect()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        finally:
            conn.close()
        if name in self._created:
            self._created.remove(name)

    def params(self, database: str) -> dict[str, Any]:
        """Connection parameters for ``database`` on this server."""
        params: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "database": database,
        }
        if self.password is not None:
            params["password"] = self.password
        return params

    def _admin_connect(self) -> Any:
        params = self.params(self._admin_db)
        params["dbname"] = params.pop("database")
        conn = psycopg2.connect(connect_timeout=10, **params)
        conn.autocommit = True
        return conn

    # -- local server ----------------------------------------------------------------

    def _start_local(self) -> None:
        self._bin = find_pg_bin_dir()
        parent = Path(tempfile.gettempdir())
        if os.geteuid() == 0 and not _traversable_by_others(parent):
            parent = Path("/tmp")
        self._reap_stale(parent)
        self._base = Path(tempfile.mkdtemp(prefix="lux-pg-", dir=parent))
        (self._base / "owner.pid").write_text(str(os.getpid()))
        if os.geteuid() == 0:
            entry = pwd.getpwnam(_RUN_AS)
            os.chown(self._base, entry.pw_uid, entry.pw_gid)
        self._run(
            str(self._bin / "initdb"),
            "-D",
            str(self._base / "data"),
            "-E",
            "UTF8",
            "--locale=C",
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
        )
        last_error = ""
        for _attempt in range(3):
            self.port = free_port()
            options = (
                f"-p {self.port} -h 127.0.0.1 -k {self._base} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
                " -c wal_recycle=off"
            )
            result = self._pg_ctl("-w", "-t", "60", "-o", options, "start", check=False)
            if result.returncode == 0:
                return
            last_error = result.stdout + result.stderr + self._log_tail()
        shutil.rmtree(self._base, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL failed to start:\n{last_error}")

    def _reap_stale(self, parent: Path) -> None:
        """Stop clusters left behind by test processes that were killed (SIGKILL)."""
        for base in parent.glob("lux-pg-*"):
            try:
                owner = int((base / "owner.pid").read_text())
                os.kill(owner, 0)
                continue  # its owner is still alive
            except ProcessLookupError:
                pass
            except (OSError, ValueError):
                continue  # not ours, or not fully set up yet
            self._base = base
            self._pg_ctl("-m", "immediate", "stop", check=False)
            shutil.rmtree(base, ignore_errors=True)
        self._base = None

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert self._bin is not None and self._base is not None
        return self._run(
            str(self._bin / "pg_ctl"),
            "-D",
            str(self._base / "data"),
            "-l",
            str(self._base / "postgres.log"),
            *args,
            check=check,
        )

    def _run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL tool, as ``nobody`` when we are root."""
        assert self._base is not None
        kwargs: dict[str, Any] = {}
        if os.geteuid() == 0:
            entry = pwd.getpwnam(_RUN_AS)
            kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        result = subprocess.run(
            cmd,
            cwd=self._base,
            capture_output=True,
            text=True,
            timeout=120,
            start_new_session=True,
            check=False,
            **kwargs,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        return result

    def _log_tail(self, lines: int = 40) -> str:
        if self._base is None:
            return ""
        try:
            text = (self._base / "postgres.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@atexit.register
def _stop_all() -> None:
    for cluster in list(_LIVE):
        with contextlib.suppress(Exception):
            cluster.stop()
