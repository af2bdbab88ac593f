"""The redacted content rule (R5): a redacted event's original content goes in time.

Synapse hides a redacted event's content at once but keeps the original JSON (and
its search entry) until its own ``redaction_retention_period`` job prunes it, if
that is configured at all. This rule prunes every original whose redaction was
received more than ``retention.redacted_content`` ago, whatever Synapse's setting
says, with the same steps as Synapse's job, and drops its search entry. An
original whose row is due is left to the messages rule, which runs first.
"""

from collections.abc import Sequence

from synapse.module_api import ModuleApi

from synapse_lux_privacy.db import DbRunner, Dialect
from synapse_lux_privacy.features.content import cursor
from synapse_lux_privacy.features.content.expunged import item_id, parse_item
from synapse_lux_privacy.features.content.policy import ContentPolicy, sent_before
from synapse_lux_privacy.store.holds import HoldSet
from synapse_lux_privacy.sweep.rule import Candidate, CandidatePage, SweepContext
from synapse_lux_privacy.synapse_adapter import events

CENSOR = "censor"


class RedactedContentRule:
    name = "redacted_content"

    def __init__(
        self, api: ModuleApi, db: DbRunner, dialect: Dialect, policy: ContentPolicy
    ) -> None:
        self._api = api
        self._db = db
        self._dialect = dialect
        self._policy = policy

    async def find_candidates(
        self, ctx: SweepContext, holds: HoldSet, cursor_value: str | None
    ) -> CandidatePage:
        parts = cursor.decode(cursor_value)
        rows = await events.uncensored_redactions(
            self._db,
            self._dialect,
            sent_before(ctx.as_of_ms, self._policy.retention.redacted_content_ms),
            None if parts is None else (parts[0], parts[1]),
            ctx.batch_size,
        )
        items = [
            Candidate(
                # Event IDs never contain a space.
                item_id(CENSOR, f"{r.redaction_id} {r.original.event_id}"),
                r.original.sender,
                r.original.room_id,
                r.original.size,
            )
            for r in rows
            if not self._policy.row_due(
                r.original.type, r.original.msgtype, r.original.age_ts, ctx.as_of_ms
            )
        ]
        if len(rows) < ctx.batch_size:
            return CandidatePage(items, None)
        return CandidatePage(items, cursor.encode(rows[-1].received_ts, rows[-1].redaction_id))

    async def delete(self, ctx: SweepContext, items: Sequence[Candidate]) -> Sequence[Candidate]:
        deleted: list[Candidate] = []
        for item in items:
            redaction_id, event_id = parse_item(item)[1].split(" ", 1)
            if await events.censor_redacted_event(self._api, redaction_id, event_id):
                deleted.append(item)
        return deleted
