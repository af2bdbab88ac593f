"""ModuleDatabase: the first use migrates the schema, and a lost race is retried.

The runner stands in for ``ModuleApi.run_db_interaction`` over a real SQLite file;
"another worker" migrates the same database first, as on a PostgreSQL deployment
where the losing transaction's snapshot misses the winner's version row.
"""

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_twisted
from synapse.module_api import ModuleApi

from synapse_lux_privacy.store.database import ModuleDatabase
from synapse_lux_privacy.store.schema import apply_migrations


class RacingApi:
    """Runs interactions on SQLite; the first ``failures`` calls lose a race."""

    def __init__(self, path: Path, failures: int) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.failures = failures
        self.calls = 0

    async def run_db_interaction(self, desc: str, func: Callable[..., Any], *args: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            apply_migrations(self.conn.cursor(), "sqlite")  # the other worker wins
            raise sqlite3.IntegrityError("UNIQUE constraint failed: lux_privacy_schema_version")
        return func(self.conn.cursor(), *args)


@pytest_twisted.ensureDeferred
async def test_a_lost_migration_race_is_retried_and_the_schema_is_ready(tmp_path: Path) -> None:
    api = RacingApi(tmp_path / "db", failures=1)
    db = ModuleDatabase(cast(ModuleApi, api), "sqlite")
    rows = await db(
        "count", lambda cur: cur.execute("SELECT COUNT(*) FROM lux_privacy_holds").fetchall()
    )
    assert rows == [(0,)]
    assert api.calls == 3  # lost race, retried migration, the query itself
    await db("again", lambda cur: None)
    assert api.calls == 4  # migrated once: no more migration attempts


@pytest_twisted.ensureDeferred
async def test_a_migration_that_keeps_failing_is_reported(tmp_path: Path) -> None:
    api = RacingApi(tmp_path / "db", failures=10)
    db = ModuleDatabase(cast(ModuleApi, api), "sqlite")
    with pytest.raises(sqlite3.IntegrityError):
        await db.ensure_schema()
    assert api.calls == 3
