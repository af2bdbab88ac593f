"""The messages rule's page computed ahead (R1 throughput, issue 14): taken only for the
key it was computed for, computed afresh otherwise or after an error. No clock: the
computations are counted."""

import pytest
import pytest_twisted
from twisted.internet import defer

from synapse_lux_privacy.features.content.lookahead import Lookahead


class Counter:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail = False

    def compute(self, label: str) -> "defer.Deferred[str]":
        async def run() -> str:
            self.calls.append(label)
            if self.fail:
                raise RuntimeError("database gone")
            return label

        return defer.ensureDeferred(run())


@pytest_twisted.ensureDeferred
async def test_r1_a_page_computed_ahead_is_taken_once_for_its_key() -> None:
    counter = Counter()
    ahead: Lookahead[str, str] = Lookahead()
    ahead.start("next", lambda: counter.compute("ahead"))
    assert await ahead.take("next", lambda: counter.compute("afresh")) == "ahead"
    assert counter.calls == ["ahead"]
    # Taken: asking again computes afresh.
    assert await ahead.take("next", lambda: counter.compute("afresh")) == "afresh"


@pytest_twisted.ensureDeferred
async def test_r1_r13_another_key_such_as_other_holds_is_computed_afresh() -> None:
    counter = Counter()
    ahead: Lookahead[tuple[str, frozenset[str]], str] = Lookahead()
    ahead.start(("cursor", frozenset()), lambda: counter.compute("ahead"))
    held = ("cursor", frozenset({"@held:x"}))
    assert await ahead.take(held, lambda: counter.compute("afresh")) == "afresh"
    assert counter.calls == ["ahead", "afresh"]


@pytest_twisted.ensureDeferred
async def test_r1_an_error_ahead_is_not_lost_the_page_is_computed_again() -> None:
    counter = Counter()
    ahead: Lookahead[str, str] = Lookahead()
    counter.fail = True
    ahead.start("next", lambda: counter.compute("ahead"))
    counter.fail = False
    assert await ahead.take("next", lambda: counter.compute("afresh")) == "afresh"
    counter.fail = True
    ahead.start("next", lambda: counter.compute("ahead"))
    with pytest.raises(RuntimeError):
        await ahead.take("next", lambda: counter.compute("afresh"))


@pytest_twisted.ensureDeferred
async def test_r1_a_dropped_computation_is_never_taken() -> None:
    counter = Counter()
    ahead: Lookahead[str, str] = Lookahead()
    ahead.start("next", lambda: counter.compute("ahead"))
    ahead.drop()
    assert await ahead.take("next", lambda: counter.compute("afresh")) == "afresh"
