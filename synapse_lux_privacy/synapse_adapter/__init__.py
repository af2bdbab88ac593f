"""The only package that touches Synapse's private APIs.

Everything the module needs from Synapse beyond the stable ``synapse.module_api``
goes through this package (one small file per area of Synapse), so that a
Synapse upgrade is checked in one place. The supported range is pinned in
pyproject.toml and checked again at start-up. Deletions of Synapse's data go
through Synapse's own machinery here, never through SQL on Synapse's tables.
"""

import importlib.metadata
import os
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version
from synapse.config._base import read_config_files
from synapse.module_api import ModuleApi
from synapse.module_api.errors import ConfigError
from synapse.storage.engines import PostgresEngine

from synapse_lux_privacy.db import Dialect

# Keep in step with the matrix-synapse requirement in pyproject.toml: the range
# the test suite runs against.
SUPPORTED_SYNAPSE = SpecifierSet(">=1.163.0,<1.164.0")


def synapse_version() -> str:
    """The installed Synapse release (``synapse.__version__`` may carry git details)."""
    return importlib.metadata.version("matrix-synapse")


def check_synapse_version(version: str | None = None) -> None:
    """Refuse to start on a Synapse version this module was not tested with."""
    found = version or synapse_version()
    if Version(found) not in SUPPORTED_SYNAPSE:
        raise ConfigError(
            f"synapse_lux_privacy supports Synapse {SUPPORTED_SYNAPSE}, but this is Synapse"
            f" {found}: install a matching synapse-lux-privacy release"
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
