"""R10 national directory client: the requests it makes and how it reads its token.

The HTTP client is a fake standing in for Synapse's ``SimpleHttpClient``; the token is a
real file. Time: changes carry a fixed ``created_ts``; nothing reads a clock.
"""

import json
import logging
from pathlib import Path
from typing import Any, cast

import pytest
import pytest_twisted
from synapse.module_api import SimpleHttpClient
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http_headers import Headers

from synapse_lux_privacy.config import NationalDirectoryConfig
from synapse_lux_privacy.features.directory.national_client import (
    DeliveryResult,
    NationalDirectoryClient,
    Outcome,
)
from synapse_lux_privacy.features.directory.outbox_store import OutboxEntry

NOW = 1_800_000_000_000
BASE = "https://directory.example.lu/api/v1"
PUT = OutboxEntry(7, "@alice:lux.test", "put", "Alice", NOW, 0, NOW, None)
DELETE = OutboxEntry(8, "@alice:lux.test", "delete", None, NOW + 1, 0, NOW + 1, None)


class FakeResponse:
    def __init__(self, code: int) -> None:
        self.code = code
        self.phrase = b"whatever"

    def deliverBody(self, protocol: Any) -> None:
        protocol.dataReceived(b"{}")
        protocol.connectionLost(Failure(ResponseDone()))


class FakeHttp:
    """Answers each request with the next status (or raises the next exception)."""

    def __init__(self, *answers: int | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[str, str, bytes | None, Headers]] = []

    async def request(
        self, method: str, uri: str, data: bytes | None = None, headers: Headers | None = None
    ) -> FakeResponse:
        assert headers is not None
        self.requests.append((method, uri, data, headers))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return FakeResponse(answer)


def _client(http: FakeHttp, token_path: Path, url: str = BASE) -> NationalDirectoryClient:
    config = NationalDirectoryConfig(url, str(token_path), 86_400_000)
    return NationalDirectoryClient(cast(SimpleHttpClient, http), config)


def _header(headers: Headers, name: str) -> list[str]:
    return list(headers.getRawHeaders(name) or [])


@pytest.fixture
def token_path(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("s3cret-token\n")
    return path


@pytest_twisted.ensureDeferred
async def test_r10_put_and_delete_follow_the_contract(token_path: Path) -> None:
    http = FakeHttp(200, 204)
    client = _client(http, token_path, url=BASE + "/")
    assert (await client.send(PUT)).outcome is Outcome.DELIVERED
    assert (await client.send(DELETE)).outcome is Outcome.DELIVERED
    (m1, u1, d1, h1), (m2, u2, d2, h2) = http.requests
    assert (m1, u1) == ("PUT", BASE + "/users/%40alice%3Alux.test")
    assert json.loads(d1 or b"") == {
        "user_id": "@alice:lux.test",
        "display_name": "Alice",
        "changed_ts": NOW,
    }
    assert _header(h1, "Content-Type") == ["application/json"]
    assert (m2, u2, d2) == (
        "DELETE",
        f"{BASE}/users/%40alice%3Alux.test?changed_ts={NOW + 1}",
        None,
    )
    for headers in (h1, h2):
        assert _header(headers, "Authorization") == ["Bearer s3cret-token"]


@pytest_twisted.ensureDeferred
async def test_r10_transport_errors_and_server_errors_are_retried(token_path: Path) -> None:
    client = _client(FakeHttp(ConnectionRefusedError("refused"), 503), token_path)
    result = await client.send(DELETE)
    assert result.outcome is Outcome.RETRY and "ConnectionRefusedError" in result.detail
    assert await client.send(DELETE) == DeliveryResult(Outcome.RETRY, "HTTP 503")


@pytest_twisted.ensureDeferred
async def test_r10_a_rejected_token_is_read_again_from_the_file(token_path: Path) -> None:
    http = FakeHttp(401, 204)
    client = _client(http, token_path)
    assert (await client.send(DELETE)).outcome is Outcome.RETRY
    token_path.write_text("rotated-token")
    assert (await client.send(DELETE)).outcome is Outcome.DELIVERED
    assert _header(http.requests[-1][3], "Authorization") == ["Bearer rotated-token"]


@pytest_twisted.ensureDeferred
async def test_r10_an_unreadable_token_is_a_clear_error_and_changes_wait(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "absent"
    http = FakeHttp(204)
    client = _client(http, missing)
    with caplog.at_level(logging.ERROR):
        assert client.load_token() is None
        result = await client.send(DELETE)
    assert "cannot read the national directory token from" in caplog.text
    assert "directory.national.token_path" in caplog.text
    assert (result.outcome, http.requests) == (Outcome.RETRY, [])
    missing.write_text("late-token")
    assert (await client.send(DELETE)).outcome is Outcome.DELIVERED


def test_r10_an_empty_token_file_is_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    empty = tmp_path / "empty"
    empty.write_text("  \n")
    with caplog.at_level(logging.ERROR):
        assert _client(FakeHttp(), empty).load_token() is None
    assert "is empty" in caplog.text
    assert "s3cret" not in caplog.text
