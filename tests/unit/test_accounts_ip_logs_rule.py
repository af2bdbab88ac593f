"""R9's rule walks every table holding IPs, a page at a time, and keeps held users' rows.

The Synapse tables are replaced by in-memory lists (the adapter's functions are
patched); the SQL itself runs on a real Synapse in tests/integration.
Time: the sweep's "as of" is explicit.
"""

from collections.abc import Sequence
from typing import Any

import pytest
import pytest_twisted

from synapse_lux_privacy.features.accounts.ip_logs_rule import IpLogsRule
from synapse_lux_privacy.store.holds import HoldSet
from synapse_lux_privacy.sweep.rule import SweepContext
from synapse_lux_privacy.synapse_adapter import ip_logs

DAY = 86_400_000
AS_OF = 1_800_000_000_000
RETENTION = 180 * DAY

# Per source, key -> time recorded.
TABLES: dict[str, dict[str, int]] = {
    "user_ips": {"@a:x": AS_OF - 181 * DAY, "@b:x": AS_OF - 179 * DAY, "@c:x": AS_OF - 400 * DAY},
    "devices": {"@a:x": AS_OF - RETENTION},
    "user_daily_visits": {},
    "ui_auth_sessions": {"s1": AS_OF - 200 * DAY, "s2": AS_OF - DAY},
}


@pytest.fixture
def tables(monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, int]]:
    state = {source: dict(rows) for source, rows in TABLES.items()}

    async def find_due(
        run: Any, source: str, cutoff: int, after: str | None, limit: int
    ) -> list[str]:
        keys = sorted(k for k, ts in state[source].items() if ts <= cutoff)
        return [k for k in keys if after is None or k > after][:limit]

    async def purge_user(run: Any, source: str, user_id: str, cutoff: int) -> int:
        return 1 if state[source].pop(user_id, None) is not None else 0

    async def purge_ui_auth_sessions(api: Any, run: Any, ids: Sequence[str]) -> list[str]:
        return [s for s in ids if state["ui_auth_sessions"].pop(s, None) is not None]

    monkeypatch.setattr(ip_logs, "find_due", find_due)
    monkeypatch.setattr(ip_logs, "purge_user", purge_user)
    monkeypatch.setattr(ip_logs, "purge_ui_auth_sessions", purge_ui_auth_sessions)
    return state


async def _sweep(rule: IpLogsRule, ctx: SweepContext, holds: HoldSet) -> list[str]:
    """What the orchestrator does, in short: pages, holds, delete."""
    deleted: list[str] = []
    cursor = None
    while True:
        page = await rule.find_candidates(ctx, holds, cursor)
        eligible = [c for c in page.items if not holds.covers(c.user_id, c.room_id)]
        deleted += [c.item_id for c in await rule.delete(ctx, eligible)]
        if page.next_cursor is None:
            return deleted
        cursor = page.next_cursor


@pytest_twisted.ensureDeferred
async def test_r9_every_table_is_visited_in_pages_and_holds_are_kept(
    tables: dict[str, dict[str, int]],
) -> None:
    rule = IpLogsRule(api=None, run=None, ip_retention_ms=RETENTION)  # type: ignore[arg-type]
    ctx = SweepContext(as_of_ms=AS_OF, dry_run=False, batch_size=1)
    deleted = await _sweep(rule, ctx, HoldSet(user_ids=frozenset({"@c:x"})))
    assert deleted == ["user_ips:@a:x", "devices:@a:x", "ui_auth_sessions:s1"]
    # Kept: one day inside the limit, and a held user's rows (R13).
    assert tables["user_ips"] == {"@b:x": AS_OF - 179 * DAY, "@c:x": AS_OF - 400 * DAY}
    assert tables["ui_auth_sessions"] == {"s2": AS_OF - DAY}


@pytest_twisted.ensureDeferred
async def test_r9_candidates_name_the_user_so_holds_apply(
    tables: dict[str, dict[str, int]],
) -> None:
    rule = IpLogsRule(api=None, run=None, ip_retention_ms=RETENTION)  # type: ignore[arg-type]
    ctx = SweepContext(as_of_ms=AS_OF, dry_run=True, batch_size=10)
    page = await rule.find_candidates(ctx, HoldSet(), None)
    assert [(c.item_id, c.user_id) for c in page.items] == [
        ("user_ips:@a:x", "@a:x"),
        ("user_ips:@c:x", "@c:x"),
    ]
    assert page.next_cursor is not None
    for _ in range(2):
        page = await rule.find_candidates(ctx, HoldSet(), page.next_cursor)
    page = await rule.find_candidates(ctx, HoldSet(), page.next_cursor)
    assert [(c.item_id, c.user_id) for c in page.items] == [("ui_auth_sessions:s1", None)]
    assert page.next_cursor is None
