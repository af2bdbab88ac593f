"""Which ``is_user_expired`` calls are the user's own activity (R12), read from Synapse's
logging context: a request the user is authenticating counts; the pusher pool (a
background process) and a request by someone else do not.

Time: not involved.
"""

from synapse.logging.context import ContextRequest, LoggingContext

from synapse_lux_privacy.synapse_adapter.accounts import is_own_request


def _request(requester: str | None) -> ContextRequest:
    return ContextRequest(
        request_id="GET-1",
        ip_address="127.0.0.1",
        site_tag="client",
        requester=requester,
        authenticated_entity=requester,
        method="GET",
        url="/_matrix/client/v3/account/whoami",
        protocol="1.1",
        user_agent="Lux/1.0",
    )


def test_r12_a_request_being_authenticated_is_the_users_activity() -> None:
    # Synapse's auth calls is_user_expired before it attaches the requester.
    with LoggingContext(name="GET-1", server_name="lux.test", request=_request(None)):
        assert is_own_request("@alice:lux.test")
    with LoggingContext(name="GET-2", server_name="lux.test", request=_request("@a:lux.test")):
        assert is_own_request("@a:lux.test")


def test_r12_background_processes_and_other_users_requests_are_not() -> None:
    assert not is_own_request("@alice:lux.test")  # no logging context at all
    with LoggingContext(name="on_new_notifications-1", server_name="lux.test"):
        assert not is_own_request("@alice:lux.test")  # the pusher pool
    with LoggingContext(name="GET-3", server_name="lux.test", request=_request("@bob:lux.test")):
        assert not is_own_request("@alice:lux.test")  # account status of another user
