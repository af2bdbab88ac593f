"""R9: every IP address and user agent Synapse stores goes ``logs.ip_retention`` after it
was recorded.

The rule visits Synapse's tables one after the other (``synapse_adapter.ip_logs``
lists them and says how each is purged). A candidate is one user's rows due in one
table (so a legal hold on the user, R13, keeps them), or one expired UI-auth session.
"""

import json
from collections import defaultdict
from collections.abc import Sequence

from synapse.module_api import ModuleApi

from synapse_lux_privacy.db import DbRunner
from synapse_lux_privacy.features.accounts.policy import due_cutoff
from synapse_lux_privacy.store.holds import HoldSet
from synapse_lux_privacy.sweep.rule import Candidate, CandidatePage, SweepContext
from synapse_lux_privacy.synapse_adapter import ip_logs


class IpLogsRule:
    """Finds IP / user-agent rows recorded before the limit, as of the sweep's time."""

    name = "ip_logs"

    def __init__(self, api: ModuleApi, run: DbRunner, ip_retention_ms: int) -> None:
        self._api = api
        self._run = run
        self._retention_ms = ip_retention_ms

    async def find_candidates(
        self, ctx: SweepContext, holds: HoldSet, cursor: str | None
    ) -> CandidatePage:
        index, after = (0, None) if cursor is None else json.loads(cursor)
        source = ip_logs.SOURCES[index]
        keys = await ip_logs.find_due(
            self._run, source, due_cutoff(ctx.as_of_ms, self._retention_ms), after, ctx.batch_size
        )
        per_user = ip_logs.is_per_user(source)
        items = [
            Candidate(item_id=f"{source}:{key}", user_id=key if per_user else None, room_id=None)
            for key in keys
        ]
        if len(keys) == ctx.batch_size:
            next_cursor: str | None = json.dumps([index, keys[-1]])
        elif index + 1 < len(ip_logs.SOURCES):
            next_cursor = json.dumps([index + 1, None])
        else:
            next_cursor = None
        return CandidatePage(items, next_cursor)

    async def delete(self, ctx: SweepContext, items: Sequence[Candidate]) -> Sequence[Candidate]:
        cutoff = due_cutoff(ctx.as_of_ms, self._retention_ms)
        by_source: dict[str, list[tuple[str, Candidate]]] = defaultdict(list)
        for item in items:
            source, _, key = item.item_id.partition(":")
            by_source[source].append((key, item))
        deleted: list[Candidate] = []
        for source, keyed in by_source.items():
            if ip_logs.is_per_user(source):
                for user_id, item in keyed:
                    if await ip_logs.purge_user(self._run, source, user_id, cutoff):
                        deleted.append(item)
            else:
                gone = set(
                    await ip_logs.purge_ui_auth_sessions(
                        self._api, self._run, [k for k, _ in keyed]
                    )
                )
                deleted.extend(item for key, item in keyed if key in gone)
        return deleted
