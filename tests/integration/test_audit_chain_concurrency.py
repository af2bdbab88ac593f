"""Concurrent writers of the audit make one hash chain (issue #24; R13, R14), on a real
PostgreSQL server and a real SQLite file.

Several threads, each with its own connection (as several workers have), complete audit
batches at the same moment through the module's own ``AuditStore``, run the way
Synapse's pool runs it (``tests/harness/module_db.py``: REPEATABLE READ on PostgreSQL,
and READ COMMITTED for the chain's appends as ``ModuleDatabase.read_committed``). The
chain must hold every completed row once, links 1..n without a gap or a fork, and
verify. Time: every timestamp is given (a batch's index); no clock is read.
"""

import itertools
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from synapse_lux_privacy.store.audit import AuditGroup, AuditStore
from synapse_lux_privacy.store.audit_verification import AuditVerifier
from synapse_lux_privacy.store.schema import apply_migrations
from tests.conftest import DATABASES
from tests.harness import PostgresCluster, uid
from tests.harness.module_db import PgCursor, PgRunner, SqliteRunner, drive

pytestmark = pytest.mark.integration

WRITERS = 4
BATCHES = 25
GROUPS = 3


@pytest.fixture(params=DATABASES, ids=DATABASES)
def writers(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], tuple[Any, Any]]]:
    """``new() -> (run, chain_run)``: a writer's own connections to one migrated database."""
    opened: list[Any] = []
    if request.param == "postgres":
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        params = cluster.create_database(uid("chain_"))
        first = PgRunner(params)
        with first.conn.cursor() as cur:
            apply_migrations(PgCursor(cur), "postgres")
        first.conn.commit()
        opened.append(first)

        def new() -> tuple[Any, Any]:
            pair = (PgRunner(params), PgRunner(params, "READ COMMITTED"))
            opened.extend(pair)
            return pair
    else:
        path = str(tmp_path / "audit.db")
        first = SqliteRunner(path)
        apply_migrations(first.conn.cursor(), "sqlite")
        opened.append(first)

        def new() -> tuple[Any, Any]:
            run = SqliteRunner(path)
            opened.append(run)
            return run, run

    yield new
    for runner in opened:
        runner.close()


def test_r14_concurrent_writers_make_one_chain(writers: Callable[[], tuple[Any, Any]]) -> None:
    stores = [AuditStore(*writers()) for _ in range(WRITERS)]
    start = threading.Barrier(WRITERS)
    failures: list[BaseException] = []

    def write(n: int) -> None:
        try:
            start.wait()
            for i in range(BATCHES):
                groups = [
                    AuditGroup(f"@u{g}:lux.test", f"!w{n}:lux.test", 2, 20) for g in range(GROUPS)
                ]
                ids = drive(stores[n].start_batch(f"w{n}", "messages", i, groups))
                # One group of each batch deletes nothing: its row goes, unchained.
                drive(stores[n].finish_batch(ids, [*groups[:-1], None], i + 1))
        except BaseException as e:  # reported below, with the others
            failures.append(e)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    run, _ = writers()
    verdict = drive(AuditVerifier(run).verify())
    rows = WRITERS * BATCHES * (GROUPS - 1)
    assert (verdict.ok, verdict.rows, verdict.head.head_seq) == (True, rows, rows)
    entries = drive(AuditStore(run).list_entries(0, 1000))
    assert sorted(e.seq for e in entries if e.seq is not None) == list(range(1, rows + 1))
    assert {e.status for e in entries} == {"done"}
    # The writers interleaved: the chain is one, not one per writer in turn.
    by_seq = sorted(entries, key=lambda e: e.seq or 0)
    switches = sum(a.room_id != b.room_id for a, b in itertools.pairwise(by_seq))
    assert switches >= WRITERS - 1
