"""The upload path's memory (R4): cached quotas, buffered marks flushed in one go.

Time: a fake clock.
"""

from unittest.mock import AsyncMock

import pytest
import pytest_twisted

from synapse_lux_privacy.features.quota.upload_path import CACHE_MS, DirtyMarks, QuotaCache


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


@pytest_twisted.ensureDeferred
async def test_r4_a_quota_is_read_once_per_cache_period_or_after_a_change() -> None:
    store, clock = AsyncMock(), Clock()
    store.quota.return_value = 300
    cache = QuotaCache(store, 300, clock)
    assert await cache.quota("@a:x") == 300
    clock.now += CACHE_MS - 1
    assert await cache.quota("@a:x") == 300
    assert store.quota.await_count == 1
    clock.now += 1
    store.quota.return_value = 500
    assert await cache.quota("@a:x") == 500
    store.quota.return_value = 700
    cache.forget("@a:x")
    assert await cache.quota("@a:x") == 700
    assert store.quota.await_count == 3


@pytest_twisted.ensureDeferred
async def test_r4_marks_are_merged_and_written_once_and_kept_when_writing_fails() -> None:
    store, clock = AsyncMock(), Clock()
    marks = DirtyMarks(store, clock)
    await marks.flush()
    store.mark_dirty.assert_not_awaited()
    marks.mark("@a:x", full_resync=True)
    marks.mark("@a:x", full_resync=False)
    marks.mark("@b:x", full_resync=False)
    store.mark_dirty.side_effect = RuntimeError("database down")
    with pytest.raises(RuntimeError):
        await marks.flush()
    store.mark_dirty.side_effect = None
    await marks.flush()
    store.mark_dirty.assert_awaited_with({"@a:x": True, "@b:x": False}, clock.now)
    await marks.flush()
    assert store.mark_dirty.await_count == 2
