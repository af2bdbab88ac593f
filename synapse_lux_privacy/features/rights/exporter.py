"""Builds one data-subject archive (R14, GDPR art. 15) on disk, with bounded memory.

The archive is written to ``<export_id>.zip.part`` in ``exports.directory`` and
renamed once complete, so a half-written archive is never served. The user's events
are read in one pass over their history (the quota ledger's index), spooled per room
to files beside the archive, then added room by room. Memory holds one page of events
(``EVENTS_PER_PAGE``) or one chunk of a file at a time; every write to
the zip runs in a thread, and the export pauses after each step twice as long as the
step took (``PAUSE_RATIO``), so that it never takes more than a third of a core from
the users' requests. Progress (entries, bytes on disk) is written to the
export's record after each page and file, for ``GET .../exports/{export_id}``.

What the archive holds and cannot hold: ``readme.py`` and docs/data-subject-requests.md.
A legal hold (R13) is never revealed: the report's hold fields, and the deletion
dates that a hold would blank, are left out (``hold_free``), for every user alike.
"""

import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

from synapse.module_api import ModuleApi, UserID

from synapse_lux_privacy.config import LuxPrivacyConfig
from synapse_lux_privacy.db import DbRunner
from synapse_lux_privacy.features.rights.archive import ArchiveWriter, RoomSpool
from synapse_lux_privacy.features.rights.readme import readme_text
from synapse_lux_privacy.features.rights.request_store import ExportRecord
from synapse_lux_privacy.synapse_adapter import exports, media

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Events loaded and serialised per step. Both run on Synapse's event loop, which a
# page holds for as long as it takes: with 200 a page, other users' send p99 rose to
# 1.73x idle while a 100,000-message user was exported (benchmarks/README.md, export.py).
EVENTS_PER_PAGE = 50
MEDIA_PER_PAGE = 100
# After each page of events and each file, the export pauses this many times as long
# as the step took, so that it takes at most a third of a core from the users' requests
# (an export is not urgent; the users' sends are): with 1, pages of 50 gave other
# users' send p99 from 0.85x to 1.65x idle over three runs, with 2 it stays below 1.5x.
PAUSE_RATIO = 2.0

# Report keys left out of an export: they would tell a held user about the hold
# (R13), directly or by a deletion date left blank.
_HOLD_KEYS = re.compile(r"held|hold|_due_ts$|^next_deletion_ts$")

ReportFn = Callable[[str], Awaitable[Mapping[str, Any]]]
Progress = Callable[[int, int], Awaitable[None]]


def hold_free(value: Any) -> Any:
    """The report without anything that reveals a legal hold, at any depth."""
    if isinstance(value, Mapping):
        return {k: hold_free(v) for k, v in value.items() if not _HOLD_KEYS.search(str(k))}
    if isinstance(value, list):
        return [hold_free(v) for v in value]
    return value


def room_file(room_id: str) -> str:
    """``messages/<room>.jsonl``, the room ID percent-encoded (safe on every system)."""
    return f"messages/{quote(room_id, safe='')}.jsonl"


def media_file(media_id: str, upload_name: str | None) -> str:
    """``media/<media_id>[-<upload name>]``, the name reduced to safe characters."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", upload_name or "").strip("._")[:100]
    return f"media/{media_id}-{name}" if name else f"media/{media_id}"


class Exporter:
    def __init__(
        self,
        api: ModuleApi,
        db: DbRunner,
        config: LuxPrivacyConfig,
        report: ReportFn,
        ledger_state: exports.LedgerState,
    ) -> None:
        self._api = api
        self._db = db
        self._config = config
        self._report = report
        self._ledger_state = ledger_state
        self._step_began = time.monotonic()

    async def _thread(self, func: Callable[..., T], *args: Any) -> T:
        return await self._api.defer_to_thread(func, *args)

    async def _pause(self) -> None:
        """Give way to the users' requests after a step (``PAUSE_RATIO``)."""
        took = time.monotonic() - self._step_began
        await self._api.sleep(took * PAUSE_RATIO)
        self._step_began = time.monotonic()

    async def write(self, record: ExportRecord, path: str, progress: Progress) -> ArchiveWriter:
        """Write the whole archive of ``record.user_id`` to ``path``; the writer, closed."""
        self._step_began = time.monotonic()
        writer = await self._thread(ArchiveWriter, path)
        try:
            await self._write(writer, record.user_id, progress)
        finally:
            await self._thread(writer.close)
        return writer

    async def _write(self, writer: ArchiveWriter, user_id: str, progress: Progress) -> None:
        now = self._api.get_current_time_msec()
        report = dict(await self._report(user_id))
        await self._thread(writer.write_text, "README.txt", readme_text(self._config, user_id, now))
        await self._thread(writer.write_json, "report.json", hold_free(report))
        profile = await self._api.get_profile_for_user(UserID.from_string(user_id).localpart)
        await self._thread(
            writer.write_json,
            "profile.json",
            {"displayname": profile.display_name, "avatar_url": profile.avatar_url},
        )
        await self._thread(writer.write_json, "account.json", await self._account(user_id, report))
        await self._thread(
            writer.write_json, "sessions.json", await exports.sessions(self._db, user_id)
        )
        rooms = await exports.memberships(self._db, user_id)
        await self._thread(writer.write_json, "rooms.json", _rooms_json(rooms))
        await progress(writer.files, await self._thread(lambda: writer.size))
        room_ids = list(dict.fromkeys(r["room_id"] for r in rooms))
        await self._write_messages(writer, user_id, room_ids, progress)
        await self._write_media(writer, user_id, progress)

    async def _account(self, user_id: str, report: Mapping[str, Any]) -> dict[str, Any]:
        info = await self._api.get_userinfo_by_id(user_id)
        account: dict[str, Any] = {
            "user_id": user_id,
            "threepids": await self._api.get_threepids_for_user(user_id),
            "account_deletion_warnings": report.get("account_deletion_warnings", []),
            "directory_consent": {
                k: v for k, v in report.items() if k.startswith("directory_consent")
            },
        }
        if info is not None:
            account.update(
                created_ts=info.creation_ts * 1000,
                deactivated=info.is_deactivated,
                server_admin=info.is_admin,
                user_type=info.user_type,
                terms_consent={"version": info.consent_version, "ts": info.consent_ts},
            )
        return account

    async def _write_messages(
        self, writer: ArchiveWriter, user_id: str, rooms: list[str], progress: Progress
    ) -> None:
        """``messages/<room>.jsonl``: the user's events, spooled per room to disk as they
        are read (one pass over the user's history), then each room's file added."""
        spool = await self._thread(RoomSpool, writer.path + ".rooms")
        try:
            async for ids in self._event_pages(user_id, rooms):
                by_room: dict[str, list[Any]] = {}
                for event in await exports.client_events(self._api, user_id, ids):
                    by_room.setdefault(event["room_id"], []).append(event)
                await self._thread(spool.append, by_room)
                await progress(writer.files, await self._thread(lambda: writer.size))
                await self._pause()
            for room_id, path in spool.rooms():
                with open(path, "rb") as source:
                    await self._thread(writer.copy_file, room_file(room_id), source, True)
                await self._pause()
        finally:
            await self._thread(spool.remove)

    async def _event_pages(self, user_id: str, rooms: list[str]) -> AsyncIterator[list[str]]:
        """Pages of the IDs of the events the user sent: the quota ledger's, then those
        sent since its watermark (read first, so that an event the accounting adds to
        the ledger meanwhile comes once); before the ledger is complete, each room's
        events by sender."""
        watermark = await exports.ledger_is_complete(self._db, self._ledger_state)
        if watermark is None:
            for room_id in rooms:
                after: tuple[int, str] | None = None
                while True:
                    page = await exports.room_events_by_sender(
                        self._db, user_id, room_id, after, EVENTS_PER_PAGE
                    )
                    if page:
                        yield [event_id for _, event_id in page]
                    if len(page) < EVENTS_PER_PAGE:
                        break
                    after = page[-1]
            return
        since = await exports.sent_since(self._db, user_id, watermark)
        tail = set(since)
        after = None
        while True:
            page = await exports.ledger_page(self._db, user_id, after, EVENTS_PER_PAGE)
            ids = [event_id for _, event_id in page if event_id not in tail]
            if ids:
                yield ids
            if len(page) < EVENTS_PER_PAGE:
                break
            after = page[-1]
        for at in range(0, len(since), EVENTS_PER_PAGE):
            yield since[at : at + EVENTS_PER_PAGE]

    async def _write_media(self, writer: ArchiveWriter, user_id: str, progress: Progress) -> None:
        listed: list[dict[str, Any]] = []
        after: tuple[int, str] | None = None
        while True:
            page = await media.user_uploads_page(self._db, user_id, after, MEDIA_PER_PAGE)
            for item, upload_name in page:
                listed.append(await self._copy_media(writer, item, upload_name))
                await progress(writer.files, await self._thread(lambda: writer.size))
                await self._pause()
            if len(page) < MEDIA_PER_PAGE:
                break
            after = (page[-1][0].created_ts, page[-1][0].media_id)
        await self._thread(writer.write_json, "media.json", listed)

    async def _copy_media(
        self, writer: ArchiveWriter, item: media.LocalMedia, upload_name: str | None
    ) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "mxc": media.mxc(self._api.server_name, item.media_id),
            "media_type": item.media_type,
            "upload_name": upload_name,
            "created_ts": item.created_ts,
            "size": item.size,
            "file": None,
        }
        found = await self._thread(media.open_local_media, self._api, item.media_id)
        if found is None:
            logger.warning("lux_privacy: export: no store holds %s", item.media_id)
            entry["missing"] = True
            return entry
        source, stream = found
        name = media_file(item.media_id, upload_name)
        try:
            size, sha256 = await self._thread(writer.copy_file, name, stream)
        finally:
            await self._thread(stream.close)
        entry.update(file=name, size=size, sha256=sha256, read_from=source)
        return entry


def _rooms_json(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Memberships by room, oldest first; the encryption that makes the room's
    messages ciphertext in ``messages/`` (the server holds no keys)."""
    rooms: dict[str, dict[str, Any]] = {}
    for row in rows:
        room = rooms.setdefault(
            row["room_id"],
            {
                "room_id": row["room_id"],
                "name": row["room_name"],
                "encryption": row["encryption"],
                "memberships": [],
            },
        )
        if row["encryption"]:
            room["note"] = (
                "End-to-end encrypted room: messages are ciphertext; the keys are only on"
                " the members' devices, never on the server."
            )
        room["memberships"].append({k: row[k] for k in ("membership", "event_id", "ts", "by")})
    return list(rooms.values())


def archive_path(directory: str, export_id: str) -> str:
    return os.path.join(directory, f"{export_id}.zip")
