"""Deleted text gone from the disk (R1, R15): what Synapse's purges leave in the files.

Synapse's purge (``PaginationHandler.purge_history``) and event expiry delete or rewrite
rows; the bytes of the old rows stay in the database's files until something
overwrites them, where anyone who reads the files (or a copy of them) can read them.
Synapse offers no setting and no job for any of the steps below: it configures only
``foreign_keys`` and ``journal_mode`` on its SQLite connections
(``Sqlite3Engine.on_new_connection``), runs no maintenance on its full-text index, and
leaves WAL checkpoints to SQLite's automatic ``PASSIVE`` ones, which never truncate the
WAL. So the module does them, with these statements only:

SQLite, at start-up on every process (``enable_secure_delete``):

- ``PRAGMA secure_delete = ON`` on every connection of Synapse's SQLite databases:
  SQLite then overwrites deleted content with zeros when it deletes it, whatever it was
  built with (Debian's build has it on by default, others not). It is a connection
  setting: it is set on the pool's one connection (Synapse forces ``cp_max`` to 1 on
  SQLite) through ``DatabasePool.runWithConnection``, and on every connection the pool
  opens later (a reconnection) by wrapping the engine instance's ``on_new_connection``,
  which the pool calls on each new connection.

SQLite, after a sweep that deleted or rewrote events (``DiskResidue.clear``):

- ``INSERT INTO event_search(event_search) VALUES('optimize')``: Synapse's full-text
  index (FTS4) keeps the words of a deleted row in its index segments until the
  segments are merged; ``optimize`` merges them all into one, which drops them (and
  ``secure_delete`` zeroes the pages the old segments held). FTS4's documented command.
- ``PRAGMA wal_checkpoint(PASSIVE)`` then ``PRAGMA wal_checkpoint(TRUNCATE)``, outside a
  transaction: the WAL holds the page images of the original inserts; the checkpoint
  copies it into the database file and truncates it to zero bytes. The passive one
  counts the pages (the truncating one answers 0, 0); ``busy`` is 1 when a reader kept
  the truncation from completing (the next deleting sweep tries again).

While these run, Synapse's one SQLite connection is busy: other requests wait (the cost
is measured by ``benchmarks/disk_residue.py``).

PostgreSQL, after such a sweep (``DiskResidue.measure``): reads only.
``pg_stat_user_tables`` (live and dead rows, as PostgreSQL's statistics count them) and
``pg_total_relation_size`` (bytes with indexes and TOAST) of the Synapse tables that
hold message text: ``event_json`` (the events' JSON) and ``event_search`` (the
full-text vector). Dead rows keep their text until new rows overwrite their space;
``VACUUM`` does not erase it (and a GIN index keeps deleted keys): the operator guide's
residue procedure (``pg_repack``) removes it without taking the server down. A backend
sends its statistics when idle, at most once a second, else ten seconds later
(PostgreSQL's ``PGSTAT_IDLE_INTERVAL``): the figures are read ``STATS_DELAY_S`` after the
sweep, in the background, then written to the sweep's record and to the gauges
``lux_privacy_synapse_table_dead_rows`` and ``lux_privacy_synapse_table_bytes``.
"""

import functools
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from synapse.module_api import ModuleApi
from synapse.storage.engines import Sqlite3Engine

from synapse_lux_privacy import metrics
from synapse_lux_privacy.db import Cursor, DbRunner

logger = logging.getLogger(__name__)

# The Synapse tables that hold the text of messages (checked against a marker message
# by tests/integration/test_disk_residue.py on PostgreSQL).
TEXT_TABLES: tuple[str, ...] = ("event_json", "event_search")

# How long after a sweep PostgreSQL's statistics are read: they then count its deletions.
STATS_DELAY_S = 12.0

SECURE_DELETE = "PRAGMA secure_delete = ON"
SECURE_DELETE_OFF = "PRAGMA secure_delete = OFF"  # a benchmark's baseline only
FTS_OPTIMIZE = "INSERT INTO event_search(event_search) VALUES('optimize')"

# Benchmark-only switch, never set in a deployment: ``benchmarks/disk_residue.py`` sets
# it in Synapse's environment for its baseline runs, which then run as on a SQLite built
# without SECURE_DELETE and without the sweep's SQLite steps (``secure_delete`` OFF).
BENCHMARK_BASELINE_ENV = "LUX_PRIVACY_BENCHMARK_DISK_RESIDUE_BASELINE"


def _sqlite_pools(api: ModuleApi) -> list[Any]:
    """Synapse's database pools that run on SQLite (one, in practice)."""
    return [
        pool
        for pool in api._hs.get_datastores().databases
        if isinstance(pool.engine, Sqlite3Engine)
    ]


def _baseline() -> bool:
    return bool(os.environ.get(BENCHMARK_BASELINE_ENV))


def secure_delete(conn: Any) -> int:
    """Turn ``secure_delete`` on for this connection (off for a benchmark's baseline);
    what SQLite reads back (1: on)."""
    conn.execute(SECURE_DELETE_OFF if _baseline() else SECURE_DELETE)
    row = conn.execute("PRAGMA secure_delete").fetchone()
    return int(row[0]) if row else 0


def with_secure_delete(original: Callable[[Any], None], db_conn: Any) -> None:
    """The engine's ``on_new_connection``, then ``secure_delete`` on the new connection."""
    original(db_conn)
    secure_delete(db_conn)


async def enable_secure_delete(api: ModuleApi) -> None:
    """SQLite: ``secure_delete`` on Synapse's connection now and on every new one (R1)."""
    for pool in _sqlite_pools(api):
        engine = pool.engine
        current = engine.on_new_connection
        if not (isinstance(current, functools.partial) and current.func is with_secure_delete):
            engine.on_new_connection = functools.partial(with_secure_delete, current)
        state = await pool.runWithConnection(secure_delete)
        logger.info("lux_privacy: SQLite secure_delete is %s", "on" if state else "OFF")


def clear_sqlite(conn: Any) -> dict[str, Any]:
    """The full-text index merged, the WAL checkpointed and truncated (one connection)."""
    conn.execute(FTS_OPTIMIZE)
    conn.commit()
    passive = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    truncate = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return {
        "fts_optimized": True,
        "wal_checkpoint": {
            "busy": int(truncate[0]),
            "wal_pages": int(passive[1]),
            "checkpointed_pages": int(passive[2]),
        },
    }


def _text_tables_txn(cur: Cursor) -> dict[str, dict[str, int]]:
    cur.execute(
        "SELECT relname, n_live_tup, n_dead_tup, pg_total_relation_size(relid)"
        " FROM pg_stat_user_tables WHERE schemaname = current_schema()"
        f" AND relname IN ({', '.join('?' for _ in TEXT_TABLES)})",
        TEXT_TABLES,
    )
    return {
        str(name): {"live_rows": int(live), "dead_rows": int(dead), "bytes": int(size)}
        for name, live, dead, size in cur.fetchall()
    }


class DiskResidue:
    """What a sweep that deleted events does about the text they leave on the disk."""

    def __init__(self, api: ModuleApi, db: DbRunner, server_name: str) -> None:
        self._api = api
        self._db = db
        self._server_name = server_name

    async def clear(self) -> dict[str, Any]:
        """At the end of the sweep. SQLite: wipe what its deletions left (FTS index, WAL).
        PostgreSQL: nothing yet (``measure`` reads the residue after the sweep)."""
        pools = _sqlite_pools(self._api)
        if not pools:
            return {"database": "postgres", "tables": None}
        began = time.monotonic()
        result: dict[str, Any] = {"database": "sqlite"}
        if not _baseline():
            for pool in pools:
                result.update(await pool.runWithConnection(clear_sqlite))
        result["seconds"] = round(time.monotonic() - began, 3)
        return result

    async def measure(self) -> dict[str, Any] | None:
        """After the sweep, PostgreSQL: the residue in Synapse's text tables, once the
        statistics count the sweep's deletions (the gauges are set too). SQLite: None."""
        if _sqlite_pools(self._api):
            return None
        await self._api.sleep(STATS_DELAY_S)
        tables = await self._db("lux_privacy_text_table_residue", _text_tables_txn)
        for table, figures in tables.items():
            metrics.synapse_table_dead_rows.labels(self._server_name, table).set(
                figures["dead_rows"]
            )
            metrics.synapse_table_bytes.labels(self._server_name, table).set(figures["bytes"])
        return {"tables": tables, "measured_ts": self._api.get_current_time_msec()}
