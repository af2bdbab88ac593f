"""Media copies in synapse-s3-storage-provider's bucket are deleted too (R2, R13).

A real S3 API on loopback (moto's standalone server) and the real
synapse-s3-storage-provider configured in Synapse as a provider would (store_local,
store_remote, store_synchronous, a key prefix). Time: sweeps run ``as_of`` three years
ahead (``allow_future_sweeps``), so the 12-month attachment lifetime has passed.
"""

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import StartSynapse
from tests.harness import MatrixClient, SynapseServer
from tests.harness.client import parse_mxc, q
from tests.harness.remote_media import RemoteMediaServer
from tests.harness.s3 import S3Server

pytestmark = pytest.mark.integration

BUCKET = "lux-media"
PREFIX = "synapse/"
YEAR_MS = 365 * 86_400_000
LOCATION = f"s3:{BUCKET}/{PREFIX}"  # the provider as the per-user report names it


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    server = S3Server()
    server.start()
    server.create_bucket(BUCKET)
    yield server
    server.stop()


def _png() -> bytes:
    """An image large enough for Synapse to store thumbnails of it."""
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def _upload(client: MatrixClient) -> str:
    return parse_mxc(client.upload_media(_png(), "image/png", "photo.png"))[1]


def _of_media(media_id: str, key: str) -> bool:
    """Whether the key is one of a local upload's objects: its file or a thumbnail."""
    tail = f"/{media_id[0:2]}/{media_id[2:4]}/{media_id[4:]}"
    return key == f"{PREFIX}local_content{tail}" or key.startswith(
        f"{PREFIX}local_thumbnails{tail}/"
    )


def _keys_of(s3: S3Server, media_id: str, bucket: str = BUCKET) -> set[str]:
    """The objects of one local upload: the file and its thumbnails."""
    return {k for k in s3.keys(bucket, PREFIX) if _of_media(media_id, k)}


def _versions_of(s3: S3Server, bucket: str, media_id: str) -> set[tuple[str, str]]:
    """(key, version ID) of every version and delete marker of one local upload's objects."""
    found: set[tuple[str, str]] = set()
    pages = s3.client().get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=PREFIX)
    for page in pages:
        for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            if _of_media(media_id, entry["Key"]):
                found.add((entry["Key"], entry["VersionId"]))
    return found


def _wait_for_keys(
    s3: S3Server, media_id: str, timeout: float = 20, bucket: str = BUCKET
) -> set[str]:
    """The upload's file and at least one thumbnail, once stored."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        keys = _keys_of(s3, media_id, bucket)
        if any("local_thumbnails" in k for k in keys) and any("local_content" in k for k in keys):
            return keys
        time.sleep(0.2)
    raise AssertionError(f"the objects of {media_id} never reached the bucket")


def _remote_keys(s3: S3Server, origin: str) -> set[str]:
    """The objects of the files cached from ``origin`` and of their thumbnails."""
    return s3.keys(BUCKET, f"{PREFIX}remote_content/{origin}/") | s3.keys(
        BUCKET, f"{PREFIX}remote_thumbnail/{origin}/"
    )


def _sweep(admin: MatrixClient) -> dict[str, Any]:
    as_of = int(time.time() * 1000) + 3 * YEAR_MS
    status, report = admin.lux(
        "POST", "/sweep", {"dry_run": False, "as_of": as_of, "rules": ["attachments"]}
    )
    assert status == 200, report
    attachments: dict[str, Any] = report["results"]["attachments"]
    return attachments


def _stored(server: SynapseServer, media_id: str) -> bool:
    return (
        server.db().number(
            "SELECT COUNT(*) FROM local_media_repository WHERE media_id = ?", (media_id,)
        )
        == 1
    )


def _report(admin: MatrixClient, user: MatrixClient) -> dict[str, Any]:
    status, report = admin.lux("GET", f"/users/{q(user.user_id or '')}")
    assert status == 200, report
    return report


def _start(start_synapse: StartSynapse, s3: S3Server, database: str) -> SynapseServer:
    return start_synapse(
        database, {"allow_future_sweeps": True}, s3.provider_config(BUCKET, PREFIX)
    )


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_r2_a_sweep_deletes_the_object_and_thumbnails_from_the_bucket_r13_held_stay(
    start_synapse: StartSynapse, s3: S3Server, database: str
) -> None:
    server = _start(start_synapse, s3, database)
    admin = server.register_user("boss", admin=True)
    alice = server.register_user("alice")
    bob = server.register_user("bob")
    status, _ = admin.lux("PUT", "/holds/case-s3", {"user_id": bob.user_id, "reason": "inquiry"})
    assert status == 201

    gone, held = _upload(alice), _upload(bob)
    assert _wait_for_keys(s3, gone) and _wait_for_keys(s3, held)
    held_keys = _keys_of(s3, held)

    result = _sweep(admin)
    assert result["deleted"] >= 1 and result["errors"] == 0
    assert _keys_of(s3, gone) == set()
    assert not _stored(server, gone)
    assert _keys_of(s3, held) == held_keys
    assert _stored(server, held)
    assert "cannot delete media from storage provider" not in server.log_text()


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_r2_a_versioned_bucket_keeps_no_version_of_a_deleted_file(
    start_synapse: StartSynapse, s3: S3Server, database: str
) -> None:
    """A bucket with versioning on: the upload's file has an older version (stored twice)
    and its thumbnail folder a deleted object (an old version under a delete marker).
    The attachments sweep (as of three years ahead) leaves no version and no delete
    marker of any of them; a file of a held user keeps all its versions."""
    bucket = f"lux-versioned-{database}"
    s3.create_bucket(bucket)
    client = s3.client()
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    server = start_synapse(
        database, {"allow_future_sweeps": True}, s3.provider_config(bucket, PREFIX)
    )
    admin = server.register_user("boss", admin=True)
    ivan, judy = server.register_user("ivan"), server.register_user("judy")
    status, _ = admin.lux("PUT", "/holds/case-v", {"user_id": judy.user_id, "reason": "inquiry"})
    assert status == 201
    gone, held = _upload(ivan), _upload(judy)
    keys = _wait_for_keys(s3, gone, bucket=bucket)
    _wait_for_keys(s3, held, bucket=bucket)
    (file_key,) = [k for k in keys if "/local_content/" in k]
    client.put_object(Bucket=bucket, Key=file_key, Body=_png())
    folder = f"{PREFIX}local_thumbnails/{gone[0:2]}/{gone[2:4]}/{gone[4:]}/"
    client.put_object(Bucket=bucket, Key=folder + "32-32-image-png-crop", Body=b"old")
    client.delete_object(Bucket=bucket, Key=folder + "32-32-image-png-crop")
    before = _versions_of(s3, bucket, gone)
    assert len(before) >= len(keys) + 3
    held_versions = _versions_of(s3, bucket, held)

    result = _sweep(admin)
    assert result["deleted"] >= 1 and result["errors"] == 0, result
    assert not _stored(server, gone)
    assert _versions_of(s3, bucket, gone) == set()
    assert _versions_of(s3, bucket, held) == held_versions and _stored(server, held)


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_r2_a_bucket_out_of_reach_loses_nothing_and_the_next_sweep_deletes(
    start_synapse: StartSynapse, s3: S3Server, database: str
) -> None:
    server = _start(start_synapse, s3, database)
    admin = server.register_user("boss", admin=True)
    carol = server.register_user("carol")
    media_id = _upload(carol)
    keys = _wait_for_keys(s3, media_id)

    s3.stop()
    try:
        result = _sweep(admin)
        report = _report(admin, carol)
    finally:
        s3.start()
    assert result["errors"] >= 1 and result["deleted"] == 0
    assert result["candidates"] == (
        result["deleted"] + result["held"] + result["errors"] + result["skipped"]
    )
    assert report["media"]["provider_copies"] == {LOCATION: None}
    assert _stored(server, media_id)
    assert _keys_of(s3, media_id) == keys
    assert carol.download_media(f"mxc://{server.server_name}/{media_id}").status_code == 200
    status, body = admin.lux("GET", "/failures", params={"rule": "attachments"})
    assert status == 200, body
    assert {f["error_class"] for f in body["failures"]} == {"ObjectsNotDeleted"}

    result = _sweep(admin)
    assert result["deleted"] >= 1 and result["errors"] == 0
    assert _keys_of(s3, media_id) == set()
    assert not _stored(server, media_id)


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_r14_r2_the_report_counts_provider_copies_and_the_audit_the_objects_deleted(
    start_synapse: StartSynapse, s3: S3Server, database: str
) -> None:
    """The report names the bucket with the user's files in it; the sweep's audit row
    counts the objects it deleted (the file and its thumbnails); then the report says
    none are left."""
    server = _start(start_synapse, s3, database)
    admin = server.register_user("boss", admin=True)
    gina = server.register_user("gina")
    uploads = [_upload(gina), _upload(gina)]
    for media_id in uploads:
        _wait_for_keys(s3, media_id)
    assert _report(admin, gina)["media"]["provider_copies"] == {LOCATION: 2}
    keys = set().union(*(_keys_of(s3, m) for m in uploads))

    before = int(time.time() * 1000)
    result = _sweep(admin)
    assert result["deleted"] >= 2 and result["errors"] == 0
    status, audit = admin.lux("GET", "/audit", params={"since": before})
    assert status == 200, audit
    (row,) = [r for r in audit if r["rule"] == "attachments" and r["user_id"] == gina.user_id]
    assert row["count"] == 2 and row["provider_objects"] == len(keys)
    assert all(_keys_of(s3, m) == set() for m in uploads)
    report = _report(admin, gina)
    assert report["media"]["count"] == 0
    assert report["media"]["provider_copies"] == {LOCATION: 0}


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_r12_account_deletion_removes_the_users_objects_from_the_bucket(
    start_synapse: StartSynapse, s3: S3Server, database: str
) -> None:
    """An account idle for a year (as of two years ahead, its only device deleted) is
    erased with its uploads, in the bucket too."""
    server = _start(start_synapse, s3, database)
    admin = server.register_user("boss", admin=True)
    dave = server.register_user("dave")
    media_id = _upload(dave)
    keys = _wait_for_keys(s3, media_id)
    admin.synapse_admin("DELETE", f"/v2/users/{q(dave.user_id or '')}/devices/{dave.device_id}")

    as_of = int(time.time() * 1000) + 2 * YEAR_MS
    status, report = admin.lux(
        "POST", "/sweep", {"dry_run": False, "as_of": as_of, "rules": ["accounts"]}
    )
    assert status == 200, report
    assert report["results"]["accounts"]["deleted"] >= 1
    assert _keys_of(s3, media_id) == set()
    # Read in the database: the sweep, as of two years ahead, may erase the admin too.
    objects = server.db().number(
        "SELECT provider_objects FROM lux_privacy_audit WHERE rule = 'accounts' AND user_id = ?",
        (dave.user_id,),
    )
    assert objects == len(keys)
    assert not _stored(server, media_id)


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_r2_r6_a_cached_remote_file_leaves_the_bucket_with_the_remote_media_rule(
    start_synapse: StartSynapse, s3: S3Server, database: str, tmp_path: Path
) -> None:
    """Another homeserver (HTTPS on loopback) serves an image; a local user downloads it,
    so Synapse caches it and the provider stores it (``store_remote``) with its
    thumbnails. A ``remote_media`` sweep (as of three years ahead) deletes the copy
    everywhere, its objects included, and its audit row counts them."""
    remote = RemoteMediaServer(tmp_path)
    remote.start()
    try:
        server = start_synapse(
            database,
            {"allow_future_sweeps": True},
            {**s3.provider_config(BUCKET, PREFIX), **remote.homeserver_config()},
        )
        admin = server.register_user("boss", admin=True)
        hana = server.register_user("hana")
        uri = remote.add("farpicture", _png(), "image/png")
        answer = hana.download_media(uri)
        assert answer.status_code == 200, answer.text
        assert answer.content == _png() and remote.downloads == 1
    finally:
        remote.stop()
    # Synapse answers once the file and its thumbnails are stored (store_synchronous).
    keys = _remote_keys(s3, remote.name)
    assert len([k for k in keys if "/remote_content/" in k]) == 1
    assert any("/remote_thumbnail/" in k for k in keys)
    cached = "SELECT COUNT(*) FROM remote_media_cache WHERE media_origin = ?"
    assert server.db().number(cached, (remote.name,)) == 1

    before = int(time.time() * 1000)
    as_of = before + 3 * YEAR_MS
    status, report = admin.lux(
        "POST", "/sweep", {"dry_run": False, "as_of": as_of, "rules": ["remote_media"]}
    )
    assert status == 200, report
    result = report["results"]["remote_media"]
    assert result["deleted"] == 1 and result["errors"] == 0, result
    assert _remote_keys(s3, remote.name) == set()
    assert server.db().number(cached, (remote.name,)) == 0
    status, audit = admin.lux("GET", "/audit", params={"since": before})
    assert status == 200, audit
    (row,) = [r for r in audit if r["rule"] == "remote_media"]
    assert row["count"] == 1 and row["provider_objects"] == len(keys)


def test_r2_delete_from_none_leaves_the_bucket_alone_and_says_so_at_start_up(
    start_synapse: StartSynapse, s3: S3Server
) -> None:
    server = start_synapse(
        "sqlite",
        {"allow_future_sweeps": True, "storage_providers": {"delete_from": "none"}},
        s3.provider_config(BUCKET, PREFIX),
    )
    admin = server.register_user("boss", admin=True)
    media_id = _upload(server.register_user("erin"))
    keys = _wait_for_keys(s3, media_id)
    server.wait_for_log("cannot delete media from storage provider")

    result = _sweep(admin)
    assert result["deleted"] >= 1
    assert not _stored(server, media_id)
    assert _keys_of(s3, media_id) == keys


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_r4_quota_eviction_removes_the_evicted_object_from_the_bucket(
    start_synapse: StartSynapse, s3: S3Server, database: str
) -> None:
    """A 300 KiB quota; four 100 KiB uploads: the oldest is evicted (the eviction loop runs
    every second), its object goes from the bucket, the newer ones stay."""
    server = start_synapse(
        database,
        {"quota": {"default_bytes": "300K", "eviction_interval": "1s"}},
        s3.provider_config(BUCKET, PREFIX),
    )
    frank = server.register_user("frank")
    ids = []
    for n in range(4):
        ids.append(parse_mxc(frank.upload_media(bytes([n]) * 100 * 1024))[1])
        time.sleep(0.01)
    deadline = time.monotonic() + 60
    while _stored(server, ids[0]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _stored(server, ids[0])
    assert _keys_of(s3, ids[0]) == set()
    assert all(_stored(server, m) and _keys_of(s3, m) for m in ids[1:])
