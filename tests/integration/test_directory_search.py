"""R10 on a real Synapse (SQLite and PostgreSQL): user directory search needs consent.

The shared server runs the module with its defaults (``require_consent: true``, no
national directory). Searches are made by another, ordinary user.

Time: nothing ages here; consent is set through the admin API and its effect is read
back at once (a withdrawal must hide the user from the very next search).
"""

import secrets
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import StartSynapse
from tests.harness import MatrixClient, SynapseServer, uid

pytestmark = pytest.mark.integration

Unique = Callable[..., str]


def _wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll ``check`` until it returns something truthy (or the timeout passes)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def _consent(admin: MatrixClient, user_id: str, consent: bool) -> dict[str, Any]:
    status, body = admin.lux("PUT", f"/users/{user_id}/directory_consent", {"consent": consent})
    assert status == 200, body
    return dict(body)


def _indexed(synapse: SynapseServer, *user_ids: str) -> bool:
    """Whether Synapse's own user directory holds all these users (so only we can hide them)."""
    marks = ", ".join("?" for _ in user_ids)
    rows = synapse.db().query(
        f"SELECT user_id FROM user_directory WHERE user_id IN ({marks})", user_ids
    )
    return len(rows) == len(user_ids)


def _user_id(client: MatrixClient) -> str:
    assert client.user_id is not None
    return client.user_id


def test_r10_search_lists_only_consenting_users_and_a_withdrawal_hides_at_once(
    synapse: SynapseServer, admin: MatrixClient, user: MatrixClient, unique: Unique
) -> None:
    word = unique("lux")
    listed = _user_id(synapse.register_user(unique("dir"), displayname=f"Listed {word}"))
    silent_client = synapse.register_user(unique("dir"), displayname=f"Silent {word}")
    silent = _user_id(silent_client)
    assert _wait_for(lambda: _indexed(synapse, listed, silent)), "users never indexed"

    # Until set: no consent, so nobody is returned although Synapse indexed both.
    assert user.directory_search(word) == []
    assert admin.lux("GET", f"/users/{listed}/directory_consent") == (
        200,
        {"consent": False, "updated_ts": None},
    )

    before = int(time.time() * 1000)
    given = _consent(admin, listed, True)
    assert given["consent"] is True and given["updated_ts"] >= before
    assert _wait_for(lambda: user.directory_search(word) == [listed])
    # Consent sent again keeps the time it was given.
    assert _consent(admin, listed, True) == given

    withdrawn = _consent(admin, listed, False)
    assert user.directory_search(word) == []  # the very next search, no waiting
    assert withdrawn["consent"] is False and withdrawn["updated_ts"] >= given["updated_ts"]
    assert admin.lux("GET", f"/users/{listed}/directory_consent") == (200, withdrawn)
    # Without consent a user is hidden from everyone, themselves and admins included.
    assert silent_client.directory_search(word) == []
    assert admin.directory_search(word) == []


def test_r10_a_consenting_users_new_display_name_is_searchable(
    synapse: SynapseServer, admin: MatrixClient, user: MatrixClient, unique: Unique
) -> None:
    old, new = unique("old"), unique("new")
    target = synapse.register_user(unique("dir"), displayname=f"Name {old}")
    _consent(admin, _user_id(target), True)
    assert _wait_for(lambda: user.directory_search(old) == [target.user_id])

    target.set_displayname(f"Name {new}")
    assert _wait_for(lambda: user.directory_search(new) == [target.user_id])
    assert _wait_for(lambda: user.directory_search(old) == [])


def test_r10_deactivation_withdraws_consent_and_removes_the_user_from_search(
    synapse: SynapseServer, admin: MatrixClient, user: MatrixClient, unique: Unique
) -> None:
    word = unique("gone")
    target = synapse.register_user(unique("dir"), displayname=f"Leaving {word}")
    user_id = _user_id(target)
    given = _consent(admin, user_id, True)
    assert _wait_for(lambda: user.directory_search(word) == [user_id])

    assert target.password is not None
    target.deactivate(target.password)
    assert user.directory_search(word) == []
    status, consent = admin.lux("GET", f"/users/{user_id}/directory_consent")
    assert status == 200 and consent["consent"] is False
    assert consent["updated_ts"] >= given["updated_ts"]
    status, report = admin.lux("GET", f"/users/{user_id}")
    assert (status, report["directory_consent"]) == (200, False)
    # A deactivated account cannot be listed again; withdrawing stays possible.
    status, body = admin.lux("PUT", f"/users/{user_id}/directory_consent", {"consent": True})
    assert (status, body["errcode"]) == (400, "M_INVALID_PARAM")
    assert _consent(admin, user_id, False) == consent


def test_r14_report_shows_directory_consent_and_an_empty_outbox_without_national(
    synapse: SynapseServer, admin: MatrixClient, unique: Unique
) -> None:
    user_id = _user_id(synapse.register_user(unique("dir")))
    status, report = admin.lux("GET", f"/users/{user_id}")
    assert status == 200
    assert (report["directory_consent"], report["directory_consent_updated_ts"]) == (False, None)
    assert report["directory_outbox"] == []
    given = _consent(admin, user_id, True)
    status, report = admin.lux("GET", f"/users/{user_id}")
    assert (report["directory_consent"], report["directory_consent_updated_ts"]) == (
        True,
        given["updated_ts"],
    )
    # Without directory.national nothing is queued for a national service.
    assert report["directory_outbox"] == []


BAD_CONSENT_REQUESTS: list[tuple[str, str, Any, int, str]] = [
    ("PUT", "@{local}", b"{not json", 400, "M_NOT_JSON"),
    ("PUT", "@{local}", [True], 400, "M_BAD_JSON"),
    ("PUT", "@{local}", {}, 400, "M_INVALID_PARAM"),
    ("PUT", "@{local}", {"consent": "yes"}, 400, "M_INVALID_PARAM"),
    ("PUT", "@{local}", {"consent": None}, 400, "M_INVALID_PARAM"),
    ("PUT", "@{local}", {"consent": 1}, 400, "M_INVALID_PARAM"),
    ("PUT", "@{local}", {"consent": True, "reason": "x"}, 400, "M_INVALID_PARAM"),
    ("PUT", "not-a-user-id", {"consent": True}, 400, "M_INVALID_PARAM"),
    ("PUT", "@nobody-here:lux.test", {"consent": True}, 404, "M_NOT_FOUND"),
    ("PUT", "@alice:elsewhere.example", {"consent": True}, 404, "M_NOT_FOUND"),
    ("GET", "@nobody-here:lux.test", None, 404, "M_NOT_FOUND"),
    ("GET", "@alice:elsewhere.example", None, 404, "M_NOT_FOUND"),
    ("POST", "@{local}", {"consent": True}, 405, "M_UNRECOGNIZED"),
]


@pytest.mark.parametrize(("method", "who", "body", "status", "errcode"), BAD_CONSENT_REQUESTS)
def test_r10_consent_endpoint_rejects_bad_input_with_a_matrix_error(
    admin: MatrixClient,
    user: MatrixClient,
    method: str,
    who: str,
    body: Any,
    status: int,
    errcode: str,
) -> None:
    target = _user_id(user) if who == "@{local}" else who
    path = f"/users/{target}/directory_consent"
    if isinstance(body, bytes):
        resp = admin.request(method, "/_synapse/client/lux_privacy/v1" + path, data=body)
        got_status, got = resp.status_code, resp.json()
    else:
        got_status, got = admin.lux(method, path, body)
    assert (got_status, got.get("errcode")) == (status, errcode), got
    assert isinstance(got.get("error"), str) and got["error"]
    # Nothing was recorded by a refused request.
    assert admin.lux("GET", f"/users/{_user_id(user)}/directory_consent")[1]["updated_ts"] is None


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_r10_consent_endpoint_needs_a_server_admin(
    synapse: SynapseServer, user: MatrixClient, method: str
) -> None:
    path = f"/users/{_user_id(user)}/directory_consent"
    body = {"consent": True} if method == "PUT" else None
    assert MatrixClient(synapse.base_url).lux(method, path, body)[0] == 401
    status, error = user.lux(method, path, body)
    assert (status, error["errcode"]) == (403, "M_FORBIDDEN")


def _search(client: MatrixClient, term: str, limit: int) -> Any:
    """The whole response of a user directory search, as a client sees it."""
    body = {"search_term": term, "limit": limit}
    return client.call("POST", "/_matrix/client/v3/user_directory/search", json=body)


def test_r10_a_search_matching_only_hidden_users_answers_as_one_matching_nobody(
    synapse: SynapseServer, admin: MatrixClient, user: MatrixClient, unique: Unique
) -> None:
    """Neither ``limited`` nor the results tell a hidden user is there: for every limit
    (0, 1, 10) and every prefix of the hidden name (prefix extension), the response is
    the one for a term that matches nobody. With a consenting user matching too, the
    response is the one the consenting user alone would give."""
    word, nobody = "zq" + secrets.token_hex(5), "nq" + secrets.token_hex(5)
    hidden = [
        _user_id(synapse.register_user(unique("hid"), displayname=f"Zebulon {word}"))
        for _ in range(3)
    ]
    assert _wait_for(lambda: _indexed(synapse, *hidden)), "users never indexed"
    empty = {"limited": False, "results": []}
    for length in range(2, len(word) + 1):
        for limit in (0, 1, 10):
            assert _search(user, word[:length], limit) == empty, (word[:length], limit)
            assert _search(user, nobody[:length], limit) == empty

    listed = synapse.register_user(unique("vis"), displayname=f"Visible {word}")
    _consent(admin, _user_id(listed), True)
    assert _wait_for(lambda: user.directory_search(word) == [listed.user_id])
    only = _search(user, word, 1)
    assert only == {"limited": False, "results": [_result(only, listed.user_id)]}
    assert _search(user, word, 10) == only
    assert _search(user, word, 0) == {"limited": True, "results": []}


def _result(response: Any, user_id: str | None) -> Any:
    (result,) = [r for r in response["results"] if r["user_id"] == user_id]
    return result


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_r10_users_indexed_before_the_module_are_hidden_and_come_back_without_require_consent(
    start_synapse: StartSynapse, database: str
) -> None:
    """An existing server: Synapse indexed its users before the module was added. At its
    first start the module takes those without consent out of search; started again with
    ``require_consent: false`` it puts them back. Same data directory each time."""
    first = start_synapse(database, None)
    word = "zq" + secrets.token_hex(5)
    searcher = first.register_user(uid("searcher"))
    hidden = _user_id(first.register_user(uid("hid"), displayname=f"Zebulon {word}"))
    assert _wait_for(lambda: searcher.directory_search(word) == [hidden])
    first.stop()

    for module, expected in (({}, []), ({"directory": {"require_consent": False}}, [hidden])):
        server = SynapseServer(first.dir, first.database, first.pg_params, module)
        server.start()
        try:
            client = MatrixClient(server.base_url, searcher.access_token, searcher.user_id)
            assert _wait_for(lambda: client.directory_search(word) == expected)  # noqa: B023
            if not expected:
                assert _search(client, word, 0) == {"limited": False, "results": []}
        finally:
            server.stop()
