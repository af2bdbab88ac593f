"""The module's database handle inside Synapse: Synapse's pool, migrations run first."""

from collections.abc import Callable
from typing import Any, TypeVar

from synapse.module_api import ModuleApi

from synapse_lux_privacy.db import Dialect
from synapse_lux_privacy.store.schema import apply_migrations

T = TypeVar("T")


class ModuleDatabase:
    """A DbRunner over ``ModuleApi.run_db_interaction`` that migrates the schema on first use.

    Migrations are idempotent and serialised in the database, so two callers
    racing on the first use (or two workers starting together) are harmless.
    """

    def __init__(self, api: ModuleApi, dialect: Dialect) -> None:
        self._api = api
        self.dialect = dialect
        self._migrated = False

    async def ensure_schema(self) -> None:
        if not self._migrated:
            await self._api.run_db_interaction(
                "lux_privacy_migrate", apply_migrations, self.dialect
            )
            self._migrated = True

    async def __call__(self, desc: str, func: Callable[..., T], *args: Any) -> T:
        await self.ensure_schema()
        return await self._api.run_db_interaction(desc, func, *args)
