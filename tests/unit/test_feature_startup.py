"""Start-up isolation (issue #11): one feature that fails to start does not stop the others."""

import logging

import pytest
import pytest_twisted

from synapse_lux_privacy import metrics
from synapse_lux_privacy.feature import Feature, start_features


class Recorder(Feature):
    def __init__(self, started: list[str], fail: bool = False) -> None:
        self.started = started
        self.fail = fail

    async def start(self) -> None:
        if self.fail:
            raise RuntimeError("cannot reach the national directory")
        self.started.append(type(self).__name__)


class First(Recorder):
    pass


class Broken(Recorder):
    pass


class Last(Recorder):
    pass


@pytest_twisted.ensureDeferred
async def test_a_feature_that_fails_to_start_is_logged_counted_and_the_others_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    started: list[str] = []
    counter = metrics.feature_start_failures_total.labels("startup.test", "Broken")
    before = counter._value.get()
    with caplog.at_level(logging.ERROR):
        failed = await start_features(
            [First(started), Broken(started, fail=True), Last(started)], "startup.test"
        )
    assert failed == ["Broken"]
    assert started == ["First", "Last"]
    assert counter._value.get() == before + 1
    (record,) = [r for r in caplog.records if "Broken failed to start" in r.getMessage()]
    assert record.exc_info is not None and "national directory" in str(record.exc_info[1])
