"""A sweep under the adaptive pace (``sweep_adaptive_pace``) still deletes everything due
(R1, R3), on a real Synapse, SQLite and PostgreSQL.

Time: the test backdates its messages in the database (``events.origin_server_ts`` and
``received_ts``) to 25 months ago, then sweeps as of now. The pace itself sleeps for
real, but ``min_pace`` is set high so its pauses stay short.
"""

import time

import pytest

from tests.conftest import DATABASES, StartSynapse
from tests.harness import uid
from tests.integration.test_content_support import MONTH, backdate_events, stored_events

pytestmark = pytest.mark.integration

# Backs off at the slightest slowdown, batches of at most 7: many small batches.
ADAPTIVE = {
    "sweep_batch_size": 7,
    "sweep_adaptive_pace": {"enabled": True, "max_slowdown": 1.01, "min_pace": 1000},
}
ROOMS = 3
MESSAGES = 12


@pytest.mark.parametrize("database", DATABASES)
def test_r1_r3_a_sweep_under_the_adaptive_pace_deletes_everything_due(
    start_synapse: StartSynapse, database: str
) -> None:
    """Three rooms of twelve messages sent 25 months ago, then one fresh message each: the
    dry run's forecast and the real sweep agree, every old message is gone, the fresh ones
    stay, and the server's log shows the adaptive pace ran the sweep."""
    server = start_synapse(database, ADAPTIVE)
    admin = server.register_user(uid("admin"), admin=True)
    old: list[str] = []
    fresh: list[str] = []
    for _ in range(ROOMS):
        room = admin.create_room()
        old.extend(admin.send_message(room, f"old {i}") for i in range(MESSAGES))
        fresh.append(admin.send_message(room, "fresh"))
    db = server.db()
    backdate_events(db, old, int(time.time() * 1000) - 25 * MONTH)

    status, forecast = admin.lux("POST", "/sweep", {"dry_run": True, "rules": ["messages"]})
    assert status == 200, forecast
    status, report = admin.lux("POST", "/sweep", {"rules": ["messages"]})
    assert status == 200, report
    messages = report["results"]["messages"]
    assert messages["deleted"] == forecast["results"]["messages"]["candidates"] >= len(old)
    assert messages["errors"] == 0
    assert stored_events(db, old + fresh) == set(fresh)
    assert "adaptive pace backed off after" in server.log_text()
