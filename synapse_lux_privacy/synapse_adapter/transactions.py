"""Transactions at READ COMMITTED, for the audit chain's appends (issue #24).

Synapse runs its transactions at REPEATABLE READ on PostgreSQL. An append to the audit's
hash chain locks the chain's single head row first; at REPEATABLE READ a writer that
waited for that lock fails with a serialisation error and Synapse runs the whole
transaction again, at most five times, so that busy concurrent writers (several workers
auditing at once) could exhaust the retries. At READ COMMITTED the writer that waited
reads the head its predecessor committed and goes on: appends simply take turns.
``DatabasePool.runInteraction``'s ``isolation_level`` is how Synapse itself does this
for its own hot rows. SQLite serialises writers anyway (the level is ignored there).
"""

from collections.abc import Callable
from typing import Any, TypeVar

from synapse.module_api import ModuleApi
from synapse.storage.engines._base import IsolationLevel
from twisted.internet import defer

T = TypeVar("T")


def run_read_committed(
    api: ModuleApi, desc: str, func: Callable[..., T], *args: Any
) -> "defer.Deferred[T]":
    return defer.ensureDeferred(
        api._store.db_pool.runInteraction(
            desc, func, *args, isolation_level=IsolationLevel.READ_COMMITTED
        )
    )
