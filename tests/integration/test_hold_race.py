"""Races with a sweep (issue 25), on SQLite, PostgreSQL and a worker deployment.

- R13: a hold placed between a batch's listing and its deletion keeps what it covers,
  and ``PUT /holds`` answers only once a batch that began under the older holds is over;
- a sweep whose process was killed reads ``interrupted`` after the restart, before any
  new sweep starts.

Each sweep stops at the harness gate (``synapse_lux_privacy/sweep/harness_gate.py``:
the environment variable ``LUX_PRIVACY_TEST_GATE_DIR``, set only for the servers of
this file) until the test opens it, so the hold lands exactly where the test wants it.
Time: events backdated three years (``events.origin_server_ts``/``received_ts``), past
the messages' default lifetime (24 months); sweeps run as of now.
"""

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from synapse_lux_privacy.sweep.harness_gate import ENV, LISTED, MARKED
from tests.conftest import DATABASES
from tests.harness import MatrixClient, SynapseServer, uid
from tests.harness.postgres import PostgresCluster
from tests.harness.waiting import wait_for
from tests.harness.workers import WorkerDeployment
from tests.integration.test_content_support import (
    MODULE_CONFIG,
    backdate_events,
    start_content_server,
    stored_events,
    stored_json,
)

pytestmark = pytest.mark.integration

YEAR = 365 * 86_400_000
RULE = "messages"
# How long PUT /holds is watched for an answer it must not give while a batch that began
# before the hold is held at the gate (a negative can only be watched for a while).
WATCH_S = 3.0


class Gate:
    """The files through which a test holds a sweep at a step of its batches."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def reset(self) -> None:
        for path in self.dir.iterdir():
            path.unlink()

    def reached(self, step: str) -> None:
        waiting = self.dir / f"{step}-{RULE}.waiting"
        wait_for(waiting.exists, timeout=60, what=f"the sweep at the {step} gate")

    def open(self, *steps: str) -> None:
        for step in steps:
            (self.dir / f"{step}-{RULE}.go").touch()


@contextlib.contextmanager
def gate_env(gate: Gate) -> Iterator[None]:
    """Processes spawned inside inherit the gate (the harness passes os.environ on)."""
    before = os.environ.get(ENV)
    os.environ[ENV] = str(gate.dir)
    try:
        yield
    finally:
        if before is None:
            del os.environ[ENV]
        else:
            os.environ[ENV] = before


@pytest.fixture(scope="module", params=DATABASES, ids=DATABASES)
def gated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[SynapseServer, Gate]]:
    """This module's own homeserver, its sweeps held at the gate."""
    gate = Gate(tmp_path_factory.mktemp("gate"))
    with gate_env(gate):
        server = start_content_server(
            request, tmp_path_factory.mktemp(f"race-{request.param}"), request.param
        )
    yield server, gate
    server.stop()


@pytest.fixture(scope="module")
def deployment(
    postgres_cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[WorkerDeployment, Gate]]:
    """A worker deployment (PostgreSQL), its sweeps held at the gate."""
    gate = Gate(tmp_path_factory.mktemp("gate-workers"))
    pg_params = postgres_cluster.create_database(uid("race_workers_"))
    deployment = WorkerDeployment(tmp_path_factory.mktemp("race-workers"), pg_params, MODULE_CONFIG)
    with gate_env(gate):
        deployment.start()
    yield deployment, gate
    deployment.stop()


def old_history(
    server: SynapseServer, admin: MatrixClient, first: MatrixClient, second: MatrixClient
) -> tuple[list[str], list[str]]:
    """A room where ``first`` then ``second`` wrote three messages each, three years ago,
    and a fresh message after them: (first's events, second's events)."""
    room = first.create_room(invite=[str(second.user_id)])
    second.join(room)
    firsts = [first.send_message(room, f"old {i}") for i in range(3)]
    seconds = [second.send_message(room, f"old {i}") for i in range(3)]
    first.send_message(room, "fresh")
    backdate_events(server.db(), firsts + seconds, int(time.time() * 1000) - 3 * YEAR)
    return firsts, seconds


def start_sweep(admin: MatrixClient) -> str:
    status, body = admin.lux("POST", "/sweeps", {"rules": [RULE]})
    assert status == 202, body
    sweep_id: str = body["sweep_id"]
    return sweep_id


def finished(admin: MatrixClient, sweep_id: str) -> dict[str, Any]:
    def done() -> bool:
        status, body = admin.lux("GET", f"/sweeps/{sweep_id}")
        return status == 200 and body["status"] != "running"

    wait_for(done, timeout=120, what=f"sweep {sweep_id} finished")
    _, body = admin.lux("GET", f"/sweeps/{sweep_id}")
    result: dict[str, Any] = body
    return result


def place_hold(admin: MatrixClient, user_id: str) -> tuple[int, Any]:
    return admin.lux("PUT", f"/holds/{uid('hold')}", {"user_id": user_id, "reason": "a case"})


def hold_between_listing_and_deletion(
    server: SynapseServer, gate: Gate, sweeper: MatrixClient, holder: MatrixClient
) -> None:
    """The probe of issue 25: the hold is placed (through ``holder``'s process) once the
    sweep (on ``sweeper``'s) listed its first page, before it deleted it. The held user's
    events stay whole; the other user's go. The old engine deleted the held ones."""
    gate.reset()
    alice, bob = server.register_user(uid("alice")), server.register_user(uid("bob"))
    bobs, alices = old_history(server, sweeper, bob, alice)
    sweep_id = start_sweep(sweeper)
    gate.reached(LISTED)
    status, body = place_hold(holder, str(alice.user_id))
    assert status == 201, body
    gate.open(LISTED, MARKED)
    report = finished(sweeper, sweep_id)
    assert report["status"] == "completed", report
    db = server.db()
    assert stored_events(db, alices) == set(alices)
    for event_id in alices:
        json_row = stored_json(db, event_id)
        assert json_row is not None and json_row["content"]["body"].startswith("old")
    assert stored_events(db, bobs) == set()
    assert report["results"][RULE]["held"] >= 2


def hold_waits_for_the_batch_in_flight(
    server: SynapseServer, gate: Gate, sweeper: MatrixClient, holder: MatrixClient
) -> None:
    """The hold is placed while a batch marked under the older holds waits to be deleted:
    PUT /holds does not answer until that batch is over, and nothing of the held user
    that was still stored when it answered is deleted afterwards."""
    gate.reset()
    gate.open(LISTED)
    carol, dave = server.register_user(uid("carol")), server.register_user(uid("dave"))
    _, daves = old_history(server, sweeper, carol, dave)
    sweep_id = start_sweep(sweeper)
    gate.reached(MARKED)
    answers: list[tuple[int, Any]] = []
    put = threading.Thread(target=lambda: answers.append(place_hold(holder, str(dave.user_id))))
    put.start()
    put.join(WATCH_S)
    assert put.is_alive() and answers == [], f"PUT /holds answered during the batch: {answers}"
    gate.open(MARKED)
    put.join(60)
    assert answers and answers[0][0] == 201, answers
    at_answer = stored_events(server.db(), daves)
    report = finished(sweeper, sweep_id)
    assert report["status"] == "completed", report
    assert stored_events(server.db(), daves) == at_answer
    assert report["results"][RULE]["held"] >= len(at_answer)


@pytest.mark.parametrize("step", ["between_listing_and_deletion", "during_the_batch"])
def test_r13_a_hold_placed_during_a_sweep_binds_when_put_answers(
    gated: tuple[SynapseServer, Gate], step: str
) -> None:
    server, gate = gated
    admin = server.register_user(uid("admin"), admin=True)
    if step == "between_listing_and_deletion":
        hold_between_listing_and_deletion(server, gate, admin, admin)
    else:
        hold_waits_for_the_batch_in_flight(server, gate, admin, admin)


@pytest.mark.parametrize("step", ["between_listing_and_deletion", "during_the_batch"])
def test_r13_with_workers_a_hold_placed_on_main_binds_the_sweep_of_the_background_worker(
    deployment: tuple[WorkerDeployment, Gate], step: str
) -> None:
    """The sweep runs on the background worker (where sweeps run), the hold is placed on
    the main process: the interlock lives in the database."""
    workers, gate = deployment
    admin = workers.register_user(uid("admin"), admin=True)  # talks to the client worker
    sweeper = workers.on(admin, workers.background_worker)
    on_main = workers.on(admin, workers.main)
    if step == "between_listing_and_deletion":
        hold_between_listing_and_deletion(workers.main, gate, sweeper, on_main)
    else:
        hold_waits_for_the_batch_in_flight(workers.main, gate, sweeper, on_main)


def test_a_sweep_killed_with_sigkill_reads_interrupted_after_the_restart(
    gated: tuple[SynapseServer, Gate],
) -> None:
    """Killed while held at the gate, the sweep is ``interrupted`` for every reader once
    Synapse is back (its instance's start-up drops the dead process's lease), without
    a new sweep having started; it used to stay ``running`` until one did."""
    server, gate = gated
    gate.reset()
    admin = server.register_user(uid("admin"), admin=True)
    erin, frank = server.register_user(uid("erin")), server.register_user(uid("frank"))
    old_history(server, admin, erin, frank)
    sweep_id = start_sweep(admin)
    gate.reached(LISTED)
    server.kill()
    gate.reset()
    gate.open(LISTED, MARKED)
    with gate_env(gate):
        server.start()
    statuses: list[str] = []

    def interrupted() -> bool:
        status, body = admin.lux("GET", f"/sweeps/{sweep_id}")
        statuses.append(body.get("status"))
        return status == 200 and body["status"] == "interrupted"

    wait_for(interrupted, timeout=20, what="the killed sweep read interrupted")
    later = server.db().query_one(
        "SELECT COUNT(*) FROM lux_privacy_sweeps WHERE started_ts >"
        " (SELECT started_ts FROM lux_privacy_sweeps WHERE sweep_id = ?)",
        (sweep_id,),
    )
    assert later == (0,), "a new sweep started: the status was not read from the lease"
