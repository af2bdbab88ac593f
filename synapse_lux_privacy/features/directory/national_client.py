"""HTTP client of the national directory service (R10), per docs/national-directory-api.md.

PUT ``{url}/users/{user_id}`` adds or replaces an entry, DELETE removes it; both are
idempotent and carry the time of the change (``changed_ts``), so that a late duplicate
of an older request cannot undo a newer one. Requests go through Synapse's own HTTP
client (``ModuleApi.http_client``) with the bearer token read from ``token_path``.
"""

import contextlib
import enum
import json
import logging
from urllib.parse import quote

import attrs
from synapse.module_api import SimpleHttpClient, make_deferred_yieldable
from twisted.web.client import readBody
from twisted.web.http_headers import Headers

from synapse_lux_privacy.config import NationalDirectoryConfig
from synapse_lux_privacy.features.directory.outbox_store import OutboxEntry
from synapse_lux_privacy.features.directory.policy import Action

logger = logging.getLogger(__name__)

# A PUT the service refuses with one of these will never succeed as it is: it is dropped
# (and logged) so that the user's later changes, above all a removal, are not blocked.
_REFUSED_FOR_GOOD = frozenset({400, 413, 422})


class Outcome(enum.Enum):
    DELIVERED = "delivered"  # the service applied it (or had nothing to remove)
    REJECTED = "rejected"  # the service refused it for good; it is not retried
    RETRY = "retry"  # not applied: try again later


@attrs.frozen
class DeliveryResult:
    outcome: Outcome
    detail: str


def classify(action: Action, status: int) -> Outcome:
    """What an HTTP status means for a change (see the API contract)."""
    if 200 <= status < 300 or (action == "delete" and status == 404):
        return Outcome.DELIVERED
    if action == "put" and status in _REFUSED_FOR_GOOD:
        return Outcome.REJECTED
    return Outcome.RETRY


class NationalDirectoryClient:
    """Sends outbox changes to the national directory service."""

    def __init__(self, http: SimpleHttpClient, config: NationalDirectoryConfig) -> None:
        self._http = http
        self._base_url = config.url.rstrip("/")
        self._token_path = config.token_path
        self._token: str | None = None

    def load_token(self) -> str | None:
        """Read the token file; log a clear error (never the token) when it cannot be used."""
        try:
            with open(self._token_path, encoding="utf-8") as f:
                token = f.read().strip()
        except (OSError, UnicodeDecodeError) as e:
            logger.error(
                "lux_privacy: cannot read the national directory token from %s"
                " (directory.national.token_path): %s; directory changes stay queued"
                " until it can be read",
                self._token_path,
                e,
            )
            return None
        if not token:
            logger.error(
                "lux_privacy: the national directory token file %s"
                " (directory.national.token_path) is empty; directory changes stay queued",
                self._token_path,
            )
            return None
        self._token = token
        return token

    async def send(self, entry: OutboxEntry) -> DeliveryResult:
        """Deliver one change; never raises."""
        token = self._token or self.load_token()
        if token is None:
            return DeliveryResult(Outcome.RETRY, f"token unreadable: {self._token_path}")
        url = f"{self._base_url}/users/{quote(entry.user_id, safe='')}"
        headers = Headers({"Authorization": [f"Bearer {token}"], "Accept": ["application/json"]})
        data = None
        if entry.action == "put":
            headers.addRawHeader("Content-Type", "application/json")
            body = {
                "user_id": entry.user_id,
                "display_name": entry.display_name,
                "changed_ts": entry.created_ts,
            }
            data = json.dumps(body).encode("utf-8")
        else:
            url += f"?changed_ts={entry.created_ts}"
        method = "PUT" if entry.action == "put" else "DELETE"
        try:
            response = await self._http.request(method, url, data=data, headers=headers)
        except Exception as e:
            return DeliveryResult(Outcome.RETRY, f"{type(e).__name__}: {e}")
        # The status is what counts; the body is only drained, to free the connection.
        with contextlib.suppress(Exception):
            await make_deferred_yieldable(readBody(response))
        if response.code == 401:
            self._token = None  # read the file again next time: the token may have rotated
        return DeliveryResult(classify(entry.action, response.code), f"HTTP {response.code}")
