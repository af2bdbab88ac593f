"""Loading the module into a real Synapse: config errors, warnings, restarts, periodic sweeps.

Time: the periodic sweep runs with a 2-second interval (allow_short_periods), so the
test waits seconds, never months.
"""

import time
from typing import Any

import pytest

from tests.conftest import StartSynapse
from tests.harness import SynapseServer
from tests.harness.synapse_server import SERVER_NAME

pytestmark = pytest.mark.integration

MODULE_TABLES = {
    "lux_privacy_schema_version",
    "lux_privacy_audit",
    "lux_privacy_holds",
    "lux_privacy_hold_log",
    "lux_privacy_lock",
    "lux_privacy_sweeps",
}


def test_r1_a_minutes_typo_stops_synapse_with_the_key_and_a_suggestion(
    start_synapse: StartSynapse,
) -> None:
    with pytest.raises(RuntimeError) as failure:
        start_synapse("sqlite", {"retention": {"messages": "24m"}})
    message = str(failure.value)
    assert "retention.messages" in message
    assert "did you mean 24M" in message


def test_an_unknown_key_stops_synapse(start_synapse: StartSynapse) -> None:
    with pytest.raises(RuntimeError) as failure:
        start_synapse("sqlite", {"retention": {"mesages": "24M"}})
    assert "retention.mesages: unknown key" in str(failure.value)


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_tables_survive_restart_and_periodic_sweep_runs(
    start_synapse: StartSynapse, database: str
) -> None:
    """Schema creation is idempotent across restarts; the periodic sweep records its runs.

    Also: a module configured with dry_run never deletes, whatever the request says, and
    Synapse's own IP pruning left on (R9, R13: it ignores legal holds), and Synapse's
    default push.include_content (R15, the harness does not set it), and dry_run itself
    (nothing is deleted: R1-R12), are logged as warnings at start-up.
    """
    server: SynapseServer = start_synapse(
        database,
        {
            "dry_run": True,
            "allow_short_periods": True,
            "sweep_interval": "2s",
            "allow_future_sweeps": True,
        },
        {"user_ips_max_age": "90d"},
    )
    admin = server.register_user("boss", admin=True)
    # The tables are created in the background at start-up, or by the first use.
    status, hold = admin.lux("PUT", "/holds/keep", {"user_id": admin.user_id, "reason": "r"})
    assert (status, hold["hold_id"]) == (201, "keep")
    assert MODULE_TABLES <= server.db().tables()
    _wait_for(lambda: _periodic_sweeps(server) >= 1, "a periodic sweep")
    assert 'user_ips_max_age is "90d": Synapse then deletes' in server.log_text()
    assert "push.include_content is absent (Synapse default true)" in server.log_text()
    assert "dry_run is true, so nothing is deleted" in server.log_text()

    future = int(time.time() * 1000) + 900 * 86_400_000
    status, report = admin.lux("POST", "/sweep", {"dry_run": False, "as_of": future})
    assert (status, report["dry_run"], report["as_of"]) == (200, True, future)

    server.restart()
    assert MODULE_TABLES <= server.db().tables()
    versions = server.db().query("SELECT component, version FROM lux_privacy_schema_version")
    assert dict(versions)["core"] > 0 and len(versions) == len({c for c, _ in versions})
    status, listing = admin.lux("GET", "/holds")
    assert [h["hold_id"] for h in listing["holds"]] == ["keep"]
    assert "Traceback" not in server.log_text()


def _periodic_sweeps(server: SynapseServer) -> int:
    row = server.db().query_one(
        "SELECT COUNT(*) FROM lux_privacy_sweeps WHERE status = 'completed'"
    )
    return int(row[0]) if row else 0


def _wait_for(predicate: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_r12_startup_log_names_admins_not_exempt_and_periods_beyond_the_notice(
    start_synapse: StartSynapse, database: str
) -> None:
    """config.md "Exempt lists" and "Beyond the notice": at start-up the module logs each
    server admin that accounts.exempt does not cover, and each period longer than the
    notice's. The admins exist from the first start; the restart shows the warnings."""
    kept, other = "kept-admin", "other-admin"
    server = start_synapse(
        database,
        {"retention": {"messages": "10y"}, "accounts": {"exempt": [f"@{kept}:{SERVER_NAME}"]}},
    )
    server.register_user(kept, admin=True)
    server.register_user(other, admin=True)
    server.register_user("plain-user")
    server.restart()
    server.wait_for_log(f"server admin {server.user_id(other)} is not in accounts.exempt")
    log = server.log_text()
    assert f"server admin {server.user_id(kept)}" not in log
    assert "server admin @plain-user" not in log
    assert "retention.messages is 10y; it should be at most 24M" in log
    assert "Traceback" not in log
