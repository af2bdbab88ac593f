"""DbRunners over plain connections that behave as Synapse's pool does, for code of the
module run outside Synapse against a real database (concurrency tests, benchmarks).

One transaction per call. On PostgreSQL the connection runs at REPEATABLE READ, as
Synapse's do, or at the level asked for (``ModuleDatabase.read_committed`` runs the
audit chain's appends at READ COMMITTED), and a call that meets a serialisation failure
runs again, as Synapse's ``runInteraction`` does (``retries`` counts them). On SQLite
each call is one ``BEGIN IMMEDIATE`` transaction (writers wait for each other).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import psycopg2
import psycopg2.errors
import psycopg2.extras

T = TypeVar("T")


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine of these runners (they never wait on the reactor)."""
    return asyncio.run(coro)


class PgCursor:
    """``?`` placeholders on psycopg2, as Synapse converts them."""

    def __init__(self, cur: Any) -> None:
        self._cur = cur

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Any:
        return self._cur.execute(sql.replace("?", "%s"), tuple(parameters))

    def execute_batch(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """As Synapse's ``LoggingTransaction.execute_batch`` on PostgreSQL."""
        psycopg2.extras.execute_batch(self._cur, sql.replace("?", "%s"), [tuple(r) for r in rows])

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._cur.fetchall()]

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._cur.fetchone()
        return None if row is None else tuple(row)

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)


class PgRunner:
    def __init__(self, params: dict[str, Any], isolation: str = "REPEATABLE READ") -> None:
        args = dict(params)
        args["dbname"] = args.pop("database")
        self.conn = psycopg2.connect(**args)
        self.conn.set_session(isolation_level=isolation)
        self.retries = 0

    async def __call__(self, desc: str, func: Callable[..., T], *args: Any) -> T:
        while True:
            try:
                with self.conn.cursor() as cur:
                    result = func(PgCursor(cur), *args)
                self.conn.commit()
                return result
            except psycopg2.errors.SerializationFailure:
                self.conn.rollback()
                self.retries += 1
            except BaseException:
                self.conn.rollback()
                raise

    def close(self) -> None:
        self.conn.close()


class SqliteRunner:
    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, timeout=60, check_same_thread=False)
        self.retries = 0

    async def __call__(self, desc: str, func: Callable[..., T], *args: Any) -> T:
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            result = func(cur, *args)
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")
        return result

    def close(self) -> None:
        self.conn.close()
