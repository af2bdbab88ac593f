"""A DbRunner over a plain sqlite3 connection, for unit tests of the module's stores."""

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from synapse_lux_privacy.store.schema import MIGRATIONS, apply_migrations

T = TypeVar("T")


class SqliteRunner:
    """Runs each interaction in its own transaction, as Synapse's pool does."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)

    async def __call__(self, desc: str, func: Callable[..., T], *args: Any) -> T:
        cur = self.conn.cursor()
        cur.execute("BEGIN")
        try:
            result = func(cur, *args)
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")
        return result

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params).fetchall()


def migrated_runner(
    path: Path, migrations: Mapping[str, Sequence[str]] = MIGRATIONS
) -> SqliteRunner:
    """A runner over a new SQLite file holding the module's tables (``migrations`` as
    ``apply_migrations`` takes them: the core tables by default)."""
    runner = SqliteRunner(str(path))
    apply_migrations(runner.conn.cursor(), "sqlite", migrations)
    return runner
