"""The shared benchmark dataset generator (issue 7): build, snapshot, restore, age.

A tiny dataset is built through Synapse's APIs (the in-process loader module, uploads
and consents over HTTP) into a snapshot in a temporary folder, then restored on a new
database and checked over HTTP and in the database. Time: the restored data is aged
by backdating rows as of a fixed "now" (``aging.age``); the sweeps are dry runs, which
evaluate the rules as of that same time.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from benchmarks.dataset import DatasetSpec, Manifest, ensure_snapshot, lux_module, restore
from synapse_lux_privacy.units import MONTH_MS
from tests.conftest import DATABASES
from tests.harness import MatrixClient, PostgresCluster, SynapseServer

SPEC = DatasetSpec(users=12, rooms=6, messages=120, media=12, devices_per_user=2, seed=3)
NOW = 1_900_000_000_000  # a fixed "now" (March 2030): ages do not depend on the clock
MODULE = [lux_module({"allow_future_sweeps": True})]


def count(server: SynapseServer, sql: str, *params: object) -> int:
    return server.db().number(sql, params)


def dry_run(client: MatrixClient, as_of: int) -> dict[str, int]:
    status, body = client.lux("POST", "/sweep", {"dry_run": True, "as_of": as_of})
    assert status == 200, body
    return {rule: result["candidates"] for rule, result in body["results"].items()}


@pytest.mark.parametrize("database", DATABASES)
def test_issue7_a_snapshot_restores_the_built_data_half_past_each_limit(
    database: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    cluster: PostgresCluster | None = (
        request.getfixturevalue("postgres_cluster") if database == "postgres" else None
    )
    said: list[str] = []
    snapshot = ensure_snapshot(SPEC, database, cluster, said.append, root=tmp_path / "sets")  # type: ignore[arg-type]
    assert ensure_snapshot(SPEC, database, cluster, said.append, root=tmp_path / "sets") == snapshot  # type: ignore[arg-type]
    assert "restoring the stored snapshot" in said[-1], "the second call must not build again"

    server, manifest = restore(snapshot, tmp_path / "aged", cluster, MODULE, NOW)
    server.start()
    try:
        # The restored database holds what the build counted, and the users can act.
        assert count(server, "SELECT COUNT(*) FROM background_updates") == 0
        for table in ("users", "devices", "rooms", "events", "local_media_repository"):
            assert count(server, f"SELECT COUNT(*) FROM {table}") == manifest.counts[table]
        assert len(manifest.users) == SPEC.users and len(manifest.rooms) == SPEC.rooms
        user = manifest.users[0]
        client = MatrixClient(server.base_url, manifest.tokens[user][1], user)
        assert client.whoami()["user_id"] == user
        assert (
            count(server, "SELECT COUNT(*) FROM events WHERE type = 'm.room.encryption'")
            == len(manifest.encrypted_rooms)
            == SPEC.rooms // 2
        )
        assert count(server, "SELECT COUNT(*) FROM events WHERE type = 'm.room.encrypted'") > 0
        assert count(
            server, "SELECT COUNT(*) FROM user_ips WHERE user_agent LIKE 'LuxBench/%'"
        ) == (SPEC.users * SPEC.devices_per_user)
        assert count(server, "SELECT COUNT(*) FROM lux_privacy_directory_consent WHERE consent")
        # Aged as of NOW: about half of each kind past its default limit.
        events = manifest.counts["events"]
        old_events = count(server, "SELECT COUNT(*) FROM events WHERE origin_server_ts < ?",
                           NOW - 24 * MONTH_MS)  # fmt: skip
        assert 0.4 * events <= old_events <= 0.6 * events
        old_media = count(server, "SELECT COUNT(*) FROM local_media_repository"
                          " WHERE created_ts < ?", NOW - 12 * MONTH_MS)  # fmt: skip
        assert 0 < old_media < SPEC.media
        assert count(server, "SELECT COUNT(*) FROM local_media_repository"
                     " WHERE last_access_ts <> ?", NOW) == 0  # fmt: skip
        idle_users = count(
            server,
            "SELECT COUNT(*) FROM lux_privacy_user_activity WHERE last_active_ts < ?"
            " AND user_id <> ?",
            NOW - 12 * MONTH_MS,
            manifest.admin_user_id,
        )
        assert idle_users == SPEC.users // 2
        admin = MatrixClient(server.base_url, manifest.admin_token, manifest.admin_user_id)
        forecast = dry_run(admin, NOW)
        for rule in ("messages", "attachments", "sessions", "ip_logs"):
            assert forecast[rule] > 0, forecast
        # Nothing is due as of the build's own time (a restore may skip the aging).
        assert dry_run(admin, NOW - 48 * MONTH_MS)["messages"] == 0
    finally:
        server.stop()

    # The same spec with more messages grows the stored snapshot instead of building anew.
    bigger = attrs.evolve(SPEC, messages=SPEC.messages + 20)
    grown = ensure_snapshot(bigger, database, cluster, said.append, root=tmp_path / "sets")  # type: ignore[arg-type]
    assert f"adding messages to {snapshot.name}" in said[-3]
    grown_manifest = Manifest.load(grown / "manifest.json")
    assert grown_manifest.spec == bigger and grown_manifest.users == manifest.users
    assert grown_manifest.counts["events"] == manifest.counts["events"] + 20

    # A heavy sender (R14 export benchmarks) grows it again: the member of the most rooms
    # sends that many messages more, in their rooms only.
    heavy = attrs.evolve(bigger, heavy_sender_messages=15)
    heavier = ensure_snapshot(heavy, database, cluster, said.append, root=tmp_path / "sets")  # type: ignore[arg-type]
    assert f"adding messages to {grown.name}" in said[-3]
    heavy_manifest = Manifest.load(heavier / "manifest.json")
    assert heavy_manifest.spec == heavy and heavy_manifest.heavy_sender in manifest.users
    assert heavy_manifest.counts["events"] == grown_manifest.counts["events"] + 15
