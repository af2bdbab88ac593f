"""Helpers for the quota integration tests (R4, R6, R13); no tests here.

* ``start_quota_server``: a homeserver with a small default quota (300 KiB), a fast
  eviction loop (2 s) and Synapse's server notices configured.
* ``truth``: a user's usage recomputed here with SQL on Synapse's tables, independently
  of the module: uploads with their thumbnails, and the stored JSON of the non-state
  events the user sent.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.harness import (
    Database,
    MatrixClient,
    MatrixError,
    PostgresCluster,
    SynapseServer,
    uid,
)

KIB = 1024
QUOTA = 300 * KIB
MODULE_CONFIG: dict[str, Any] = {
    "sweep_batch_size": 3,
    "quota": {"default_bytes": "300K", "eviction_interval": "2s"},
}
SERVER_NOTICES = {
    "server_notices": {
        "system_mxid_localpart": "notices",
        "system_mxid_display_name": "Server Notices",
        "room_name": "Server Notices",
    }
}


def start_quota_server(
    request: pytest.FixtureRequest, tmp_dir: Path, database: str
) -> SynapseServer:
    pg_params = None
    if database == "postgres":
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        pg_params = cluster.create_database(uid("quota_"))
    server = SynapseServer(tmp_dir, database, pg_params, MODULE_CONFIG, SERVER_NOTICES)  # type: ignore[arg-type]
    server.start()
    return server


def blob(size: int) -> bytes:
    """Random bytes (no thumbnails: not an image)."""
    return os.urandom(size)


def upload_all(client: MatrixClient, sizes: list[int]) -> list[str]:
    """Upload one file per size, a few milliseconds apart (distinct upload times)."""
    uris = []
    for size in sizes:
        uris.append(client.upload_media(blob(size)))
        time.sleep(0.01)
    return uris


def present(client: MatrixClient, uris: list[str]) -> list[bool]:
    return [client.download_media(uri).status_code == 200 for uri in uris]


def quota_of(admin: MatrixClient, user_id: str) -> dict[str, Any]:
    status, body = admin.lux("GET", f"/users/{user_id}/quota")
    assert status == 200, body
    return dict(body)


def set_quota(admin: MatrixClient, user_id: str, quota_bytes: int | None) -> dict[str, Any]:
    status, body = admin.lux("PUT", f"/users/{user_id}/quota", {"quota_bytes": quota_bytes})
    assert status == 200, body
    return dict(body)


def sweep(
    admin: MatrixClient,
    rules: list[str],
    dry_run: bool = False,
    timeout: float = 30,
    as_of: int | None = None,
) -> dict[str, dict[str, int]]:
    """A sweep of these rules, now or ``as_of``; waits out a sweep already running (409:
    the quota's eviction loop sweeps on its own whenever a user is over quota, R4)."""
    deadline = time.monotonic() + timeout
    body: dict[str, object] = {"rules": rules, "dry_run": dry_run}
    if as_of is not None:
        body["as_of"] = as_of
    while True:
        status, report = admin.lux("POST", "/sweep", body)
        if status != 409 or time.monotonic() > deadline:
            # On a 409 the message shows the sweeps that held the lock (status, rule, counts).
            running = admin.lux("GET", "/sweeps", params={"limit": 3}) if status == 409 else None
            assert status == 200, (report, running)
            results: dict[str, dict[str, int]] = report["results"]
            return results
        time.sleep(0.2)


def truth(db: Database, user_id: str) -> tuple[int, int]:
    """(media bytes, event bytes) of a user, straight from Synapse's tables."""
    media = db.query_one(
        "SELECT COALESCE(SUM(m.media_length + COALESCE((SELECT SUM(t.thumbnail_length)"
        " FROM local_media_repository_thumbnails AS t WHERE t.media_id = m.media_id), 0)), 0)"
        " FROM local_media_repository AS m WHERE m.user_id = ? AND m.url_cache IS NULL"
        " AND m.media_length IS NOT NULL",
        (user_id,),
    )
    events = db.query_one(
        "SELECT COALESCE(SUM(LENGTH(j.json)), 0) FROM events AS e"
        " JOIN event_json AS j ON j.event_id = e.event_id"
        " WHERE e.sender = ? AND e.state_key IS NULL AND e.rejection_reason IS NULL",
        (user_id,),
    )
    assert media is not None and events is not None
    return int(media[0]), int(events[0])


def storage(admin: MatrixClient, user_id: str) -> dict[str, Any]:
    status, report = admin.lux("GET", f"/users/{user_id}")
    assert status == 200, report
    return dict(report["storage"])


def upload_refused(client: MatrixClient, size: int) -> MatrixError:
    try:
        client.upload_media(blob(size))
    except MatrixError as e:
        return e
    raise AssertionError(f"an upload of {size} bytes was accepted")


def event_content(client: MatrixClient, room_id: str, event_id: str) -> dict[str, Any]:
    content: dict[str, Any] = client.get_event(room_id, event_id)["content"]
    return content
