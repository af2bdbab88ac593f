"""Helpers for the content-retention integration tests (R1-R6, R13); no tests here.

* ``ContentServer``: the homeserver these tests own (one per database), configured
  with a file storage provider, per-type rules, small sweep batches, and Synapse's
  own redaction pruning switched off (``redaction_retention_period: null``) so that
  R5 is seen to be the module's work.
* Eras: each test places its data in its own far-past era (backdated rows, or the
  timestamps of injected federation events) and sweeps "as of" a time in that era,
  so that a sweep only ever finds that test's data due, whatever ran before.
* ``RemoteServer``: a fake second homeserver that joins rooms and sends events
  through Synapse's federation API (``make_join`` / ``send_join`` / ``send``),
  with events signed by its own key (R6).
"""

from __future__ import annotations

import io
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from PIL import Image
from signedjson.key import encode_verify_key_base64, generate_signing_key, get_verify_key
from signedjson.sign import sign_json
from synapse.api.room_versions import KNOWN_ROOM_VERSIONS
from synapse.crypto.event_signing import add_hashes_and_signatures
from synapse.events import make_event_from_dict

from tests.harness import Database, MatrixClient, PostgresCluster, SynapseServer, uid

HOUR = 3_600_000
DAY = 86_400_000
MONTH = 30 * DAY
YEAR = 365 * DAY
# Eras start in 1980 and are three years apart: longer than any lifetime swept here
# (24 months and a day), and the last one ends before today's data could be due.
_ERA_ZERO = 315_532_800_000
_ERA_LENGTH = 3 * 365 * DAY

MODULE_CONFIG: dict[str, Any] = {
    "sweep_batch_size": 5,
    "retention": {
        "rules": [
            {"match": {"type": "m.room.message", "msgtype": "m.video"}, "lifetime": "6M"},
            {"match": {"media_type": "audio/*"}, "lifetime": "3M"},
        ]
    },
}
CONTENT_RULES = ["messages", "attachments", "remote_media", "redacted_content"]


def era(index: int) -> int:
    """The start of era ``index`` (1..14): a test's data lives at or after it."""
    assert 1 <= index <= 14
    return _ERA_ZERO + index * _ERA_LENGTH


def end_of_era(admin: MatrixClient, index: int) -> None:
    """Sweep everything due by the end of the era, so no later era finds this era's data."""
    sweep(admin, era(index) + _ERA_LENGTH - DAY)


def start_content_server(
    request: pytest.FixtureRequest,
    tmp_dir: Path,
    database: str,
    module_config: dict[str, Any] | None = None,
) -> SynapseServer:
    """A content server on ``database``: ``MODULE_CONFIG``, or ``module_config``."""
    pg_params = None
    if database == "postgres":
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        pg_params = cluster.create_database(uid("content_"))
    provider_dir = tmp_dir / "provider"
    provider_dir.mkdir(parents=True, exist_ok=True)
    extra = {
        "media_storage_providers": [
            {
                "module": "synapse.media.storage_provider.FileStorageProviderBackend",
                "store_local": True,
                "store_remote": True,
                "store_synchronous": True,
                "config": {"directory": str(provider_dir)},
            }
        ],
        "redaction_retention_period": None,
    }
    config = MODULE_CONFIG if module_config is None else module_config
    server = SynapseServer(tmp_dir, database, pg_params, config, extra)  # type: ignore[arg-type]
    server.start()
    return server


def own_content_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    module_config: dict[str, Any] | None = None,
) -> Iterator[SynapseServer]:
    """A test module's own content server on ``request.param`` (a database), for a
    module-scoped fixture: destructive sweeps never touch another module's data."""
    database: str = request.param
    tmp_dir = tmp_path_factory.mktemp(f"{name}-{database}")
    server = start_content_server(request, tmp_dir, database, module_config)
    yield server
    server.stop()


def provider_dir(server: SynapseServer) -> Path:
    return server.dir / "provider"


# -- sweeps ------------------------------------------------------------------------------


def sweep(
    admin: MatrixClient, as_of: int, rules: list[str] | None = None, dry_run: bool = False
) -> dict[str, dict[str, int]]:
    """Run a sweep of the content rules (or ``rules``) as of ``as_of``; its results."""
    status, report = admin.lux(
        "POST", "/sweep", {"as_of": as_of, "dry_run": dry_run, "rules": rules or CONTENT_RULES}
    )
    assert status == 200, report
    results: dict[str, dict[str, int]] = report["results"]
    return results


# -- database ----------------------------------------------------------------------------


def in_list(values: list[str]) -> str:
    return ", ".join("?" for _ in values)


def backdate_events(db: Database, event_ids: list[str], ts: int) -> None:
    """Pretend these events were sent (and received) at ``ts``."""
    db.execute(
        f"UPDATE events SET origin_server_ts = ?, received_ts = ? WHERE event_id IN"
        f" ({in_list(event_ids)})",
        (ts, ts, *event_ids),
    )


def stored_events(db: Database, event_ids: list[str]) -> set[str]:
    """Those of these events that still have a row in ``events``."""
    rows = db.query(
        f"SELECT event_id FROM events WHERE event_id IN ({in_list(event_ids)})", event_ids
    )
    return {str(r[0]) for r in rows}


def stored_json(db: Database, event_id: str) -> dict[str, Any] | None:
    row = db.query_one("SELECT json FROM event_json WHERE event_id = ?", (event_id,))
    return None if row is None else dict(json.loads(row[0]))


def search_rows(db: Database, event_id: str) -> int:
    row = db.query_one("SELECT COUNT(*) FROM event_search WHERE event_id = ?", (event_id,))
    assert row is not None
    return int(row[0])


def media_id(mxc: str) -> str:
    return mxc.rsplit("/", 1)[1]


def backdate_media(db: Database, mxc: str, ts: int) -> None:
    """Pretend this local file was uploaded at ``ts`` and read just now."""
    now = int(time.time() * 1000)
    db.execute(
        "UPDATE local_media_repository SET created_ts = ?, last_access_ts = ? WHERE media_id = ?",
        (ts, now, media_id(mxc)),
    )


def local_media_rows(db: Database, mxc: str) -> tuple[int, int]:
    """(media rows, thumbnail rows) of a local file."""
    mid = media_id(mxc)
    media = db.query_one("SELECT COUNT(*) FROM local_media_repository WHERE media_id = ?", (mid,))
    thumbs = db.query_one(
        "SELECT COUNT(*) FROM local_media_repository_thumbnails WHERE media_id = ?", (mid,)
    )
    assert media is not None and thumbs is not None
    return int(media[0]), int(thumbs[0])


def local_media_files(base: Path, mxc: str) -> list[Path]:
    """The file and thumbnails of a local upload under a media store or provider folder."""
    mid = media_id(mxc)
    paths = [base / "local_content" / mid[:2] / mid[2:4] / mid[4:]]
    thumbs = base / "local_thumbnails" / mid[:2] / mid[2:4] / mid[4:]
    if thumbs.is_dir():
        paths.extend(sorted(thumbs.iterdir()))
    return [p for p in paths if p.exists()]


def png(size: int = 64) -> bytes:
    """A PNG image: Synapse makes thumbnails of it on upload."""
    out = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


# -- a second homeserver, over the federation API ------------------------------------


class RemoteServer:
    """A fake homeserver ``name`` whose users join rooms and send events over federation.

    Its signing key is written into the homeserver's key cache (``server_keys_json``),
    valid for 20 years so that events dated in the future verify too,
    instead of being fetched, so no network is needed; everything else (request
    signatures, event signatures and hashes, auth rules) is checked by Synapse as
    for any other server.
    """

    def __init__(self, target: SynapseServer) -> None:
        self.target = target
        # An IP literal: Synapse never tries to resolve it, and its federation client
        # refuses private addresses at once, so the target never waits on this server.
        self.name = f"127.0.0.{secrets.randbelow(200) + 20}:{secrets.randbelow(60000) + 1024}"
        self.key = generate_signing_key("lux")
        self.key_id = f"ed25519:{self.key.version}"
        verify = encode_verify_key_base64(get_verify_key(self.key))
        key_json = json.dumps(
            {"server_name": self.name, "verify_keys": {self.key_id: {"key": verify}}}
        )
        now = int(time.time() * 1000)
        target.db().execute(
            "INSERT INTO server_keys_json (server_name, key_id, from_server, ts_added_ms,"
            " ts_valid_until_ms, key_json) VALUES (?, ?, ?, ?, ?, ?)",
            (self.name, self.key_id, self.name, now, now + 20 * YEAR, key_json.encode()),
        )

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.name}"

    def _request(self, method: str, path: str, content: Any = None) -> Any:
        signed = sign_json(
            {
                "method": method,
                "uri": path,
                "origin": self.name,
                "destination": self.target.server_name,
                **({"content": content} if content is not None else {}),
            },
            self.name,
            self.key,
        )
        sig = signed["signatures"][self.name][self.key_id]
        header = (
            f'X-Matrix origin="{self.name}",destination="{self.target.server_name}",'
            f'key="{self.key_id}",sig="{sig}"'
        )
        resp = requests.request(
            method,
            self.target.base_url + path,
            json=content,
            headers={"Authorization": header},
            timeout=60,
        )
        assert resp.status_code == 200, (resp.status_code, resp.text)
        return resp.json()

    def _sign(self, event: dict[str, Any], room_version: str) -> tuple[str, dict[str, Any]]:
        version = KNOWN_ROOM_VERSIONS[room_version]
        add_hashes_and_signatures(version, event, self.name, self.key)
        return make_event_from_dict(event, version).event_id, event

    def join(self, room_id: str, localpart: str) -> str:
        """Join a public room as ``@localpart:<name>``; return the join event's ID."""
        user = self.user_id(localpart)
        made = self._request(
            "GET",
            f"/_matrix/federation/v1/make_join/{quote(room_id)}/{quote(user)}?ver=12&ver=11&ver=10",
        )
        event_id, event = self._sign(dict(made["event"]), made["room_version"])
        self._request(
            "PUT", f"/_matrix/federation/v2/send_join/{quote(room_id)}/{quote(event_id)}", event
        )
        return event_id

    def send(self, room_id: str, localpart: str, content: dict[str, Any], ts: int) -> str:
        """Send an ``m.room.message`` sent at ``ts`` after the room's latest events."""
        db = self.target.db()
        user = self.user_id(localpart)
        version_row = db.query_one("SELECT room_version FROM rooms WHERE room_id = ?", (room_id,))
        assert version_row is not None
        prev = db.query(
            "SELECT e.event_id, e.depth FROM event_forward_extremities AS f"
            " JOIN events AS e ON e.event_id = f.event_id WHERE f.room_id = ?",
            (room_id,),
        )
        auth = db.query(
            "SELECT event_id, type FROM current_state_events WHERE room_id = ? AND"
            " ((type = 'm.room.power_levels' AND state_key = '') OR"
            " (type = 'm.room.member' AND state_key = ?) OR"
            " (type = 'm.room.create' AND state_key = ''))",
            (room_id, user),
        )
        room_version = str(version_row[0])
        # From room version 12 the create event is implied, never listed.
        skip_create = KNOWN_ROOM_VERSIONS[room_version].msc4291_room_ids_as_hashes
        event = {
            "room_id": room_id,
            "sender": user,
            "type": "m.room.message",
            "content": content,
            "origin_server_ts": ts,
            "depth": max(int(r[1]) for r in prev) + 1,
            "prev_events": [str(r[0]) for r in prev],
            "auth_events": [
                str(r[0]) for r in auth if not (skip_create and r[1] == "m.room.create")
            ],
        }
        event_id, event = self._sign(event, room_version)
        txn = f"lux{time.time_ns()}"
        result = self._request(
            "PUT",
            f"/_matrix/federation/v1/send/{txn}",
            {"origin": self.name, "origin_server_ts": int(time.time() * 1000), "pdus": [event]},
        )
        assert result["pdus"][event_id] == {}, result
        return event_id


# -- clients -------------------------------------------------------------------------


def status(client: MatrixClient, path: str) -> int:
    """The HTTP status of a GET on the client-server API (``path`` after ``/v3``)."""
    return client.request("GET", "/_matrix/client/v3" + path).status_code


def event_path(room_id: str, event_id: str) -> str:
    return f"/rooms/{quote(room_id, safe='')}/event/{quote(event_id, safe='')}"


def context_path(room_id: str, event_id: str) -> str:
    return f"/rooms/{quote(room_id, safe='')}/context/{quote(event_id, safe='')}"


def wait_visible(client: MatrixClient, room_id: str, event_id: str, timeout: float = 10) -> None:
    """Wait until the client can read an event that arrived over federation."""
    deadline = time.monotonic() + timeout
    while status(client, event_path(room_id, event_id)) != 200:
        assert time.monotonic() < deadline, f"{event_id} never became visible"
        time.sleep(0.1)


def timeline_ids(client: MatrixClient, room_id: str) -> list[str]:
    """Event IDs ``/messages`` returns for the room, newest first."""
    return [e["event_id"] for e in client.messages(room_id, limit=200)]


# -- cached remote media -----------------------------------------------------------------


def cache_remote_media(server: SynapseServer, origin: str, ts: int) -> tuple[str, list[Path]]:
    """Put a copy of a remote file in the cache as Synapse does after a download: the file
    and a thumbnail in the media store and in the storage provider, and their rows, all
    cached at ``ts`` (and read just now). Returns the media ID and the files."""
    mid = uid("remote")
    fsid = secrets.token_hex(12)
    now = int(time.time() * 1000)
    files = []
    for base in (server.dir / "media_store", provider_dir(server)):
        content = base / "remote_content" / origin / fsid[:2] / fsid[2:4] / fsid[4:]
        thumb = base / "remote_thumbnail" / origin / fsid[:2] / fsid[2:4] / fsid[4:]
        content.parent.mkdir(parents=True, exist_ok=True)
        thumb.mkdir(parents=True, exist_ok=True)
        content.write_bytes(png())
        (thumb / "32-32-image-png-crop").write_bytes(png(32))
        files += [content, thumb / "32-32-image-png-crop"]
    db = server.db()
    db.execute(
        "INSERT INTO remote_media_cache (media_origin, media_id, media_type, created_ts,"
        " upload_name, media_length, filesystem_id, last_access_ts, quarantined_by)"
        " VALUES (?, ?, 'image/png', ?, 'far.png', ?, ?, ?, NULL)",
        (origin, mid, ts, len(png()), fsid, now),
    )
    db.execute(
        "INSERT INTO remote_media_cache_thumbnails (media_origin, media_id, thumbnail_width,"
        " thumbnail_height, thumbnail_method, thumbnail_type, thumbnail_length, filesystem_id)"
        " VALUES (?, ?, 32, 32, 'crop', 'image/png', ?, ?)",
        (origin, mid, len(png(32)), fsid),
    )
    return mid, files


def remote_media_rows(db: Database, origin: str, mid: str) -> int:
    row = db.query_one(
        "SELECT (SELECT COUNT(*) FROM remote_media_cache WHERE media_origin = ? AND media_id = ?)"
        " + (SELECT COUNT(*) FROM remote_media_cache_thumbnails WHERE media_origin = ?"
        " AND media_id = ?)",
        (origin, mid, origin, mid),
    )
    assert row is not None
    return int(row[0])
