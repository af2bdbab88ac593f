"""Waiting for Synapse's user parter after an R12 deletion (R7, R12): the polling logic,
with a fake database answer and a fake clock (no Synapse, no sleeping)."""

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from synapse_lux_privacy.synapse_adapter.accounts import PartingNotFinished, wait_until_parted


class FakeApi:
    def __init__(self) -> None:
        self.slept = 0.0

    async def sleep(self, seconds: float) -> None:
        self.slept += seconds


def queued_for(polls: int | None) -> Callable[..., Any]:
    """A runner that says the user is still queued for ``polls`` polls (None: for ever)."""
    answers = {"n": 0}

    async def run(name: str, txn: Callable[..., Any]) -> bool:
        answers["n"] += 1
        assert name == "lux_privacy_parting_pending"
        return polls is None or answers["n"] <= polls

    return run


def test_r12_waits_while_the_parter_works_and_returns_once_it_is_done() -> None:
    api = FakeApi()
    asyncio.run(wait_until_parted(api, queued_for(3), "@a:x", timeout_s=10))  # type: ignore[arg-type]
    assert api.slept == pytest.approx(0.6)


def test_r12_a_parting_still_queued_after_the_timeout_is_a_failure_not_a_deletion() -> None:
    api = FakeApi()
    with pytest.raises(PartingNotFinished, match="still parting it from its rooms"):
        asyncio.run(wait_until_parted(api, queued_for(None), "@a:x", timeout_s=1))  # type: ignore[arg-type]
    assert api.slept == pytest.approx(1.0)
