"""R10 on a real Synapse (SQLite and PostgreSQL): the national directory is kept in step.

A real HTTP server on 127.0.0.1 (stdlib ``http.server`` in a thread) plays the national
directory service exactly as docs/national-directory-api.md defines it. Each database
gets one Synapse configured with ``directory.national`` for the whole module; one test
kills and restarts it.

Time: nothing waits for months. Changes are delivered at once by the instance that
queued them; retries still in their backoff are forced by a sweep "as of" one day later
(``allow_future_sweeps``); the removal deadline alert is tested by backdating a queued
removal's ``created_ts`` in the module's outbox table.
"""

import contextlib
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import attrs
import pytest

from tests.conftest import DATABASES
from tests.harness import MatrixClient, PostgresCluster, SynapseServer, uid

pytestmark = pytest.mark.integration

Unique = Callable[..., str]
DAY_MS = 86_400_000
_USER_PATH = re.compile(r"/api/v1/users/([^/?]+)")
_AGE_METRIC = re.compile(
    r'^lux_privacy_directory_oldest_pending_removal_age_seconds\{server_name="lux.test"\} (\S+)$',
    re.MULTILINE,
)


@attrs.define
class Received:
    """One request as the service received it."""

    method: str
    user_id: str
    status: int
    body: dict[str, Any] | None


class NationalDirectoryStub:
    """The national directory service of docs/national-directory-api.md, in memory.

    ``mode``: ``up`` answers; ``down`` answers 503 and applies nothing; ``hang`` applies
    the change, then holds the answer until ``release`` is set (a response lost on the way).
    """

    def __init__(self) -> None:
        self.token = secrets.token_hex(16)
        self.entries: dict[str, dict[str, Any]] = {}
        self.last_changed: dict[str, int] = {}
        self.received: list[Received] = []
        self.mode = "up"
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/api/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def requests_for(self, user_id: str) -> list[tuple[str, int]]:
        with self._lock:
            return [(r.method, r.status) for r in self.received if r.user_id == user_id]

    def handle(self, method: str, path: str, auth: str, raw: bytes) -> tuple[int, bytes]:
        match = _USER_PATH.fullmatch(urlsplit(path).path)
        if match is None:
            return 404, b'{"error": "no such endpoint"}'
        user_id = unquote(match.group(1))
        body = json.loads(raw) if raw else None
        with self._lock:
            status = self._apply(method, user_id, path, auth, body)
            self.received.append(Received(method, user_id, status, body))
        if self.mode == "hang":
            self.release.wait(120)
        return status, (b"{}" if status == 200 else b"")

    def _apply(
        self, method: str, user_id: str, path: str, auth: str, body: dict[str, Any] | None
    ) -> int:
        if auth != f"Bearer {self.token}":
            return 401
        if self.mode == "down":
            return 503
        if method == "PUT":
            assert body is not None and body["user_id"] == user_id
            changed_ts = int(body["changed_ts"])
        else:
            changed_ts = int(parse_qs(urlsplit(path).query)["changed_ts"][0])
        if changed_ts < self.last_changed.get(user_id, 0):
            return 200 if method == "PUT" else 204  # older than what is applied: ignored
        self.last_changed[user_id] = changed_ts
        if method == "PUT":
            assert body is not None
            self.entries[user_id] = {"display_name": body["display_name"]}
            return 200
        self.entries.pop(user_id, None)
        return 204

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                auth = self.headers.get("Authorization") or ""
                status, out = stub.handle(self.command, self.path, auth, raw)
                with contextlib.suppress(OSError):  # the client may be gone (killed)
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)

            do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@attrs.define
class National:
    """A Synapse with ``directory.national`` pointing at the stub, and one of its admins."""

    server: SynapseServer
    stub: NationalDirectoryStub
    admin: MatrixClient


@pytest.fixture(scope="module", params=DATABASES, ids=DATABASES)
def national(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[National]:
    database: str = request.param
    stub = NationalDirectoryStub()
    stub.start()
    tmp = tmp_path_factory.mktemp(f"national-{database}")
    token_path = Path(tmp) / "national_directory_token"
    token_path.write_text(stub.token + "\n")
    pg_params = None
    if database == "postgres":
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        pg_params = cluster.create_database(uid("synapse_"))
    module_config = {
        "allow_future_sweeps": True,
        "directory": {
            "national": {"url": stub.url, "token_path": str(token_path), "removal_deadline": "1h"}
        },
    }
    server = SynapseServer(tmp, database, pg_params, module_config)  # type: ignore[arg-type]
    server.start()
    try:
        yield National(server, stub, server.register_user(uid("admin"), admin=True))
    finally:
        server.stop()
        stub.stop()


@pytest.fixture(autouse=True)
def _stub_up(national: National) -> Iterator[None]:
    national.stub.mode = "up"
    yield
    national.stub.mode = "up"
    national.stub.release.set()


def _wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
    return result


def _consent(n: National, user_id: str, consent: bool) -> None:
    path = f"/users/{user_id}/directory_consent"
    status, body = n.admin.lux("PUT", path, {"consent": consent})
    assert status == 200, body


def _outbox(n: National, user_id: str) -> list[dict[str, Any]]:
    status, report = n.admin.lux("GET", f"/users/{user_id}")
    assert status == 200, report
    return list(report["directory_outbox"])


def _register(n: National, unique: Unique, name: str) -> MatrixClient:
    client = n.server.register_user(unique("nat"), displayname=name)
    assert client.user_id is not None
    return client


def _oldest_removal_age(n: National) -> float:
    found = _AGE_METRIC.findall(n.server.metrics_text())
    assert found, "the removal age metric is not exported"
    return float(found[0])


def test_r10_consent_rename_and_withdrawal_reach_the_national_directory(
    national: National, unique: Unique
) -> None:
    n = national
    alice = _register(n, unique, "Alice First")
    never = _register(n, unique, "Never Asked")
    uid_a = alice.user_id or ""

    _consent(n, uid_a, True)
    _wait_for(lambda: n.stub.entries.get(uid_a) == {"display_name": "Alice First"}, "listing")
    alice.set_displayname("Alice Renamed")
    _wait_for(lambda: n.stub.entries.get(uid_a) == {"display_name": "Alice Renamed"}, "rename")
    _consent(n, uid_a, False)
    _wait_for(lambda: uid_a not in n.stub.entries, "removal")
    assert _wait_for(lambda: _outbox(n, uid_a) == [], "an empty outbox") is True
    assert n.stub.requests_for(uid_a) == [("PUT", 200), ("PUT", 200), ("DELETE", 204)]

    # A user who never consented is never sent to the service, not even as a removal.
    _consent(n, never.user_id or "", False)
    never.set_displayname("Still Private")
    time.sleep(1)
    assert n.stub.requests_for(never.user_id or "") == []
    assert _outbox(n, never.user_id or "") == []


def test_r10_deactivation_removes_the_national_entry(national: National, unique: Unique) -> None:
    n = national
    bob = _register(n, unique, "Bob Leaving")
    uid_b = bob.user_id or ""
    _consent(n, uid_b, True)
    _wait_for(lambda: uid_b in n.stub.entries, "listing")

    assert bob.password is not None
    bob.deactivate(bob.password)
    _wait_for(lambda: uid_b not in n.stub.entries, "removal after deactivation")
    assert n.stub.requests_for(uid_b) == [("PUT", 200), ("DELETE", 204)]
    status, consent = n.admin.lux("GET", f"/users/{uid_b}/directory_consent")
    assert (status, consent["consent"]) == (200, False)


def test_r10_service_down_then_back_every_removal_is_delivered(
    national: National, unique: Unique
) -> None:
    n = national
    clients = [_register(n, unique, f"Down {i}") for i in range(6)]
    users = [c.user_id or "" for c in clients]
    for user_id in users:
        _consent(n, user_id, True)
    _wait_for(lambda: all(u in n.stub.entries for u in users), "all listings")

    n.stub.mode = "down"
    for user_id in users[:3]:
        _consent(n, user_id, False)
    for client in clients[3:]:
        assert client.password is not None
        client.deactivate(client.password)

    def queued_and_failing() -> bool:
        outboxes = [_outbox(n, u) for u in users]
        return all(len(o) == 1 and o[0]["action"] == "delete" for o in outboxes) and any(
            o[0]["attempts"] >= 1 and o[0]["last_error"] == "HTTP 503" for o in outboxes
        )

    _wait_for(queued_and_failing, "queued removals, and failed attempts")
    assert all(u in n.stub.entries for u in users)  # nothing applied while down
    assert _wait_for(lambda: _oldest_removal_age(n) > 0, "a removal age above zero")

    # Past the deadline (1h) every sweep logs an error: backdate one removal by 2 hours.
    shift = "UPDATE lux_privacy_directory_outbox SET created_ts = created_ts + ? WHERE user_id = ?"
    n.server.db().execute(shift, (-2 * 3_600_000, users[0]))
    status, report = n.admin.lux("POST", "/sweep", {"rules": ["directory"]})
    assert status == 200, report
    n.server.wait_for_log("R10 removal deadline missed")
    assert _oldest_removal_age(n) >= 2 * 3600
    # Put the time back: it is also the change time the service orders changes by.
    n.server.db().execute(shift, (2 * 3_600_000, users[0]))

    # Back up: a sweep as of tomorrow delivers what is still waiting for its retry.
    n.stub.mode = "up"
    tomorrow = int(time.time() * 1000) + DAY_MS
    status, report = n.admin.lux(
        "POST", "/sweep", {"rules": ["directory"], "as_of": tomorrow, "dry_run": False}
    )
    assert status == 200 and report["results"]["directory"]["errors"] == 0, report
    _wait_for(lambda: not any(u in n.stub.entries for u in users), "every removal delivered")
    for user_id in users:
        assert _outbox(n, user_id) == []
        sent = n.stub.requests_for(user_id)
        assert sent[0] == ("PUT", 200) and sent[-1] == ("DELETE", 204), sent
        assert {m for m, s in sent[1:-1]} <= {"DELETE"} and all(s == 503 for _, s in sent[1:-1])
    assert _wait_for(lambda: _oldest_removal_age(n) == 0, "the removal age back to zero")


def test_r10_restart_in_the_middle_of_the_outbox_loses_nothing(
    national: National, unique: Unique
) -> None:
    """Synapse is killed (SIGKILL) while a removal is in flight and others wait behind it."""
    n = national
    users = [_register(n, unique, f"Crash {i}").user_id or "" for i in range(4)]
    for user_id in users:
        _consent(n, user_id, True)
    _wait_for(lambda: all(u in n.stub.entries for u in users), "all listings")

    n.stub.release.clear()
    n.stub.mode = "hang"
    for user_id in users:
        _consent(n, user_id, False)

    def in_flight() -> list[str]:
        return [u for u in users if ("DELETE", 204) in n.stub.requests_for(u)]

    first = _wait_for(in_flight, "a removal in flight")
    time.sleep(0.5)
    assert in_flight() == first and len(first) == 1  # the others wait behind it
    n.server.kill()

    n.stub.mode = "up"
    n.stub.release.set()
    n.server.start()
    _wait_for(lambda: not any(u in n.stub.entries for u in users), "every removal delivered")
    assert _wait_for(lambda: all(_outbox(n, u) == [] for u in users), "empty outboxes") is True
    for user_id in users:
        deletes = [m for m, _ in n.stub.requests_for(user_id)].count("DELETE")
        # The unacknowledged removal is sent again (same effect); the others once.
        assert deletes == (2 if user_id in first else 1), n.stub.requests_for(user_id)
        assert n.admin.lux("GET", f"/users/{user_id}/directory_consent")[1]["consent"] is False
