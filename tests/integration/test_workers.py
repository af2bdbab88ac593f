"""The module in a worker deployment: PostgreSQL, Redis, a main process and two workers.

The deployment (tests/harness/workers.py) is the one of config/workers/: a generic worker
serving client traffic (``client_worker``) and a generic worker running the background
tasks (``background_worker``, ``run_background_tasks_on``). The module is loaded in every
process; clients talk to the client worker unless a test says otherwise.

Time: real time, except the sweep through the sample's route, which runs "as of" 13
months ahead (``allow_future_sweeps: true``). The module runs with
``allow_short_periods: true`` and ``sweep_interval: 2s``, so several periodic sweeps
happen within a few seconds; the activity test waits for the client worker's
once-a-minute activity flush.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from signedjson.key import generate_signing_key, write_signing_keys
from synapse.config.homeserver import HomeServerConfig
from synapse.config.server import TCPListenerConfig
from synapse.config.workers import InstanceTcpLocationConfig

from synapse_lux_privacy.admin_api import ADMIN_API_PREFIX
from synapse_lux_privacy.features.accounts.tracker import FLUSH_INTERVAL_MS
from synapse_lux_privacy.module import LuxPrivacyModule
from synapse_lux_privacy.store.schema import CORE_MIGRATIONS
from tests.harness import MatrixClient, PostgresCluster, uid
from tests.harness.synapse_server import REPO_ROOT, SynapseServer
from tests.harness.workers import (
    BACKGROUND_WORKER,
    CLIENT_WORKER,
    MAIN_INSTANCE,
    WorkerDeployment,
)
from tests.integration.test_content_support import MONTH, backdate_events, local_media_files, png

pytestmark = pytest.mark.integration

MODULE_CONFIG = {
    "allow_short_periods": True,
    "sweep_interval": "2s",
    "allow_future_sweeps": True,
    "quota": {"eviction_interval": "1s"},
}
SEVERAL_SWEEPS = 3
SAMPLE = REPO_ROOT / "config" / "workers"
# The docker-compose service of each process of the sample (nginx.conf's upstreams).
SERVICES = {"synapse": MAIN_INSTANCE, "client-worker": CLIENT_WORKER,
            "background-worker": BACKGROUND_WORKER}  # fmt: skip


@pytest.fixture(scope="module")
def deployment(
    postgres_cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerDeployment]:
    """One deployment for this file (PostgreSQL only: workers need it)."""
    pg_params = postgres_cluster.create_database(uid("synapse_workers_"))
    with WorkerDeployment(tmp_path_factory.mktemp("workers"), pg_params, MODULE_CONFIG) as d:
        yield d


@pytest.fixture
def admin(deployment: WorkerDeployment) -> MatrixClient:
    """A server admin whose client talks to the client worker."""
    return deployment.register_user(uid("admin"), admin=True)


def _wait_for(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy (or time runs out)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def _load_sample_config(tmp_path: Path, worker_file: str | None) -> HomeServerConfig:
    """Load config/workers/ the way docker-compose.workers.yml passes it to Synapse."""
    files = [REPO_ROOT / "docker" / "homeserver.yaml"]
    files.append(REPO_ROOT / "config" / "workers" / "homeserver-workers.yaml")
    if worker_file is not None:
        files.append(REPO_ROOT / "config" / "workers" / worker_file)
    args = []
    for source in files:
        copy = tmp_path / source.name
        copy.write_text(source.read_text().replace("/data/", f"{tmp_path}/"))
        args += ["-c", str(copy)]
    with (tmp_path / "localhost.signing.key").open("w") as key_file:
        write_signing_keys(key_file, [generate_signing_key("a")])
    return HomeServerConfig.load_config("sample", args)


@pytest.mark.parametrize(
    ("worker_file", "instance"),
    [
        (None, MAIN_INSTANCE),
        ("client_worker.yaml", CLIENT_WORKER),
        ("background_worker.yaml", BACKGROUND_WORKER),
    ],
)
def test_sample_worker_configuration_is_accepted_by_synapse(
    tmp_path: Path, worker_file: str | None, instance: str
) -> None:
    """config/workers/ describes the same deployment as the harness: Redis, every process
    in instance_map with its replication listener, background tasks on background_worker,
    the module loaded everywhere."""
    config = _load_sample_config(tmp_path, worker_file)
    workers = config.worker
    # Synapse calls the main process "master" internally, "main" in instance_map.
    assert workers.instance_name == ("master" if instance == MAIN_INSTANCE else instance)
    assert workers.run_background_tasks == (instance == BACKGROUND_WORKER)
    assert config.redis.redis_enabled
    instance_map = {
        MAIN_INSTANCE if name == "master" else name: location
        for name, location in workers.instance_map.items()
    }
    assert set(instance_map) == {MAIN_INSTANCE, CLIENT_WORKER, BACKGROUND_WORKER}
    assert [m for m, _ in config.modules.loaded_modules] == [LuxPrivacyModule]
    listeners = config.server.listeners if worker_file is None else workers.worker_listeners
    served = {
        listener.port: {name for r in listener.http_options.resources for name in r.names}
        for listener in listeners
        if isinstance(listener, TCPListenerConfig) and listener.http_options is not None
    }
    own = instance_map[instance]
    assert isinstance(own, InstanceTcpLocationConfig)
    assert "replication" in served[own.port]
    assert any("client" in names for names in served.values()) == (instance != BACKGROUND_WORKER)


def test_periodic_sweep_runs_only_on_the_background_worker(deployment: WorkerDeployment) -> None:
    """Every periodic sweep is recorded by the background worker, none by the others."""
    db = deployment.main.db()

    def finished() -> list[tuple[Any, ...]]:
        rows = db.query("SELECT instance, status FROM lux_privacy_sweeps WHERE status <> 'running'")
        return rows if len(rows) >= SEVERAL_SWEEPS else []

    rows = _wait_for(finished)
    assert len(rows) >= SEVERAL_SWEEPS, rows
    assert {instance for instance, _ in rows} == {BACKGROUND_WORKER}
    assert {status for _, status in rows} == {"completed"}
    # Synapse itself declined the looping call on the two other processes.
    declined = {
        process
        for process, line in deployment.log_lines("Not running looping call")
        if "_periodic_sweep" in line
    }
    assert declined == {deployment.main, deployment.client_worker}


def test_schema_is_created_once_and_every_process_uses_the_module_tables(
    deployment: WorkerDeployment, admin: MatrixClient
) -> None:
    """One schema for all three processes; a hold placed on one is read on another (R13)."""
    db = deployment.main.db()
    versions = dict(db.query("SELECT component, version FROM lux_privacy_schema_version"))
    assert versions["core"] == len(CORE_MIGRATIONS)
    # No process logged an error, e.g. two processes racing to create the tables.
    assert not [f"{p!r}: {line}" for p, line in deployment.log_lines(" - ERROR - ")]

    target = deployment.register_user(uid("held"))
    hold_id = uid("case")
    status, hold = admin.lux("PUT", f"/holds/{hold_id}", {"user_id": target.user_id, "reason": "r"})
    assert status == 201, hold
    on_main = deployment.on(admin, deployment.main)
    status, read = on_main.lux("GET", f"/holds/{hold_id}")
    assert (status, read["user_id"], read["created_by"]) == (200, target.user_id, admin.user_id)
    status, report = on_main.lux("GET", f"/users/{target.user_id}")
    assert (status, report["legal_hold_ids"]) == (200, [hold_id])

    assert on_main.lux("DELETE", f"/holds/{hold_id}")[0] == 200
    status, listing = admin.lux("GET", "/holds")
    assert status == 200 and hold_id not in [h["hold_id"] for h in listing["holds"]]
    # The background worker wrote its sweeps into the same tables.
    assert db.query_one(
        "SELECT COUNT(*) FROM lux_privacy_sweeps WHERE instance = ?", (BACKGROUND_WORKER,)
    ) != (0,)


def test_sweep_on_the_background_worker_is_refused_while_another_instance_holds_the_lock(
    deployment: WorkerDeployment, admin: MatrixClient
) -> None:
    """The lock lives in the database, so the background worker sees the lease of another
    instance (here the main process, as if it also ran background tasks): 409. The other
    processes refuse the sweep before looking at the lock (421, they never sweep)."""
    db = deployment.main.db()
    holder = f"master/1/{uid('sweep')}"
    expires = int(time.time() * 1000) + 600_000
    inserted = _wait_for(
        lambda: db.execute(
            "INSERT INTO lux_privacy_lock (name, holder, expires_ts) VALUES ('sweep', ?, ?)"
            " ON CONFLICT (name) DO NOTHING",
            (holder, expires),
        ),
        timeout=10,
    )  # a periodic sweep may hold the lock for a moment: take it once it is free
    assert inserted == 1
    try:
        before = db.query("SELECT sweep_id FROM lux_privacy_sweeps")
        sweeper = deployment.on(admin, deployment.background_worker)
        status, body = sweeper.lux("POST", "/sweep", {"dry_run": True})
        assert (status, body["errcode"]) == (409, "M_LIMIT_EXCEEDED"), body
        status, body = sweeper.lux("POST", "/sweeps", {})
        assert (status, body["errcode"]) == (409, "M_LIMIT_EXCEEDED"), body
        status, body = deployment.on(admin, deployment.main).lux("POST", "/sweep", {})
        assert (status, body["errcode"]) == (421, "M_LUX_WRONG_INSTANCE"), body
        assert db.query("SELECT sweep_id FROM lux_privacy_sweeps") == before
        assert db.query("SELECT holder FROM lux_privacy_lock") == [(holder,)]
    finally:
        db.execute("DELETE FROM lux_privacy_lock WHERE holder = ?", (holder,))


def test_sweeps_requested_off_the_background_worker_are_refused_naming_it(
    deployment: WorkerDeployment, admin: MatrixClient
) -> None:
    """R1-R12 run where background tasks run: POST /sweep and POST /sweeps on the client
    worker or the main process answer 421 M_LUX_WRONG_INSTANCE naming background_worker
    (``run_on``) and start nothing; reading sweeps works on every process."""
    for process in (deployment.client_worker, deployment.main):
        client = deployment.on(admin, process)
        for path, body in (("/sweep", {"dry_run": True}), ("/sweeps", {})):
            status, answer = client.lux("POST", path, body)
            assert (status, answer.get("errcode")) == (421, "M_LUX_WRONG_INSTANCE"), answer
            assert answer["run_on"] == BACKGROUND_WORKER, answer
            assert BACKGROUND_WORKER in answer["error"], answer
        status, listing = client.lux("GET", "/sweeps", params={"limit": 1})
        assert status == 200 and isinstance(listing["sweeps"], list), listing
    # No other process ever recorded a sweep.
    elsewhere = "SELECT COUNT(*) FROM lux_privacy_sweeps WHERE instance <> ?"
    assert deployment.main.db().query_one(elsewhere, (BACKGROUND_WORKER,)) == (0,)


def _nginx_route(path: str) -> tuple[str, int]:
    """The upstream server (host, port) config/workers/nginx.conf sends ``path`` to, chosen
    as nginx chooses a location: the longest matching prefix location, unless a regex
    location matches (the first in the file wins). The sample uses no other kind."""
    conf = (SAMPLE / "nginx.conf").read_text()
    upstreams = dict(re.findall(r"upstream\s+(\S+)\s*\{\s*server\s+([^;\s]+);", conf))
    locations = re.findall(r"location\s+(~\s+)?(\S+)\s*\{\s*proxy_pass\s+http://([^;]+);", conf)
    assert len(locations) == conf.count("location "), "a location the resolver cannot read"
    regex = [up for is_re, pattern, up in locations if is_re and re.search(pattern, path)]
    prefixes = [(len(p), up) for is_re, p, up in locations if not is_re and path.startswith(p)]
    upstream = regex[0] if regex else max(prefixes)[1]
    host, port = upstreams[upstream].split(":")
    return host, int(port)


def _sample_api_listener(instance: str) -> dict[str, Any]:
    """The listener of the sample's worker file that nginx may send traffic to."""
    worker = yaml.safe_load((SAMPLE / f"{instance}.yaml").read_text())
    [listener] = [
        listener
        for listener in worker["worker_listeners"]
        if listener["type"] == "http"
        and not any("replication" in r["names"] for r in listener["resources"])
    ]
    return dict(listener)


def test_sample_nginx_sends_the_module_api_to_the_background_worker() -> None:
    """R1-R12: nginx.conf sends the module's admin API, sweeps included, to the listener of
    background_worker.yaml that serves it; client traffic still goes to the client worker."""
    for path in ("/sweeps", "/sweep", "/sweeps/0123", "/holds"):
        host, port = _nginx_route(ADMIN_API_PREFIX + path)
        assert SERVICES[host] == BACKGROUND_WORKER, path
        assert _sample_api_listener(BACKGROUND_WORKER)["port"] == port
    host, port = _nginx_route("/_matrix/client/v3/sync")
    assert (SERVICES[host], port) == (CLIENT_WORKER, _sample_api_listener(CLIENT_WORKER)["port"])
    assert SERVICES[_nginx_route("/_matrix/media/v3/upload")[0]] == MAIN_INSTANCE


def test_r2_sweep_requested_through_the_sample_route_runs_on_the_background_worker(
    deployment: WorkerDeployment, admin: MatrixClient
) -> None:
    """R2: POST /sweeps sent where config/workers/nginx.conf sends it starts a real sweep
    on the background worker, which deletes an upload's file, thumbnails and row from
    the media store every process shares.

    Time: the sweep runs "as of" 13 months ahead (allow_future_sweeps), so the upload of
    a moment ago is past the 12-month attachments period."""
    processes: dict[str, SynapseServer] = {
        MAIN_INSTANCE: deployment.main,
        CLIENT_WORKER: deployment.client_worker,
        BACKGROUND_WORKER: deployment.background_worker,
    }
    host, _ = _nginx_route(f"{ADMIN_API_PREFIX}/sweeps")
    front_door = deployment.on(admin, processes[SERVICES[host]])
    uploader = deployment.register_user(uid("uploader"))
    upload_to = processes[SERVICES[_nginx_route("/_matrix/media/v3/upload")[0]]]
    mxc = deployment.on(uploader, upload_to).upload_media(png(), "image/png", "old.png")
    media_store = deployment.main.dir / "media_store"
    assert len(local_media_files(media_store, mxc)) > 1  # the file and its thumbnails
    body = {"as_of": int(time.time() * 1000) + 13 * MONTH, "rules": ["attachments"]}

    def started() -> str | None:
        status, answer = front_door.lux("POST", "/sweeps", body)
        if status == 409:  # a periodic sweep holds the lock for a moment
            return None
        assert status == 202, answer
        return str(answer["sweep_id"])

    sweep_id = _wait_for(started)
    assert sweep_id

    def finished() -> dict[str, Any] | None:
        status, record = front_door.lux("GET", f"/sweeps/{sweep_id}")
        assert status == 200, record
        return None if record["status"] == "running" else dict(record)

    record = _wait_for(finished, timeout=60)
    assert record is not None and record["status"] == "completed", record
    assert record["dry_run"] is False
    assert record["results"]["attachments"]["deleted"] >= 1, record
    assert record["results"]["attachments"]["errors"] == 0, record
    db = deployment.main.db()
    ran_on = db.query_one("SELECT instance FROM lux_privacy_sweeps WHERE sweep_id = ?", (sweep_id,))
    assert ran_on == (BACKGROUND_WORKER,)
    media_id = mxc.rsplit("/", 1)[1]
    assert db.query("SELECT 1 FROM local_media_repository WHERE media_id = ?", (media_id,)) == []
    assert local_media_files(media_store, mxc) == []


def test_r10_consent_withdrawn_on_one_process_hides_the_user_on_another_at_once(
    deployment: WorkerDeployment, admin: MatrixClient
) -> None:
    """Withdrawal through the client worker hides the user from searches on the main
    process, and withdrawal through the main process hides them on the client worker,
    within the replication delay, although each had just found the user (its consent
    cached): the cache is invalidated across workers, not left to expire."""
    term = uid("lux")
    target = deployment.register_user(uid("dir"), displayname=f"Dir {term}")
    searcher = deployment.register_user(uid("seeker"))
    on = {"client worker": deployment.client_worker, "main": deployment.main}

    def found_on(process_name: str) -> bool:
        client = deployment.on(searcher, on[process_name])
        return target.user_id in client.directory_search(term)

    for writer, reader in (("client worker", "main"), ("main", "client worker")):
        consent = deployment.on(admin, on[writer])
        path = f"/users/{target.user_id}/directory_consent"
        assert consent.lux("PUT", path, {"consent": True})[0] == 200
        # Listed once the directory caught up, on both processes (caching the consent).
        assert _wait_for(lambda: found_on("client worker") and found_on("main")), writer
        status, body = consent.lux("PUT", path, {"consent": False})
        assert status == 200, body
        # The process that took the withdrawal hides the user on the very next search;
        # the other one as soon as the invalidation crosses the replication stream
        # (milliseconds; up to a few seconds on a loaded 2-core CI machine).
        assert not found_on(writer)
        hidden = _wait_for(lambda r=reader: not found_on(r), timeout=5.0)
        assert hidden, f"withdrawn on the {writer}, still found on the {reader} after 5 s"


def test_r12_activity_seen_by_the_client_worker_reaches_the_account_rule(
    deployment: WorkerDeployment, admin: MatrixClient
) -> None:
    """Requests served by the client worker are noted there and written by that worker's
    periodic activity flush into the record the account rule reads (R12); the per-user
    report on the main process, computed as the rule computes it, shows the later activity.

    The user's first request goes to the main process, so Synapse's own client-IP record
    (rate-limited to one write per token and address every 2 minutes) stays at that
    request: only the module's tracker on the client worker can record the later ones.
    Time: real time; waits for the client worker's next flush (every FLUSH_INTERVAL_MS).
    """
    user = deployment.register_user(uid("active"))
    deployment.on(user, deployment.main).whoami()
    on_main = deployment.on(admin, deployment.main)
    status, before = on_main.lux("GET", f"/users/{user.user_id}")
    assert status == 200, before
    time.sleep(0.05)
    first_worker_request_ms = int(time.time() * 1000)
    assert before["last_active_ts"] < first_worker_request_ms
    user.whoami()  # served by the client worker
    user.sync()

    def recorded() -> int:
        row = deployment.main.db().query_one(
            "SELECT last_active_ts FROM lux_privacy_user_activity WHERE user_id = ?",
            (user.user_id,),
        )
        return 0 if row is None or row[0] < first_worker_request_ms else int(row[0])

    assert _wait_for(recorded, timeout=FLUSH_INTERVAL_MS / 1000 + 15)
    status, after = on_main.lux("GET", f"/users/{user.user_id}")
    assert status == 200 and after["last_active_ts"] >= first_worker_request_ms, after
    assert after["account_deletion_due_ts"] > before["account_deletion_due_ts"]


def test_r14_sweeps_and_quota_evictions_on_every_process_make_one_audit_chain(
    deployment: WorkerDeployment, admin: MatrixClient
) -> None:
    """Sweeps asked for at once of every process (the background worker runs them, the
    others answer 421), the periodic sweeps and the quota eviction loop on the background
    worker: their audit rows form one hash chain, which every process verifies alike
    (issue #24; appends from concurrent writers: test_audit_chain_concurrency.py).
    Time: the messages are backdated to 2000 and swept "as of" 25 months later; the
    uploads go because the user's quota is set below them (no time involved)."""
    db = deployment.main.db()
    alice = deployment.register_user(uid("alice"))
    room = alice.create_room()
    sent = [alice.send_message(room, f"m{i}") for i in range(7)]
    backdate_events(db, sent[:-1], 946_684_800_000)
    uploader = deployment.on(alice, deployment.main)  # media is served by the main process
    uploads = [uploader.upload_media(os.urandom(10 * 1024)) for _ in range(3)]
    assert admin.lux("PUT", f"/users/{alice.user_id}/quota", {"quota_bytes": 10 * 1024})[0] == 200
    on_main = deployment.on(admin, deployment.main)
    on_background = deployment.on(admin, deployment.background_worker)
    sweep = {"as_of": 946_684_800_000 + 25 * 30 * 86_400_000, "rules": ["messages"]}

    def ask(client: MatrixClient) -> tuple[int, Any]:
        return client.lux("POST", "/sweep", sweep)

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(ask, [on_main, admin, on_background] * 2))
    assert {status for status, _ in answers[2::3]} <= {200, 409}, answers
    assert any(status == 200 for status, _ in answers[2::3]), answers
    assert all(status == 421 for i, (status, _) in enumerate(answers) if i % 3 != 2), answers

    def audited(rule: str) -> int:
        row = db.query_one(
            "SELECT COUNT(*) FROM lux_privacy_audit WHERE rule = ? AND user_id = ?",
            (rule, alice.user_id),
        )
        return int(row[0]) if row else 0

    assert _wait_for(lambda: audited("quota") and audited("messages")), uploads
    verdicts = []
    for process in deployment.processes:
        status, verdict = deployment.on(admin, process).lux("GET", "/audit/verify")
        assert status == 200 and verdict["ok"] is True, (process, verdict)
        verdicts.append(verdict)
    # One chain: every link from 1 to the head once, whichever process wrote it.
    head = verdicts[-1]["head"]["seq"]
    seqs = db.query("SELECT chain_seq FROM lux_privacy_audit WHERE chain_seq <= ?", (head,))
    assert sorted(s for (s,) in seqs) == list(range(1, head + 1))
