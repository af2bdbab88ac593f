"""The module's database handle inside Synapse: Synapse's pool, migrations run first."""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from synapse.module_api import ModuleApi

from synapse_lux_privacy.db import Dialect
from synapse_lux_privacy.store.schema import MIGRATIONS, apply_migrations

T = TypeVar("T")


class ModuleDatabase:
    """A DbRunner over ``ModuleApi.run_db_interaction`` that migrates the schema on first use.

    Migrations are idempotent and serialised in the database, so two callers
    racing on the first use (or two workers starting together) are harmless.
    Features add their components with ``add_migrations`` before first use.
    """

    def __init__(self, api: ModuleApi, dialect: Dialect) -> None:
        self._api = api
        self.dialect = dialect
        self._migrations: dict[str, Sequence[str]] = dict(MIGRATIONS)
        self._migrated = False

    def add_migrations(self, migrations: Mapping[str, Sequence[str]]) -> None:
        clash = set(migrations) & set(self._migrations)
        if clash:
            raise ValueError(f"schema components defined twice: {sorted(clash)}")
        self._migrations.update(migrations)

    async def ensure_schema(self) -> None:
        if not self._migrated:
            await self._api.run_db_interaction(
                "lux_privacy_migrate", apply_migrations, self.dialect, self._migrations
            )
            self._migrated = True

    async def __call__(self, desc: str, func: Callable[..., T], *args: Any) -> T:
        await self.ensure_schema()
        return await self._api.run_db_interaction(desc, func, *args)
