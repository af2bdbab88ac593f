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

from synapse_lux_privacy.db import CHUNK, Cursor, DbRunner, chunks, placeholders
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


def parse_item_id(value: str) -> tuple[str, str]:
    """(kind, value) of an item ID written by ``item_id``."""
    kind, _, rest = value.partition(":")
    return kind, rest


def parse_item(candidate: Candidate) -> tuple[str, str]:
    return parse_item_id(candidate.item_id)


class Expunger:
    def __init__(self, api: ModuleApi, db: DbRunner) -> None:
        self._api = api
        self._db = db

    async def expunge(self, rule: str, items: Sequence[Candidate]) -> list[Candidate]:
        """Expunge these events; return those that were still there to expunge.

        The whole batch in one transaction, then one record of what was done: a
        failure stops (and rolls back) the whole batch."""
        by_event = {parse_item(item)[1]: item for item in items}
        if not by_event:
            return []
        done = [by_event[e] for e in await events.expunge_events(self._api, list(by_event))]
        if done:
            now_ms = self._api.get_current_time_msec()
            rows = [(parse_item(c)[1], c.room_id or "", rule, now_ms) for c in done]
            await self._db("lux_privacy_record_expunged", _record, rows)
        return done

    async def expunge_each(
        self, rule: str, items: Sequence[Candidate]
    ) -> tuple[list[Candidate], dict[str, str]]:
        """Expunge these events for a rule that isolates failures: the whole batch at
        once, and if that fails (rolled back as a whole), one event at a time, so that
        an event Synapse cannot expunge is the only failure. Those still there to
        expunge, and the ones that failed (item ID -> error class)."""
        try:
            return await self.expunge(rule, items), {}
        except Exception:
            logger.warning("lux_privacy: expunging a batch failed; one event at a time")
        done: list[Candidate] = []
        failed: dict[str, str] = {}
        for item in items:
            try:
                done.extend(await self.expunge(rule, [item]))
            except Exception as error:
                logger.exception("lux_privacy: expunging %s failed; continuing", item.item_id)
                failed[item.item_id] = type(error).__name__
        return done, failed


def _record(cur: Cursor, rows: Sequence[tuple[str, str, str, int]]) -> None:
    for start in range(0, len(rows), CHUNK // 4):
        part = rows[start : start + CHUNK // 4]
        cur.execute(
            "INSERT INTO lux_privacy_expunged (event_id, room_id, rule, expunged_ts) VALUES "
            + ", ".join("(?, ?, ?, ?)" for _ in part)
            + " ON CONFLICT (event_id) DO NOTHING",
            tuple(value for row in part for value in row),
        )


def forget_txn(cur: Cursor, event_ids: Sequence[str]) -> None:
    """Drop the records of events that no longer exist (purged)."""
    for part in chunks(event_ids):
        cur.execute(
            f"DELETE FROM lux_privacy_expunged WHERE event_id IN ({placeholders(part)})",
            tuple(part),
        )
