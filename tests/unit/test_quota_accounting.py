"""The events watermark (R4, R6): starts at the current position, never reads past what
Synapse has persisted, counts each local event once and remote ones never.

Synapse is mocked: a list of events stands for its ``events`` table.
"""

from collections.abc import Sequence
from pathlib import Path
from unittest.mock import AsyncMock, MagicMock

import pytest
import pytest_twisted

from synapse_lux_privacy.db import Cursor
from synapse_lux_privacy.features.quota import accounting
from synapse_lux_privacy.features.quota.accounting import EVENTS_WATERMARK, Accounting
from synapse_lux_privacy.features.quota.schema import QUOTA_MIGRATIONS
from synapse_lux_privacy.features.quota.usage_store import Usage, UsageStore
from synapse_lux_privacy.store.schema import MIGRATIONS
from synapse_lux_privacy.synapse_adapter import quota as synapse_quota
from synapse_lux_privacy.synapse_adapter.quota import SentEvent
from tests.unit.sqlite_runner import SqliteRunner, migrated_runner


class FakeSynapse:
    def __init__(self) -> None:
        self.events: list[SentEvent] = []
        self.persisted = 0

    def send(self, sender: str, size: int) -> None:
        stream = len(self.events) + 1
        self.events.append(SentEvent(f"${stream}", sender, "!r", stream, stream, size, 10))

    def events_sent_txn(
        self, cur: Cursor, server: str, after: int, upto: int, limit: int
    ) -> Sequence[SentEvent]:
        return [e for e in self.events if after < e.stream <= upto][:limit]


@pytest.fixture
def synapse(monkeypatch: pytest.MonkeyPatch) -> FakeSynapse:
    fake = FakeSynapse()
    monkeypatch.setattr(synapse_quota, "events_sent_txn", fake.events_sent_txn)
    monkeypatch.setattr(synapse_quota, "persisted_stream_position", lambda api: fake.persisted)
    monkeypatch.setattr(accounting, "EVENTS_PER_TXN", 2)
    return fake


@pytest.fixture
def db(tmp_path: Path) -> SqliteRunner:
    return migrated_runner(tmp_path / "lux.db", {**MIGRATIONS, "quota": QUOTA_MIGRATIONS})


def make(db: SqliteRunner) -> Accounting:
    api = MagicMock()
    api.server_name = "x"
    api.is_mine.side_effect = lambda user_id: user_id.endswith(":x")
    return Accounting(api, db, UsageStore(db), AsyncMock(), lambda: 0)


@pytest_twisted.ensureDeferred
async def test_r4_the_watermark_starts_now_and_counts_each_local_event_once(
    db: SqliteRunner, synapse: FakeSynapse
) -> None:
    store = UsageStore(db)
    synapse.send("@a:x", 100)  # before the first start: left to reconciliation
    synapse.persisted = 1
    counting = make(db)
    assert await counting.add_new_events() == 0
    assert await store.state(EVENTS_WATERMARK) == 1

    for sender in ("@a:x", "@b:elsewhere", "@a:x", "@a:x", "@a:x"):
        synapse.send(sender, 50)
    synapse.persisted = 4  # 5 and 6 are numbered but not persisted yet
    assert await counting.add_new_events() == 3
    assert await store.usage("@a:x") == Usage(0, 100)
    assert await store.usage("@b:elsewhere") == Usage(0, 0)
    assert await store.state(EVENTS_WATERMARK) == 4

    synapse.persisted = 6
    assert await counting.add_new_events() == 2
    assert await counting.add_new_events() == 0
    assert await store.usage("@a:x") == Usage(0, 200)
