"""The quota's admin API and a server without a default quota (R4, R14), on the shared
homeserver (``quota.default_bytes`` null), SQLite and PostgreSQL.

Time: nothing is aged; uploads and messages happen now. Sweeps are limited to the
``quota`` rule, which only touches users over a quota: here only users these tests
give an override.
"""

from typing import Any

import pytest

from tests.harness import MatrixClient, SynapseServer
from tests.integration.test_quota_support import (
    KIB,
    present,
    quota_of,
    set_quota,
    storage,
    sweep,
    truth,
    upload_all,
)

pytestmark = pytest.mark.integration

ENDPOINTS = [
    ("GET", "/users/@someone:lux.test/quota"),
    ("PUT", "/users/@someone:lux.test/quota"),
    ("POST", "/quota/reconcile"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_quota_endpoints_need_a_server_admin(
    synapse: SynapseServer, user: MatrixClient, method: str, path: str
) -> None:
    status, body = MatrixClient(synapse.base_url).lux(method, path)
    assert (status, body["errcode"]) == (401, "M_MISSING_TOKEN")
    status, body = user.lux(method, path, {"quota_bytes": 1})
    assert (status, body["errcode"]) == (403, "M_FORBIDDEN")


BAD_QUOTAS: list[tuple[Any, str]] = [
    ({"quota_bytes": 0}, "M_INVALID_PARAM"),
    ({"quota_bytes": -1}, "M_INVALID_PARAM"),
    ({"quota_bytes": "5G"}, "M_INVALID_PARAM"),
    ({"quota_bytes": True}, "M_INVALID_PARAM"),
    ({"quota_bytes": 1.5}, "M_INVALID_PARAM"),
    ({"quota_bytes": 2**63}, "M_INVALID_PARAM"),
    ({}, "M_INVALID_PARAM"),
    ({"quota_bytes": 1, "bytes": 2}, "M_INVALID_PARAM"),
    ([1], "M_BAD_JSON"),
]


@pytest.mark.parametrize(("body", "errcode"), BAD_QUOTAS)
def test_r4_a_bad_quota_gets_a_matrix_error_and_changes_nothing(
    admin: MatrixClient, user: MatrixClient, body: Any, errcode: str
) -> None:
    status, answer = admin.lux("PUT", f"/users/{user.user_id}/quota", body)
    assert (status, answer["errcode"]) == (400, errcode), answer
    assert quota_of(admin, str(user.user_id))["quota_bytes"] is None


@pytest.mark.parametrize(
    ("path", "status", "errcode"),
    [
        ("/users/not-a-user/quota", 400, "M_INVALID_PARAM"),
        ("/users/@nobody-here:lux.test/quota", 404, "M_NOT_FOUND"),
        ("/users/@alice:elsewhere.example/quota", 404, "M_NOT_FOUND"),
    ],
)
def test_r4_r6_quotas_are_for_existing_local_users_only(
    admin: MatrixClient, path: str, status: int, errcode: str
) -> None:
    for method, body in (("GET", None), ("PUT", {"quota_bytes": 1024})):
        got, answer = admin.lux(method, path, body)
        assert (got, answer["errcode"]) == (status, errcode), answer


def test_r4_r14_without_a_default_quota_usage_is_reported_and_uploads_are_not_limited(
    synapse: SynapseServer, admin: MatrixClient, user: MatrixClient
) -> None:
    """No quota: quota_bytes null, Synapse's own media config; the report's storage field
    and the quota endpoint show usage equal to Synapse's tables."""
    room = user.create_room()
    user.send_message(room, "hello " + "h" * 500)
    upload_all(user, [30 * KIB, 20 * KIB])
    sweep(admin, ["quota"])
    media_bytes, event_bytes = truth(synapse.db(), str(user.user_id))
    assert media_bytes == 50 * KIB and event_bytes > 500
    assert storage(admin, str(user.user_id)) == {
        "used_bytes": media_bytes + event_bytes,
        "media_bytes": media_bytes,
        "event_bytes": event_bytes,
        "quota_bytes": None,
    }
    assert quota_of(admin, str(user.user_id)) == {
        "quota_bytes": None,
        "used_bytes": media_bytes + event_bytes,
    }
    assert user.call("GET", "/_matrix/client/v1/media/config") == {"m.upload.size": 50 * 1024**2}


def test_r4_removing_the_quota_stops_eviction(admin: MatrixClient, user: MatrixClient) -> None:
    """A 150 KiB override evicts the older of two 100 KiB files; back to no quota
    (``null``), two more uploads stay."""
    user_id = str(user.user_id)
    assert set_quota(admin, user_id, 150 * KIB)["quota_bytes"] == 150 * KIB
    uris = upload_all(user, [100 * KIB, 100 * KIB])
    sweep(admin, ["quota"])
    assert present(user, uris) == [False, True]
    assert quota_of(admin, user_id) == {"quota_bytes": 150 * KIB, "used_bytes": 100 * KIB}

    assert set_quota(admin, user_id, None) == {"quota_bytes": None, "used_bytes": 100 * KIB}
    uris += upload_all(user, [100 * KIB, 100 * KIB])
    sweep(admin, ["quota"])
    assert present(user, uris) == [False, True, True, True]
    assert quota_of(admin, user_id) == {"quota_bytes": None, "used_bytes": 300 * KIB}


def test_r4_reconciliation_reports_what_it_checked_and_corrected(admin: MatrixClient) -> None:
    status, report = admin.lux("POST", "/quota/reconcile", {})
    assert status == 200, report
    assert set(report) == {
        "users_checked",
        "users_corrected",
        "bytes_corrected",
        "items_added",
        "items_removed",
        "items_resized",
        "corrections",
    }
    assert len(report["corrections"]) == min(report["users_corrected"], 100)
    status, body = admin.lux("POST", "/quota/reconcile", {"user_id": "@x:lux.test"})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
