"""The module's database handle inside Synapse: Synapse's pool, migrations run first."""

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from synapse.module_api import ModuleApi

from synapse_lux_privacy.db import Dialect
from synapse_lux_privacy.store.schema import MIGRATIONS, MigrationStep, apply_migrations
from synapse_lux_privacy.synapse_adapter.transactions import run_read_committed

T = TypeVar("T")

logger = logging.getLogger(__name__)

_MIGRATION_ATTEMPTS = 3


class ModuleDatabase:
    """A DbRunner over ``ModuleApi.run_db_interaction`` that migrates the schema on first use.

    Migrations are idempotent and serialised in the database, so two callers
    racing on the first use (or two workers starting together) are harmless.
    Features add their components with ``add_migrations`` before first use.
    """

    def __init__(self, api: ModuleApi, dialect: Dialect) -> None:
        self._api = api
        self.dialect = dialect
        self._migrations: dict[str, Sequence[MigrationStep]] = dict(MIGRATIONS)
        self._migrated = False

    def add_migrations(self, migrations: Mapping[str, Sequence[MigrationStep]]) -> None:
        clash = set(migrations) & set(self._migrations)
        if clash:
            raise ValueError(f"schema components defined twice: {sorted(clash)}")
        self._migrations.update(migrations)

    async def ensure_schema(self) -> None:
        """Run the migrations once; a caller that loses a race retries and finds them done.

        On PostgreSQL two first callers (two requests right after boot, or two
        workers) are serialised by the advisory lock, but Synapse's transactions
        run at REPEATABLE READ: the second may still miss the version row the
        first committed and fail on inserting it. A fresh transaction sees it.
        """
        attempt = 0
        while not self._migrated:
            attempt += 1
            try:
                await self._api.run_db_interaction(
                    "lux_privacy_migrate", apply_migrations, self.dialect, self._migrations
                )
            except Exception:
                if attempt >= _MIGRATION_ATTEMPTS:
                    raise
                logger.info("lux_privacy: schema migration raced another; retrying")
                continue
            self._migrated = True

    async def __call__(self, desc: str, func: Callable[..., T], *args: Any) -> T:
        await self.ensure_schema()
        return await self._api.run_db_interaction(desc, func, *args)

    async def read_committed(self, desc: str, func: Callable[..., T], *args: Any) -> T:
        """A DbRunner at READ COMMITTED on PostgreSQL: for transactions that append to
        the audit's hash chain (``store/audit_chain.py``), which take turns on its head
        row instead of failing on it."""
        await self.ensure_schema()
        return await run_read_committed(self._api, desc, func, *args)
