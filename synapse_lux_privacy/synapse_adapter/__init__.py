"""The only package that touches Synapse's private APIs.

Everything the module needs from Synapse beyond the stable ``synapse.module_api``
goes through this package (one small file per area of Synapse), so that a
Synapse upgrade is checked in one place. pyproject.toml states the oldest
supported release only (installing the module never changes Synapse); the start-up
check refuses older releases, and releases newer than the tested range unless
``allow_untested_synapse`` is set and the self-check (``selfcheck``) passes.
Deletions of Synapse's data go through Synapse's own machinery here, never through
SQL on Synapse's tables.
"""

import importlib.metadata
import logging
import os
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version
from synapse.config._base import read_config_files
from synapse.module_api import ModuleApi
from synapse.module_api.errors import ConfigError
from synapse.storage.database import make_conn
from synapse.storage.engines import PostgresEngine

from synapse_lux_privacy.db import Dialect
from synapse_lux_privacy.synapse_adapter import selfcheck

logger = logging.getLogger(__name__)

# The oldest release supported: pyproject.toml's lower bound.
MINIMUM_SYNAPSE = Version("1.150.0")
# The releases every private API of this package was read and tested on.
TESTED_SYNAPSE = SpecifierSet(">=1.150.0,<1.164.0")
# Synapse's instance name for the main process ("main" in instance_map).
MAIN_PROCESS_INSTANCE = "master"


def synapse_version() -> str:
    """The installed Synapse release (``synapse.__version__`` may carry git details)."""
    return importlib.metadata.version("matrix-synapse")


def is_untested(version: str | None = None) -> bool:
    """Whether this Synapse is newer than the tested range."""
    found = Version(version or synapse_version())
    return found >= MINIMUM_SYNAPSE and not TESTED_SYNAPSE.contains(found, prereleases=True)


def check_synapse_version(allow_untested: bool, version: str | None = None) -> None:
    """Refuse a Synapse below the supported range; refuse one above the tested range
    unless ``allow_untested_synapse`` is set, and then unless the self-check of every
    private API passes (``selfcheck.check_private_api``)."""
    found = version or synapse_version()
    if Version(found) < MINIMUM_SYNAPSE:
        raise ConfigError(
            f"synapse_lux_privacy needs Synapse {MINIMUM_SYNAPSE} or later (tested:"
            f" {TESTED_SYNAPSE}), but this is Synapse {found}: upgrade Synapse"
        )
    if not is_untested(found):
        return
    if not allow_untested:
        raise ConfigError(
            f"synapse_lux_privacy is tested with Synapse {TESTED_SYNAPSE}, but this is Synapse"
            f" {found}: install a synapse-lux-privacy release tested with it, or set"
            " allow_untested_synapse: true to start if the adapter's self-check passes"
        )
    _refuse_on(selfcheck.check_private_api(), found, "private API")


def check_synapse_schema(api: ModuleApi) -> None:
    """On an untested Synapse: refuse to start unless every column the adapter's SQL names
    exists in the main database (the second half of the self-check)."""
    if not is_untested():
        return
    pool = api._store.db_pool
    conn = make_conn(
        db_config=pool._database_config,
        engine=pool.engine,
        default_txn_name="lux_privacy_selfcheck",
        server_name=api.server_name,
    )
    try:
        cursor = conn.cursor()
        columns = (
            selfcheck.table_columns_postgres
            if isinstance(pool.engine, PostgresEngine)
            else selfcheck.table_columns_sqlite
        )
        findings = selfcheck.check_columns(lambda table: columns(cursor, table))
    finally:
        conn.close()
    _refuse_on(findings, synapse_version(), "database schema")
    logger.warning(
        "lux_privacy: Synapse %s is newer than the tested range %s; the self-check of its"
        " private API and of its database schema passed (allow_untested_synapse)",
        synapse_version(),
        TESTED_SYNAPSE,
    )


def _refuse_on(findings: list[str], version: str, part: str) -> None:
    if findings:
        raise ConfigError(
            f"synapse_lux_privacy's self-check of Synapse {version}'s {part} failed"
            f" (allow_untested_synapse): {'; '.join(findings)}"
        )


def database_dialect(api: ModuleApi) -> Dialect:
    """Which database the main data store runs on."""
    engine = api._store.database_engine
    return "postgres" if isinstance(engine, PostgresEngine) else "sqlite"


def homeserver_config(api: ModuleApi) -> tuple[dict[str, Any], str | None]:
    """The homeserver.yaml as written (merged like Synapse does), and its folder."""
    files: list[str] = list(api._hs.config.config_files)
    if not files:
        return {}, None
    return read_config_files(files), os.path.dirname(files[-1])


def background_tasks_instance(api: ModuleApi) -> str | None:
    """None when this process runs Synapse's background tasks (and so the periodic
    sweep), else the instance that does: ``run_background_tasks_on`` as written in
    homeserver.yaml, ``master`` (the main process) when absent. Synapse keeps only
    the yes/no answer (``should_run_background_tasks``), so the name is read from the
    configuration files this process was started with."""
    if api.should_run_background_tasks():
        return None
    homeserver, _ = homeserver_config(api)
    return str(homeserver.get("run_background_tasks_on") or MAIN_PROCESS_INSTANCE)


def is_appservice_requester(requester: Any) -> bool:
    """Whether ``ModuleApi.get_user_by_req``'s requester came with an application
    service's token. Newer releases (a Rust ``Requester``) name its ``app_service_id``;
    older ones (1.150.0) hold the ``app_service`` itself."""
    if hasattr(requester, "app_service_id"):
        return requester.app_service_id is not None
    return getattr(requester, "app_service", None) is not None
