"""How the module's stores reach a database.

In Synapse the runner is ``ModuleApi.run_db_interaction``; unit tests pass a
runner over a plain ``sqlite3`` connection. SQL is written with ``?``
placeholders: Synapse converts them for PostgreSQL.
"""

from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from typing import Any, Literal, Protocol, TypeVar, cast

T = TypeVar("T")

Dialect = Literal["sqlite", "postgres"]


class Cursor(Protocol):
    """The part of a DB-API cursor (or Synapse's LoggingTransaction) the stores use."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...

    def fetchall(self) -> list[tuple[Any, ...]]: ...

    def fetchone(self) -> tuple[Any, ...] | None: ...

    @property
    def rowcount(self) -> int: ...


class DbRunner(Protocol):
    """Runs ``func(cursor, *args)`` in one transaction and returns its result."""

    def __call__(self, desc: str, func: Callable[..., T], *args: Any) -> Awaitable[T]: ...


def execute_batch(cur: Cursor, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run ``sql`` once per row of ``rows``: in pages of statements per round trip on
    PostgreSQL (Synapse's ``LoggingTransaction.execute_batch``), ``executemany`` on a
    plain DB-API cursor (the unit tests' SQLite)."""
    if not rows:
        return
    batch = getattr(cur, "execute_batch", None)
    if batch is not None:
        batch(sql, rows)
    else:
        cast(Any, cur).executemany(sql, rows)


# Values per ``IN (...)`` list: well under SQLite's limit of bound parameters.
CHUNK = 500


def chunks(values: Sequence[T]) -> Iterator[Sequence[T]]:
    """``values`` in slices of at most CHUNK, for ``IN (...)`` lists."""
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def placeholders(values: Collection[Any]) -> str:
    """``?, ?, ?``: one placeholder per value."""
    return ", ".join("?" for _ in values)


def holds_any_sql(column: str, markers: Sequence[str]) -> tuple[str, list[str]]:
    """A condition that ``column``, in lower case, holds one of these lower-case
    substrings (free of the LIKE wildcards ``%`` and ``_``), and its arguments; ``LOWER``
    and ``LIKE`` behave alike on both databases for ASCII text."""
    if not markers or any(m != m.lower() or "%" in m or "_" in m for m in markers):
        raise ValueError(f"markers must be lower case, without % or _: {markers!r}")
    sql = " OR ".join(f"LOWER({column}) LIKE ?" for _ in markers)
    return f"({sql})", [f"%{m}%" for m in markers]
