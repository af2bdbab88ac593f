"""Store a built dataset once and restore it for every run.

A snapshot is a folder ``<LUX_BENCH_DATASETS>/<database>-<spec key>/`` (default
``benchmarks/.datasets/``, not in git) holding the database (a ``pg_dump`` custom
archive, or the SQLite file), the media store, the server's signing key (the events
are signed with it) and ``manifest.json``. It is written under a temporary name and
renamed when complete, so a build that is interrupted leaves nothing half-made.
Restoring gives a new Synapse server (not started) on a fresh database with exactly
that data, aged as of the time given (``aging.py``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import attrs

from benchmarks.dataset.aging import age
from benchmarks.dataset.build import Builder, count_rows
from benchmarks.dataset.clone import clone_rooms
from benchmarks.dataset.loader import LOADER_MODULE
from benchmarks.dataset.spec import DatasetSpec, Manifest
from tests.harness import Database, MatrixClient, PostgresCluster, SynapseServer, uid
from tests.harness.postgres import find_pg_bin_dir
from tests.harness.synapse_server import MODULE_NAME, REPO_ROOT, deep_merge

Engine = Literal["sqlite", "postgres"]
DATASETS = Path(os.environ.get("LUX_BENCH_DATASETS", REPO_ROOT / "benchmarks" / ".datasets"))
SQLITE_FILE = "homeserver.db"
# Synapse's background updates (e.g. populating the user directory of a new database)
# run without pauses, so that a snapshot holds none half-done.
FAST_BACKGROUND_UPDATES = {
    "background_updates": {"sleep_enabled": False, "background_update_duration_ms": 1000}
}
PG_ARCHIVE = "database.dump"


def lux_module(config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``modules:`` entry that loads synapse_lux_privacy with ``config``."""
    return {"module": MODULE_NAME, "config": config or {}}


def snapshot_path(spec: DatasetSpec, database: Engine, root: Path = DATASETS) -> Path:
    return root / f"{database}-{spec.key()}"


def ensure_snapshot(
    spec: DatasetSpec,
    database: Engine,
    cluster: PostgresCluster | None,
    log: Callable[[str], None] = print,
    root: Path = DATASETS,
) -> Path:
    """The snapshot of ``spec`` under ``root``: the stored one; else one with fewer messages
    and otherwise the same spec, grown; else a new build."""
    target = snapshot_path(spec, database, root)
    if (target / "manifest.json").exists():
        log(f"dataset {target.name}: restoring the stored snapshot")
        return target
    if spec.clone_rooms:
        base = ensure_snapshot(attrs.evolve(spec, clone_rooms=0), database, cluster, log, root)
        _multiply(base, spec, target, cluster, log)
        return target
    smaller = _smaller_snapshot(spec, database, root)
    modules = [{"module": LOADER_MODULE, "config": {}}, lux_module()]
    with tempfile.TemporaryDirectory(prefix="lux-dataset-") as tmp:
        if smaller is not None:
            log(f"dataset {target.name}: adding messages to {smaller.name}")
            server, manifest = restore(smaller, Path(tmp), cluster, modules, None)
        else:
            log(f"dataset {target.name}: building (stored in {target} for the next runs)")
            pg = cluster.create_database(uid("dataset_")) if cluster is not None else None
            config = {"modules": modules, **FAST_BACKGROUND_UPDATES}
            server = SynapseServer(Path(tmp), database, pg, None, config)
        server.start()
        try:
            builder = Builder(server, spec, log)
            manifest = builder.run() if smaller is None else builder.grow(manifest)
            wait_for_background_updates(server)
        finally:
            server.stop()
        _store(server, manifest, target, cluster)
    log(f"dataset built in {manifest.build_seconds:.0f} s: {manifest.counts}")
    return target


def _multiply(
    base: Path,
    spec: DatasetSpec,
    target: Path,
    cluster: PostgresCluster | None,
    log: Callable[[str], None],
) -> None:
    """Store as ``target`` the snapshot ``base`` with every room cloned (``clone.py``)."""
    if cluster is None:
        raise ValueError("--clone-rooms needs PostgreSQL (the cloning is PostgreSQL SQL)")
    log(f"dataset {target.name}: cloning the rooms of {base.name} {spec.clone_rooms} times")
    with tempfile.TemporaryDirectory(prefix="lux-dataset-") as tmp:
        server, manifest = restore(base, Path(tmp), cluster, [lux_module()], None)
        assert server.pg_params is not None
        _complete_ledger(server, manifest)
        result = clone_rooms(server.pg_params, spec.clone_rooms)
        originals, encrypted = list(manifest.rooms), set(manifest.encrypted_rooms)
        for c in range(spec.clone_rooms):
            manifest.rooms.extend(result.rooms[room_id][c] for room_id in originals)
            manifest.encrypted_rooms.extend(result.rooms[r][c] for r in originals if r in encrypted)
        manifest.spec, manifest.base_stream = spec, result.base_stream
        manifest.clone_seconds = result.seconds
        db = server.db()
        try:
            count_rows(db, manifest)
        finally:
            db.close()
        _store(server, manifest, target, cluster)
    slowest = sorted(result.table_seconds.items(), key=lambda item: -item[1])[:8]
    log(
        f"dataset cloned in {result.seconds:.0f} s ({result.hash_seconds:.0f} s hashing;"
        f" slowest tables, s: {dict(slowest)}; rows: {result.rows}): {manifest.counts}"
    )


def _complete_ledger(server: SynapseServer, manifest: Manifest, timeout: float = 600) -> None:
    """Run the server until the module's quota accounting (R4) has counted every event,
    then reconcile (``POST /quota/reconcile``: the events below the watermark of its first
    pass), so that the cloned ledger is complete (a build may end between two passes)."""
    server.start()
    try:
        db = server.db()
        deadline = time.monotonic() + timeout
        while db.number(
            "SELECT COALESCE(MAX(value), 0) FROM lux_privacy_quota_state"
            " WHERE name = 'events_stream'"
        ) < db.number("SELECT MAX(stream_ordering) FROM events"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the quota accounting did not catch up in {timeout} s")
            time.sleep(1)
        admin = MatrixClient(server.base_url, manifest.admin_token, manifest.admin_user_id)
        admin.timeout = timeout
        status, body = admin.lux("POST", "/quota/reconcile", {})
        if status != 200:
            raise RuntimeError(f"the quota reconciliation failed ({status}): {body}")
    finally:
        server.stop()


def _smaller_snapshot(spec: DatasetSpec, database: Engine, root: Path) -> Path | None:
    """The stored snapshot with the most messages below ``spec``'s (its own, then the heavy
    sender's) and otherwise ``spec``."""
    found: list[tuple[int, int, Path]] = []
    for manifest_path in root.glob(f"{database}-*/manifest.json"):
        built = Manifest.load(manifest_path).spec
        grown = attrs.evolve(
            built, messages=spec.messages, heavy_sender_messages=spec.heavy_sender_messages
        )
        if (
            built != spec
            and built.messages <= spec.messages
            and built.heavy_sender_messages <= spec.heavy_sender_messages
            and grown == spec
        ):
            found.append((built.messages, built.heavy_sender_messages, manifest_path.parent))
    return max(found)[2] if found else None


def _store(
    server: SynapseServer, manifest: Manifest, target: Path, cluster: PostgresCluster | None
) -> None:
    """Write the stopped server's data as the snapshot ``target`` (complete, or not at all)."""
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    if server.pg_params is not None:
        pg = server.pg_params
        _pg("pg_dump", pg, "--format=custom", f"--file={partial / PG_ARCHIVE}", pg["database"])
        assert cluster is not None
        cluster.drop_database(pg["database"])
    else:
        shutil.copy2(server.dir / SQLITE_FILE, partial / SQLITE_FILE)
    shutil.copytree(server.dir / "media_store", partial / "media_store")
    shutil.copy2(server.dir / "signing.key", partial / "signing.key")
    manifest.save(partial / "manifest.json")
    partial.rename(target)


def restore(
    snapshot: Path,
    workdir: Path,
    cluster: PostgresCluster | None,
    modules: list[dict[str, Any]],
    now_ms: int | None,
    extra_config: dict[str, Any] | None = None,
) -> tuple[SynapseServer, Manifest]:
    """A server (not started) on a copy of the snapshot, with ``modules`` loaded.

    ``now_ms``: age the data as of that time (``aging.age``); None keeps it fresh."""
    manifest = Manifest.load(snapshot / "manifest.json")
    database: Engine = "postgres" if manifest.database == "postgres" else "sqlite"
    pg = None
    if database == "postgres":
        assert cluster is not None, "a PostgreSQL snapshot needs a PostgreSQL cluster"
        pg = cluster.create_database(uid("restored_"))
        _pg(
            "pg_restore",
            pg,
            "--no-owner",
            "--no-privileges",
            "--jobs=2",
            f"--dbname={pg['database']}",
            str(snapshot / PG_ARCHIVE),
        )
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(snapshot / "signing.key", workdir / "signing.key")
    shutil.copytree(snapshot / "media_store", workdir / "media_store", dirs_exist_ok=True)
    if pg is None:
        shutil.copy2(snapshot / SQLITE_FILE, workdir / SQLITE_FILE)
    _settle(SynapseServer(workdir, database, pg, None, dict(FAST_BACKGROUND_UPDATES)))
    config = deep_merge({"modules": modules, **FAST_BACKGROUND_UPDATES}, extra_config or {})
    server = SynapseServer(workdir, database, pg, None, config)
    db = server.db()
    try:
        if now_ms is not None:
            age(db, manifest, now_ms)
        if pg is not None:
            # pg_restore brings no planner statistics; without them PostgreSQL plans
            # sequential scans that a provider's server, analysed by autovacuum, never
            # runs (the 1M dataset's idle sweep: 215 ms for a query of 0.07 ms). The
            # VACUUM settles what the restore's inserts and the aging's updates leave
            # to autovacuum (dead rows in ``events``, visibility maps): left to it, it
            # ran over the first minutes of a benchmark, the idle measurement of
            # ``sweep_latency.py`` at 1M among them (``--sample``, issue 22), in some
            # runs and not others, and a provider's settled server has no such work.
            db.execute("VACUUM (ANALYZE)")
    finally:
        db.close()
    return server, manifest


def _settle(bare: SynapseServer) -> None:
    """Finish the background updates a snapshot holds with Synapse alone (no module: a
    module's periodic work must not run on data not aged yet), then stop."""
    db = bare.db()
    pending = _pending_updates(db)
    db.close()
    if pending:
        bare.start()
        try:
            wait_for_background_updates(bare)
        finally:
            bare.stop()


def wait_for_background_updates(server: SynapseServer, timeout: float = 1800) -> None:
    """Wait until Synapse has no background update left (call after ``server.start()``).

    A snapshot built before this existed may hold unfinished ones (the user directory
    is emptied and refilled by them); a benchmark must not time its sweeps meanwhile."""
    db = server.db()
    deadline = time.monotonic() + timeout
    while _pending_updates(db):
        if time.monotonic() > deadline:
            raise TimeoutError(f"Synapse's background updates still running after {timeout} s")
        time.sleep(0.5)


def _pending_updates(db: Database) -> int:
    return db.number("SELECT COUNT(*) FROM background_updates")


def _pg(tool: str, params: dict[str, Any], *args: str) -> None:
    env = dict(os.environ)
    if params.get("password"):
        env["PGPASSWORD"] = str(params["password"])
    command = [
        str(find_pg_bin_dir() / tool),
        f"--host={params['host']}",
        f"--port={params['port']}",
        f"--username={params['user']}",
        *args,
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr.strip()}")
