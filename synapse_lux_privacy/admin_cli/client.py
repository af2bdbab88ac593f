"""A minimal client of the module's admin API (``/_synapse/client/lux_privacy/v1``).

Standard library only (``urllib``): the commands run wherever the operator is,
with an admin access token read from a file.
"""

import json
from typing import Any, BinaryIO
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

API_PREFIX = "/_synapse/client/lux_privacy/v1"

# One request, not a sweep: the API answers at once (a sweep runs in the background).
_TIMEOUT_S = 60.0


class AdminApiError(Exception):
    """An error answer (Matrix ``errcode``/``error``), or no answer at all (status 0)."""

    def __init__(self, status: int, errcode: str, error: str) -> None:
        super().__init__(f"{status} {errcode}: {error}")
        self.status = status
        self.errcode = errcode
        self.error = error

    def describe(self) -> str:
        if self.status == 0:
            return f"cannot reach the server: {self.error}"
        return f"the server answered {self.status} {self.errcode}: {self.error}"


def parse_url(value: str) -> str:
    """The server's base URL: ``http://`` or ``https://`` and a host."""
    scheme, _, rest = value.partition("://")
    if scheme not in ("http", "https") or not rest.strip("/"):
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    return value


def read_token(path: str) -> str:
    """The access token in a file (surrounding whitespace ignored); OSError if unreadable,
    ValueError if empty."""
    with open(path, encoding="utf-8") as file:
        token = file.read().strip()
    if not token:
        raise ValueError(f"{path} is empty: it should hold a server admin's access token")
    return token


class AdminClient:
    def __init__(self, base_url: str, token: str) -> None:
        self._base = base_url.rstrip("/") + API_PREFIX
        self._token = token

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """Send a request; the parsed JSON answer, or AdminApiError."""
        data = None if body is None else json.dumps(body).encode()
        request = Request(self._base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self._token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urlopen(request, timeout=_TIMEOUT_S) as response:
                text = response.read().decode("utf-8", "replace")
        except HTTPError as e:
            raise _matrix_error(e.code, e.read().decode("utf-8", "replace")) from None
        except (URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise AdminApiError(0, "", str(reason)) from None
        return json.loads(text) if text else None

    def download(self, path: str, out: BinaryIO, chunk: int = 1024 * 1024) -> int:
        """Stream a GET answer's body into ``out`` a chunk at a time; the bytes written."""
        request = Request(self._base + path, method="GET")
        request.add_header("Authorization", f"Bearer {self._token}")
        written = 0
        try:
            with urlopen(request, timeout=_TIMEOUT_S) as response:
                while data := response.read(chunk):
                    out.write(data)
                    written += len(data)
        except HTTPError as e:
            raise _matrix_error(e.code, e.read().decode("utf-8", "replace")) from None
        except (URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise AdminApiError(0, "", str(reason)) from None
        return written


def _matrix_error(status: int, text: str) -> AdminApiError:
    """The Matrix error in an error answer's body (or the body itself if it is not one)."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("errcode"), str):
        return AdminApiError(status, body["errcode"], str(body.get("error", "")))
    return AdminApiError(status, "M_UNKNOWN", " ".join(text.split())[:200] or "(no body)")
