"""Direct SQL access to a homeserver's database, for assertions and backdating rows.

SQL is written once with ``?`` placeholders and runs on both engines::

    db.execute("UPDATE events SET origin_server_ts = ? WHERE event_id = ?", (ts, event_id))

Every statement autocommits. Note that Synapse caches many rows in memory, so a
changed row may only be seen by Synapse once its cache entry is invalidated.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import psycopg2


class Database:
    """A connection to a Synapse database (SQLite file or PostgreSQL)."""

    def __init__(
        self, sqlite_path: str | None = None, pg_params: dict[str, Any] | None = None
    ) -> None:
        """Open ``sqlite_path`` or connect with ``pg_params`` (exactly one of them)."""
        if (sqlite_path is None) == (pg_params is None):
            raise ValueError("give exactly one of sqlite_path and pg_params")
        self.engine = "sqlite" if sqlite_path is not None else "postgres"
        self._conn: Any
        if sqlite_path is not None:
            self._conn = sqlite3.connect(sqlite_path, timeout=30, isolation_level=None)
        else:
            assert pg_params is not None
            params = dict(pg_params)
            params["dbname"] = params.pop("database")
            self._conn = psycopg2.connect(connect_timeout=10, **params)
            self._conn.autocommit = True
        self.closed = False

    def _sql(self, sql: str) -> str:
        """Convert ``?`` placeholders to psycopg2's ``%s`` (escaping literal ``%``)."""
        if self.engine == "sqlite":
            return sql
        return sql.replace("%", "%%").replace("?", "%s")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a SELECT and return all rows as tuples."""
        cur = self._conn.cursor()
        try:
            cur.execute(self._sql(sql), tuple(params))
            return [tuple(row) for row in cur.fetchall()]
        finally:
            cur.close()

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """Run a SELECT and return the first row, or None if there is none."""
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def number(self, sql: str, params: Sequence[Any] = ()) -> int:
        """The integer a one-value query returns, e.g. ``SELECT COUNT(*) ...``."""
        row = self.query_one(sql, params)
        if row is None or row[0] is None:
            raise ValueError(f"no number from {sql!r}")
        return int(row[0])

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement (autocommit) and return the number of rows affected."""
        cur = self._conn.cursor()
        try:
            cur.execute(self._sql(sql), tuple(params))
            return int(cur.rowcount)
        finally:
            cur.close()

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run a statement once per row of parameters, in one transaction."""
        cur = self._conn.cursor()
        try:
            if self.engine == "sqlite":
                cur.execute("BEGIN")
                cur.executemany(sql, [tuple(r) for r in rows])
                cur.execute("COMMIT")
            else:
                with self._conn.cursor() as pg:
                    pg.execute("BEGIN")
                    pg.executemany(self._sql(sql), [tuple(r) for r in rows])
                    pg.execute("COMMIT")
        finally:
            cur.close()

    def tables(self) -> set[str]:
        """Names of all tables in the database."""
        if self.engine == "sqlite":
            rows = self.query("SELECT name FROM sqlite_master WHERE type = 'table'")
        else:
            rows = self.query(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            )
        return {str(row[0]) for row in rows}

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if not self.closed:
            self.closed = True
            self._conn.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
