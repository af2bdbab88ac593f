"""Shared pytest fixtures: PostgreSQL, Synapse homeservers and Matrix clients.

* ``postgres_cluster`` (session) - started lazily, only when a PostgreSQL test runs.
* ``synapse`` (session, params ``sqlite`` / ``postgres``) - a running homeserver with
  the module loaded with its defaults (``module_config={}``). Tests share it, so they
  must use unique localparts and rooms: see ``unique`` / :func:`tests.harness.uid`.
* ``start_synapse`` (function) - factory for servers with another module config;
  every server it starts is stopped at the end of the test.
* ``admin`` / ``user`` (function) - freshly registered clients on ``synapse``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import pytest

from tests.harness import (
    Database,
    MatrixClient,
    PostgresCluster,
    SynapseServer,
    uid,
)
from tests.harness.synapse_server import BOOT_TIMES, live_servers

DATABASES = ["sqlite", "postgres"]
_DEFAULT_MODULE_CONFIG: Mapping[str, Any] = MappingProxyType({})


class StartSynapse(Protocol):
    """Type of the ``start_synapse`` fixture."""

    def __call__(
        self,
        database: str,
        module_config: Mapping[str, Any] | None = _DEFAULT_MODULE_CONFIG,
        extra_config: dict[str, Any] | None = None,
    ) -> SynapseServer: ...


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL server for the whole session (or ``$LUX_TEST_POSTGRES``)."""
    cluster = PostgresCluster()
    cluster.start()
    yield cluster
    cluster.stop()


def _new_server(
    request: pytest.FixtureRequest,
    tmp_dir: Path,
    database: str,
    module_config: Mapping[str, Any] | None,
    extra_config: dict[str, Any] | None,
) -> SynapseServer:
    pg_params = None
    if database == "postgres":
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        pg_params = cluster.create_database(uid("synapse_"))
    return SynapseServer(
        tmp_dir,
        database,  # type: ignore[arg-type]
        pg_params,
        dict(module_config) if module_config is not None else None,
        extra_config,
    )


@pytest.fixture(scope="session", params=DATABASES, ids=DATABASES)
def synapse(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SynapseServer]:
    """The shared homeserver, with the module on its default config."""
    database: str = request.param
    server = _new_server(
        request, tmp_path_factory.mktemp(f"synapse-{database}"), database, {}, None
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def start_synapse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StartSynapse]:
    """Factory: ``start_synapse(database, module_config={}, extra_config=None)``.

    ``module_config=None`` starts Synapse without the module. Servers are stopped
    when the test ends.
    """
    started: list[SynapseServer] = []

    def start(
        database: str,
        module_config: Mapping[str, Any] | None = _DEFAULT_MODULE_CONFIG,
        extra_config: dict[str, Any] | None = None,
    ) -> SynapseServer:
        tmp_dir = tmp_path / f"synapse-{len(started)}-{database}"
        server = _new_server(request, tmp_dir, database, module_config, extra_config)
        started.append(server)
        server.start()
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def unique() -> Callable[..., str]:
    """``unique(prefix="u") -> str``: a short unique lowercase string."""
    return uid


@pytest.fixture
def admin(synapse: SynapseServer) -> MatrixClient:
    """A newly registered server admin on ``synapse``."""
    return synapse.register_user(uid("admin"), admin=True)


@pytest.fixture
def user(synapse: SynapseServer) -> MatrixClient:
    """A newly registered ordinary user on ``synapse``."""
    return synapse.register_user(uid("user"))


@pytest.fixture
def synapse_db(synapse: SynapseServer) -> Database:
    """Direct SQL access to ``synapse``'s database."""
    return synapse.db()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test's report shows what each running homeserver logged of note (the
    module's lines, warnings, errors): CI keeps no homeserver.log, and a failure that
    happens there only, such as a sweep that does not end, needs it to be understood."""
    report = yield
    if report.failed:
        for server in live_servers():
            excerpt = server.log_excerpt()
            if excerpt:
                report.sections.append((f"homeserver.log of {server!r} (excerpt)", excerpt))
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Report how long each Synapse took to boot."""
    if BOOT_TIMES:
        terminalreporter.section("Synapse boot times")
        for what, seconds in BOOT_TIMES:
            terminalreporter.write_line(f"{what}: {seconds:.1f} s")
