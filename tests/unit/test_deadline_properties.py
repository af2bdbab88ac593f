"""R9, R11, R12: one deadline, used by the sweep's SQL and by the report (R14).

Property-based (hypothesis): for random devices and accounts, the adapter queries the
sessions and accounts rules run (``find_idle_devices``, ``find_idle_accounts``, over
a SQLite database with the columns of Synapse's ``users`` and ``devices`` they read)
select, with the cutoff ``policy.due_cutoff`` gives them, exactly what the report's
dates (``policy.logout_due_ts``, ``policy.account_deletion_due_ts``, from the rows
``list_devices`` reads) call due. Time: an injected ``as_of`` at or before ``NOW``;
nothing sleeps.
"""

from collections.abc import Coroutine
from typing import Any, TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from synapse_lux_privacy.features.accounts import policy
from synapse_lux_privacy.features.accounts.schema import ACCOUNTS_MIGRATIONS
from synapse_lux_privacy.store.schema import MIGRATIONS, apply_migrations
from synapse_lux_privacy.synapse_adapter import accounts, devices
from tests.unit.sqlite_runner import SqliteRunner

T = TypeVar("T")

DAY = 86_400_000
NOW = 1_800_000_000_000
USER = "@u:lux.test"

times = st.integers(min_value=NOW - 1500 * DAY, max_value=NOW)
limits = st.integers(min_value=1000, max_value=400 * DAY)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Drive a coroutine that never waits (the SQLite runner answers at once)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    raise AssertionError("the coroutine waited")


# A device: Synapse's last_seen, and the module's record (first seen, copied last_seen)
# or None when the module has not recorded it yet.
device_rows = st.tuples(st.none() | times, st.none() | st.tuples(times, st.none() | times))


def database(
    rows: list[tuple[int | None, tuple[int, int | None] | None]],
    created_s: int,
    recorded: int | None,
) -> SqliteRunner:
    runner = SqliteRunner(":memory:")
    cur = runner.conn.cursor()
    apply_migrations(cur, "sqlite", {**MIGRATIONS, **ACCOUNTS_MIGRATIONS})
    cur.execute(
        "CREATE TABLE users (name TEXT PRIMARY KEY, creation_ts BIGINT,"
        " deactivated SMALLINT NOT NULL DEFAULT 0, appservice_id TEXT)"
    )
    cur.execute(
        "CREATE TABLE devices (user_id TEXT NOT NULL, device_id TEXT NOT NULL,"
        " hidden BOOLEAN NOT NULL DEFAULT 0, last_seen BIGINT)"
    )
    cur.execute("INSERT INTO users (name, creation_ts) VALUES (?, ?)", (USER, created_s))
    if recorded is not None:
        cur.execute("INSERT INTO lux_privacy_user_activity VALUES (?, ?)", (USER, recorded))
    for i, (last_seen, record) in enumerate(rows):
        cur.execute(
            "INSERT INTO devices (user_id, device_id, last_seen) VALUES (?, ?, ?)",
            (USER, f"D{i}", last_seen),
        )
        if record is not None:
            cur.execute(
                "INSERT INTO lux_privacy_device_activity VALUES (?, ?, ?, ?)",
                (USER, f"D{i}", *record),
            )
    return runner


@given(st.integers(), st.integers(min_value=0, max_value=2**40), st.integers())
def test_r9_r11_r12_the_cutoff_and_the_deadline_agree(basis: int, limit: int, as_of: int) -> None:
    assert (basis <= policy.due_cutoff(as_of, limit)) == (policy.deadline_ts(basis, limit) <= as_of)


@settings(max_examples=80, deadline=None)
@given(st.lists(device_rows, max_size=4), limits, times)
def test_r11_the_sessions_sql_selects_exactly_the_sessions_the_report_calls_due(
    rows: list[tuple[int | None, tuple[int, int | None] | None]], limit: int, as_of: int
) -> None:
    runner = database(rows, NOW // 1000, None)
    known = [policy.DeviceActivity(*r) for r in run(devices.list_devices(runner, USER))]
    selected = run(
        devices.find_idle_devices(runner, "sqlite", policy.due_cutoff(as_of, limit), None, None)
    )
    assert {d for _, d in selected} == {
        d.device_id for d in known if policy.logout_due_ts(d, limit, NOW) <= as_of
    }
    runner.conn.close()


@settings(max_examples=80, deadline=None)
@given(
    st.lists(device_rows, max_size=3),
    st.integers(min_value=(NOW - 2000 * DAY) // 1000, max_value=NOW // 1000),
    st.none() | times,
    limits,
    limits,
    times,
)
def test_r12_the_accounts_sql_selects_exactly_the_accounts_the_report_calls_due(
    rows: list[tuple[int | None, tuple[int, int | None] | None]],
    created_s: int,
    recorded: int | None,
    delete_after: int,
    logout_after: int,
    as_of: int,
) -> None:
    runner = database(rows, created_s, recorded)
    known = [policy.DeviceActivity(*r) for r in run(devices.list_devices(runner, USER))]
    last = policy.last_active_ts(recorded, created_s * 1000, known)
    assert last is not None
    due = policy.account_deletion_due_ts(last, known, delete_after, logout_after, NOW) <= as_of
    selected = run(
        accounts.find_idle_accounts(
            runner,
            "sqlite",
            policy.due_cutoff(as_of, delete_after),
            policy.due_cutoff(as_of, logout_after),
            None,
            None,
        )
    )
    assert selected == ([USER] if due else [])
    runner.conn.close()
