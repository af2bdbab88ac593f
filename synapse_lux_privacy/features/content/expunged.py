"""Expunging events (R1, R2, R3) and the module's record of what was expunged.

An event Synapse's purge cannot remove (a room's newest event, an event above a
held user's, an old room name or membership kept as an outlier) is expunged
instead: Synapse's event-expiry machinery replaces its JSON with the redacted
form. ``lux_privacy_expunged`` records it, so that no sweep does it twice and the
dry-run counts stay exact; the row goes when the event itself is purged.
"""

import logging
from collections.abc import Sequence

from synapse.module_api import ModuleApi

from synapse_lux_privacy.db import Cursor, DbRunner, chunks, placeholders
from synapse_lux_privacy.sweep.rule import Candidate
from synapse_lux_privacy.synapse_adapter import events

logger = logging.getLogger(__name__)

MIGRATIONS: Sequence[str] = (
    """
    CREATE TABLE IF NOT EXISTS lux_privacy_expunged (
        event_id TEXT PRIMARY KEY,
        room_id TEXT NOT NULL,
        rule TEXT NOT NULL,
        expunged_ts BIGINT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS lux_privacy_expunged_room ON lux_privacy_expunged (room_id)",
)

EXPUNGE = "expunge"


def item_id(kind: str, value: str) -> str:
    """A candidate's ID: what to do (``kind``) and to what."""
    return f"{kind}:{value}"


def parse_item(candidate: Candidate) -> tuple[str, str]:
    kind, _, value = candidate.item_id.partition(":")
    return kind, value


class Expunger:
    def __init__(self, api: ModuleApi, db: DbRunner) -> None:
        self._api = api
        self._db = db

    async def expunge(self, rule: str, items: Sequence[Candidate]) -> list[Candidate]:
        """Expunge these events; return those that were still there to expunge."""
        done: list[Candidate] = []
        for item in items:
            _, event_id = parse_item(item)
            if await events.expunge_event(self._api, event_id):
                await self._db(
                    "lux_privacy_record_expunged",
                    _record,
                    event_id,
                    item.room_id or "",
                    rule,
                    self._api.get_current_time_msec(),
                )
                done.append(item)
        return done

    async def expunge_each(
        self, rule: str, items: Sequence[Candidate]
    ) -> tuple[list[Candidate], dict[str, str]]:
        """Expunge these events one by one, for rules that isolate failures: those
        still there to expunge, and the ones that failed (item ID -> error class)."""
        done: list[Candidate] = []
        failed: dict[str, str] = {}
        for item in items:
            try:
                done.extend(await self.expunge(rule, [item]))
            except Exception as error:
                logger.exception("lux_privacy: expunging %s failed; continuing", item.item_id)
                failed[item.item_id] = type(error).__name__
        return done, failed

    async def forget(self, event_ids: Sequence[str]) -> None:
        """Drop the records of events that no longer exist (purged)."""
        if event_ids:
            await self._db("lux_privacy_forget_expunged", _forget, event_ids)


def _record(cur: Cursor, event_id: str, room_id: str, rule: str, now_ms: int) -> None:
    cur.execute(
        "INSERT INTO lux_privacy_expunged (event_id, room_id, rule, expunged_ts)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
        (event_id, room_id, rule, now_ms),
    )


def _forget(cur: Cursor, event_ids: Sequence[str]) -> None:
    for part in chunks(event_ids):
        cur.execute(
            f"DELETE FROM lux_privacy_expunged WHERE event_id IN ({placeholders(part)})",
            tuple(part),
        )
