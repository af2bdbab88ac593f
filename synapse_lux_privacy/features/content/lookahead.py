"""A page computed ahead of its request (R1: sweep throughput, issue 14).

The orchestrator asks for a rule's pages one after the other and deletes each batch
before asking for the next, so finding candidates and deleting them never overlap.
The messages rule starts finding its next page in the background as soon as it hands
over a page; the next call takes that result if it asks for exactly what was computed
(same sweep context, holds and cursor), and computes afresh otherwise.

Only one page is ever ahead, and only what was asked for next is used: a sweep that
stops half-way leaves an unused result, dropped at the next request.
"""

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar, cast

import attrs
from synapse.module_api import make_deferred_yieldable, run_in_background
from twisted.internet.defer import Deferred

K = TypeVar("K")
T = TypeVar("T")


@attrs.define
class _Outcome(Generic[T]):
    """What the background computation gave: its value, or the error it raised."""

    value: T | None = None
    error: Exception | None = None


class Lookahead(Generic[K, T]):
    """At most one computation running ahead, under the key of what it computes."""

    def __init__(self) -> None:
        self._key: K | None = None
        self._pending: Deferred[_Outcome[T]] | None = None

    def start(self, key: K, compute: Callable[[], Awaitable[T]]) -> None:
        """Start ``compute`` now (Synapse's ``run_in_background``, which keeps logging
        contexts right); whatever ran ahead before is dropped."""

        async def attempt() -> _Outcome[T]:
            try:
                return _Outcome(value=await compute())
            except Exception as error:
                # Kept for the caller, which computes afresh (and meets the error again
                # if it lasts); never an unhandled error in a dropped Deferred.
                return _Outcome(error=error)

        self._key = key
        self._pending = run_in_background(attempt)

    def drop(self) -> None:
        self._key, self._pending = None, None

    async def take(self, key: K, compute: Callable[[], Awaitable[T]]) -> T:
        """The result computed ahead for ``key``, else ``compute()`` now."""
        pending, ahead = self._pending, self._key
        self.drop()
        if pending is not None and ahead == key:
            outcome = await make_deferred_yieldable(pending)
            if outcome.error is None:
                return cast(T, outcome.value)
        return await compute()
