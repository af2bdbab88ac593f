"""The sweep engine against a real Synapse, on SQLite and PostgreSQL (issue #11).

* Fault injection (R2): one upload's file is made undeletable (its path replaced by a
  directory, which Synapse's media repository cannot remove); the other files of the
  batch and after it go in the same sweep, the failure is listed by ``GET /failures``,
  and the file goes at the next sweep once the fault is removed.
* Background sweeps: ``POST /sweeps`` answers 202 at once; ``GET /sweeps/{id}`` shows
  counts growing while it runs; ``DELETE /sweeps/{id}`` cancels it after its batch; the
  next sweep finishes the work.

Time: uploads and events are backdated in the database to a far-past era and the
sweeps run "as of" a time in that era; nothing waits for months.
"""

import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import DATABASES
from tests.harness import MatrixClient, SynapseServer, uid
from tests.integration.test_content_support import (
    MONTH,
    backdate_events,
    backdate_media,
    era,
    local_media_files,
    local_media_rows,
    own_content_server,
    stored_events,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=DATABASES, ids=DATABASES)
def hs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SynapseServer]:
    yield from own_content_server(request, tmp_path_factory, "engine")


@pytest.fixture
def admin(hs: SynapseServer) -> MatrixClient:
    return hs.register_user(uid("admin"), admin=True)


def balanced(result: dict[str, Any]) -> bool:
    return bool(
        result["candidates"]
        == result["deleted"] + result["held"] + result["errors"] + result["skipped"]
    )


def test_r2_an_undeletable_file_is_a_listed_failure_and_the_others_still_go(
    hs: SynapseServer, admin: MatrixClient
) -> None:
    alice = hs.register_user(uid("alice"))
    uploads = [alice.upload_media(f"file {i}".encode(), "text/plain") for i in range(7)]
    db = hs.db()
    for mxc in uploads:
        backdate_media(db, mxc, era(1))
    stuck = uploads[2]
    (path,) = local_media_files(hs.dir / "media_store", stuck)
    path.unlink()
    path.mkdir()
    (path / "blocker").write_text("x")  # os.remove now fails with EISDIR

    status, report = admin.lux(
        "POST", "/sweep", {"as_of": era(1) + 13 * MONTH, "rules": ["attachments"]}
    )
    assert status == 200, report
    result = report["results"]["attachments"]
    assert result["errors"] == 1 and result["deleted"] == 6, result
    assert balanced(result), result
    assert local_media_rows(db, stuck)[0] == 1
    assert all(local_media_rows(db, m)[0] == 0 for m in uploads if m != stuck)

    status, body = admin.lux("GET", "/failures")
    assert status == 200, body
    (failure,) = [f for f in body["failures"] if f["rule"] == "attachments"]
    assert failure["item_id"].endswith(stuck.rsplit("/", 1)[1])
    assert failure["error_class"] == "MediaNotDeleted" and failure["attempts"] == 1
    assert failure["user_id"] == str(alice.user_id)

    shutil.rmtree(path)  # the fault is gone
    status, report = admin.lux(
        "POST", "/sweep", {"as_of": era(1) + 13 * MONTH, "rules": ["attachments"]}
    )
    assert report["results"]["attachments"]["deleted"] == 1, report
    assert local_media_rows(db, stuck)[0] == 0
    status, body = admin.lux("GET", "/failures")
    assert [f for f in body["failures"] if f["rule"] == "attachments"] == []
    status, audit = admin.lux("GET", "/audit", params={"limit": 1000})
    assert all(row["count"] > 0 for row in audit)


def wait_for(admin: MatrixClient, sweep_id: str, done: Any, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, body = admin.lux("GET", f"/sweeps/{sweep_id}")
        assert status == 200, body
        if done(body):
            return body
        time.sleep(0.02)
    raise AssertionError(f"sweep {sweep_id} never reached the expected state: {body}")


def test_r1_a_background_sweep_shows_progress_and_can_be_cancelled(
    hs: SynapseServer, admin: MatrixClient
) -> None:
    alice = hs.register_user(uid("alice"))
    room = alice.create_room()
    events = [alice.send_message(room, f"m{i}") for i in range(300)]
    db = hs.db()
    backdate_events(db, events, era(2))
    as_of = era(2) + 25 * MONTH

    status, body = admin.lux("POST", "/sweeps", {"as_of": as_of, "rules": ["messages"]})
    assert status == 202, body
    sweep_id = body["sweep_id"]
    status, other = admin.lux("POST", "/sweeps", {"dry_run": True})
    assert status == 409 and other["errcode"] == "M_LIMIT_EXCEEDED"

    seen: list[int] = []

    def progressed(state: dict[str, Any]) -> bool:
        if state["status"] == "running" and "messages" in state["results"]:
            assert state["current_rule"] == "messages"
            seen.append(state["results"]["messages"]["deleted"])
        return len(set(seen)) >= 3 or state["status"] != "running"

    state = wait_for(admin, sweep_id, progressed)
    assert state["status"] == "running", f"finished before progress was seen: {state}"
    assert seen == sorted(seen) and len(set(seen)) >= 3
    assert state["rate_per_s"] > 0

    status, body = admin.lux("DELETE", f"/sweeps/{sweep_id}")
    assert status == 202 and body["cancel_requested"] is True
    state = wait_for(admin, sweep_id, lambda s: s["status"] != "running")
    assert state["status"] == "cancelled"
    left = stored_events(db, events)
    assert 0 < len(left) < len(events)

    status, listing = admin.lux("GET", "/sweeps", params={"limit": 5})
    assert listing["sweeps"][0]["sweep_id"] == sweep_id
    assert admin.lux("GET", "/sweeps/nope")[0] == 404
    assert admin.lux("DELETE", "/sweeps/nope")[0] == 404

    # The next sweep finishes the cancelled one's work; its counts add up.
    status, report = admin.lux("POST", "/sweep", {"as_of": as_of, "rules": ["messages"]})
    assert status == 200 and balanced(report["results"]["messages"]), report
    assert len(stored_events(db, events)) <= 1  # the room's newest event stays, expunged


def test_sweep_ids_that_name_no_sweep_are_404_and_a_nul_is_400(admin: MatrixClient) -> None:
    """Found by the fuzz test: ``DELETE /sweeps/%00`` reached PostgreSQL and gave a 500."""
    for sweep_id in ("nope", "0" * 31 + "g", "%F0%9F%98%80", "A" * 32):
        for method in ("GET", "DELETE"):
            status, body = admin.lux(method, f"/sweeps/{sweep_id}")
            assert status == 404 and body["errcode"] == "M_NOT_FOUND", (method, sweep_id, body)
    for method in ("GET", "DELETE"):
        status, body = admin.lux(method, "/sweeps/%00")
        assert status == 400 and body["errcode"] == "M_INVALID_PARAM", body
    status, body = admin.lux("GET", "/holds/a%00b")
    assert status == 400 and body["errcode"] == "M_INVALID_PARAM", body
