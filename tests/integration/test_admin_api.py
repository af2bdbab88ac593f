"""The admin API on a real Synapse, over HTTP, on SQLite and PostgreSQL.

Time: no rule needs aged data here; holds and audit rows are read back as written,
and the sweep's "as of" is given explicitly.
"""

import time
from typing import Any

import pytest

from synapse_lux_privacy.sweep.rule import RULE_NAMES
from tests.harness import MatrixClient, SynapseServer

pytestmark = pytest.mark.integration

ENDPOINTS = [
    ("POST", "/sweep"),
    ("GET", "/audit"),
    ("GET", "/holds"),
    ("GET", "/holds/h1"),
    ("PUT", "/holds/h1"),
    ("DELETE", "/holds/h1"),
    ("GET", "/users/@someone:lux.test"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_every_endpoint_needs_a_server_admin(
    synapse: SynapseServer, user: MatrixClient, method: str, path: str
) -> None:
    anonymous = MatrixClient(synapse.base_url)
    assert anonymous.lux(method, path) == (
        401,
        {"errcode": "M_MISSING_TOKEN", "error": "Missing access token"},
    )
    status, body = MatrixClient(synapse.base_url, access_token="not-a-token").lux(method, path)
    assert (status, body["errcode"]) == (401, "M_UNKNOWN_TOKEN")
    status, body = user.lux(method, path)
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


def test_sweep_reports_every_rule_of_the_contract(admin: MatrixClient) -> None:
    before = int(time.time() * 1000)
    status, report = admin.lux("POST", "/sweep", {"dry_run": False, "as_of": None, "rules": None})
    assert status == 200, report
    assert list(report["results"]) == list(RULE_NAMES)
    assert report["dry_run"] is False
    assert report["as_of"] >= before
    for counts in report["results"].values():
        assert {"candidates", "deleted", "held", "errors"} <= set(counts)


def test_sweep_honours_dry_run_as_of_and_the_rule_filter(admin: MatrixClient) -> None:
    status, report = admin.lux(
        "POST",
        "/sweep",
        {"dry_run": True, "as_of": 1_700_000_000_000, "rules": ["sessions", "messages"]},
    )
    assert status == 200, report
    assert (report["dry_run"], report["as_of"]) == (True, 1_700_000_000_000)
    assert list(report["results"]) == ["messages", "sessions"]


def test_a_future_as_of_is_a_forecast_only(admin: MatrixClient) -> None:
    future = int(time.time() * 1000) + 400 * 86_400_000
    status, report = admin.lux("POST", "/sweep", {"dry_run": True, "as_of": future})
    assert (status, report["as_of"]) == (200, future)
    status, body = admin.lux("POST", "/sweep", {"as_of": future})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    assert "allow_future_sweeps" in body["error"]


BAD_REQUESTS: list[tuple[str, str, Any, int, str]] = [
    ("POST", "/sweep", b"{not json", 400, "M_NOT_JSON"),
    ("POST", "/sweep", [1, 2], 400, "M_BAD_JSON"),
    ("POST", "/sweep", {"dry_run": "yes"}, 400, "M_INVALID_PARAM"),
    ("POST", "/sweep", {"as_of": -5}, 400, "M_INVALID_PARAM"),
    ("POST", "/sweep", {"as_of": "today"}, 400, "M_INVALID_PARAM"),
    ("POST", "/sweep", {"as_of": 10**30}, 400, "M_INVALID_PARAM"),
    ("POST", "/sweep", {"rules": ["messages", "nope"]}, 400, "M_INVALID_PARAM"),
    ("POST", "/sweep", {"rules": []}, 400, "M_INVALID_PARAM"),
    ("POST", "/sweep", {"rules": "messages"}, 400, "M_INVALID_PARAM"),
    ("POST", "/sweep", {"dryrun": True}, 400, "M_INVALID_PARAM"),
    ("GET", "/audit?limit=abc", None, 400, "M_INVALID_PARAM"),
    ("GET", "/audit?limit=0", None, 400, "M_INVALID_PARAM"),
    ("GET", "/audit?limit=100000", None, 400, "M_INVALID_PARAM"),
    ("GET", "/audit?since=-1", None, 400, "M_INVALID_PARAM"),
    ("GET", "/holds?include_released=maybe", None, 400, "M_INVALID_PARAM"),
    ("PUT", "/holds/h-bad", {"reason": "no target"}, 400, "M_INVALID_PARAM"),
    (
        "PUT",
        "/holds/h-bad",
        {"user_id": "@a:lux.test", "room_id": "!r:lux.test", "reason": "x"},
        400,
        "M_INVALID_PARAM",
    ),
    ("PUT", "/holds/h-bad", {"user_id": "alice", "reason": "x"}, 400, "M_INVALID_PARAM"),
    ("PUT", "/holds/h-bad", {"room_id": "room", "reason": "x"}, 400, "M_INVALID_PARAM"),
    ("PUT", "/holds/h-bad", {"user_id": "@a:lux.test"}, 400, "M_INVALID_PARAM"),
    ("PUT", "/holds/h-bad", {"user_id": "@a:lux.test", "reason": 42}, 400, "M_INVALID_PARAM"),
    ("PUT", "/holds/h-bad", b"\xff\xfe", 400, "M_NOT_JSON"),
    ("PUT", "/holds/bad%20id", {"user_id": "@a:lux.test", "reason": "x"}, 400, "M_INVALID_PARAM"),
    ("DELETE", "/holds/never-placed", None, 404, "M_NOT_FOUND"),
    ("GET", "/holds/never-placed", None, 404, "M_NOT_FOUND"),
    ("GET", "/users/not-a-user-id", None, 400, "M_INVALID_PARAM"),
    ("GET", "/users/@nobody-here:lux.test", None, 404, "M_NOT_FOUND"),
    ("GET", "/users/@alice:elsewhere.example", None, 404, "M_NOT_FOUND"),
    ("GET", "/no/such/endpoint", None, 404, "M_UNRECOGNIZED"),
    ("PATCH", "/holds/h1", None, 405, "M_UNRECOGNIZED"),
    ("GET", "/sweep", None, 405, "M_UNRECOGNIZED"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "errcode"), BAD_REQUESTS)
def test_bad_input_gets_a_matrix_error_never_a_500(
    admin: MatrixClient, method: str, path: str, body: Any, status: int, errcode: str
) -> None:
    if isinstance(body, bytes):
        resp = admin.request(method, "/_synapse/client/lux_privacy/v1" + path, data=body)
        got_status, got = resp.status_code, resp.json()
    else:
        got_status, got = admin.lux(method, path, body)
    assert (got_status, got.get("errcode")) == (status, errcode), got
    assert isinstance(got.get("error"), str) and got["error"]


def test_r13_hold_lifecycle_is_recorded(
    synapse: SynapseServer, admin: MatrixClient, user: MatrixClient, unique: Any
) -> None:
    hold_id = unique("case")
    status, hold = admin.lux(
        "PUT", f"/holds/{hold_id}", {"user_id": user.user_id, "reason": "case 42"}
    )
    assert status == 201, hold
    assert (hold["user_id"], hold["room_id"], hold["reason"], hold["created_by"]) == (
        user.user_id,
        None,
        "case 42",
        admin.user_id,
    )
    # Same target again: an update of the reason, not a new hold.
    status, hold = admin.lux(
        "PUT", f"/holds/{hold_id}", {"user_id": user.user_id, "reason": "case 43"}
    )
    assert (status, hold["reason"]) == (200, "case 43")
    # A hold's target never changes.
    status, body = admin.lux(
        "PUT", f"/holds/{hold_id}", {"room_id": user.create_room(), "reason": "x"}
    )
    assert (status, body["errcode"]) == (409, "M_INVALID_PARAM")

    status, report = admin.lux("GET", f"/users/{user.user_id}")
    assert (status, report["legal_hold"], report["legal_hold_ids"]) == (200, True, [hold_id])
    status, listing = admin.lux("GET", "/holds")
    assert hold_id in [h["hold_id"] for h in listing["holds"]]

    status, released = admin.lux("DELETE", f"/holds/{hold_id}")
    assert status == 200 and released["released_by"] == admin.user_id
    assert admin.lux("DELETE", f"/holds/{hold_id}")[0] == 200  # idempotent
    assert hold_id not in [h["hold_id"] for h in admin.lux("GET", "/holds")[1]["holds"]]
    released_ids = [
        h["hold_id"] for h in admin.lux("GET", "/holds?include_released=true")[1]["holds"]
    ]
    assert hold_id in released_ids
    status, report = admin.lux("GET", f"/users/{user.user_id}")
    assert report["legal_hold"] is False

    status, detail = admin.lux("GET", f"/holds/{hold_id}")
    assert [h["action"] for h in detail["history"]] == ["placed", "updated", "released"]
    rows = synapse.db().query(
        "SELECT action, actor FROM lux_privacy_hold_log WHERE hold_id = ? ORDER BY id", (hold_id,)
    )
    assert rows == [
        ("placed", admin.user_id),
        ("updated", admin.user_id),
        ("released", admin.user_id),
    ]


def test_r13_room_hold_and_url_encoded_user_report(
    admin: MatrixClient, user: MatrixClient, unique: Any
) -> None:
    room_id = user.create_room(name="held room")
    hold_id = unique("room")
    status, hold = admin.lux("PUT", f"/holds/{hold_id}", {"room_id": room_id, "reason": "inquiry"})
    assert (status, hold["room_id"], hold["user_id"]) == (201, room_id, None)
    encoded = user.user_id.replace("@", "%40").replace(":", "%3A")
    status, report = admin.lux("GET", f"/users/{encoded}")
    assert (status, report["user_id"], report["legal_hold"]) == (200, user.user_id, False)
    assert report["deactivated"] is False and report["created_ts"] > 0
    admin.lux("DELETE", f"/holds/{hold_id}")


def test_audit_lists_newest_first_with_since_and_limit(
    synapse: SynapseServer, admin: MatrixClient
) -> None:
    db = synapse.db()
    base = 4_000_000_000_000  # far future, so these rows are the newest in the shared server
    for i in range(3):
        db.execute(
            "INSERT INTO lux_privacy_audit (ts, sweep_id, rule, status, count, bytes, user_id,"
            " room_id) VALUES (?, 's', 'messages', 'done', ?, ?, ?, NULL)",
            (base + i, i + 1, 10 * (i + 1), "@a:lux.test"),
        )
    status, entries = admin.lux("GET", f"/audit?since={base + 1}&limit=10")
    assert status == 200
    assert [(e["ts"], e["count"], e["bytes"]) for e in entries] == [
        (base + 2, 3, 30),
        (base + 1, 2, 20),
    ]
    assert set(entries[0]) == {
        "ts",
        "rule",
        "status",
        "count",
        "bytes",
        "user_id",
        "room_id",
        "sweep_id",
        "provider_objects",
        "id",
        "seq",
        "prev_hash",
        "hash",
    }
    # Inserted around the module: outside the audit's hash chain (docs/proof.md).
    assert (entries[0]["seq"], entries[0]["hash"]) == (None, None)
    status, entries = admin.lux("GET", f"/audit?since={base}&limit=1")
    assert [e["ts"] for e in entries] == [base + 2]
    db.execute("DELETE FROM lux_privacy_audit WHERE ts >= ?", (base,))


def test_sweep_is_refused_while_another_worker_holds_the_lock(
    synapse: SynapseServer, admin: MatrixClient
) -> None:
    db = synapse.db()
    now = int(time.time() * 1000)
    db.execute(
        "INSERT INTO lux_privacy_lock (name, holder, expires_ts)"
        " VALUES ('sweep', 'worker-2/1/x', ?)",
        (now + 600_000,),
    )
    try:
        status, body = admin.lux("POST", "/sweep", {"dry_run": True})
        assert (status, body["errcode"]) == (409, "M_LIMIT_EXCEEDED")
        # The other worker died long ago: its lease has expired, the sweep takes over.
        db.execute("UPDATE lux_privacy_lock SET expires_ts = ? WHERE name = 'sweep'", (now - 1,))
        status, report = admin.lux("POST", "/sweep", {"dry_run": True})
        assert status == 200, report
        assert db.query("SELECT COUNT(*) FROM lux_privacy_lock") == [(0,)]
    finally:
        db.execute("DELETE FROM lux_privacy_lock WHERE holder = 'worker-2/1/x'")


def test_sweeps_are_recorded_and_exported_as_metrics(
    synapse: SynapseServer, admin: MatrixClient
) -> None:
    status, report = admin.lux("POST", "/sweep", {"dry_run": False})
    assert status == 200
    row = synapse.db().query_one(
        "SELECT status, instance, dry_run FROM lux_privacy_sweeps WHERE sweep_id = ?",
        (report["sweep_id"],),
    )
    assert row is not None and row[0] == "completed" and row[1] == "master" and not row[2]
    metrics = admin.request("GET", "/_synapse/metrics").text
    assert (
        'lux_privacy_sweep_duration_seconds_count{dry_run="false",server_name="lux.test"}'
        in metrics
    )
    last = [
        line
        for line in metrics.splitlines()
        if line.startswith("lux_privacy_last_successful_sweep_timestamp_seconds{")
    ]
    assert last and float(last[0].rsplit(" ", 1)[1]) * 1000 >= report["started_ts"] - 1000
