"""A minimal client of the module's admin API (``/_synapse/client/lux_privacy/v1``).

Standard library only (``urllib``): the commands run wherever the operator is,
with an admin access token read from a file. Every way a request can fail (no
connection, TLS, something that is not HTTP, a redirect, an error answer, an answer
that is not JSON) becomes one ``CliError`` sentence, with a hint where the usual
cause is known (``http://`` against TLS and back, a base URL that already holds the
API prefix). The connection and the TLS handshake must succeed within 10 seconds;
an answer may take 60.
"""

import http.client
import json
import socket
import ssl
from typing import Any, BinaryIO, NoReturn
from urllib.error import HTTPError, URLError
from urllib.parse import SplitResult, urlsplit, urlunsplit
from urllib.request import (
    HTTPHandler,
    HTTPRedirectHandler,
    HTTPSHandler,
    OpenerDirector,
    Request,
    build_opener,
)

from synapse_lux_privacy.admin_cli.errors import CliError, one_line

API_PREFIX = "/_synapse/client/lux_privacy/v1"

CONNECT_TIMEOUT_S = 10.0
# One request, not a sweep: the API answers at once (a sweep runs in the background).
ANSWER_TIMEOUT_S = 60.0
# The largest answer read: a report or a sweep record is a few KiB.
MAX_ANSWER_BYTES = 16 * 1024**2
MAX_TOKEN_FILE_BYTES = 4096

# Answers a reverse proxy gives while Synapse behind it is down or restarting.
_PROXY_WITHOUT_SERVER = (502, 503, 504)


class AdminApiError(CliError):
    """An error answer (Matrix ``errcode``/``error``), or no answer at all (status 0)."""

    def __init__(self, status: int, errcode: str, error: str, hint: str = "") -> None:
        self.status = status
        self.errcode = errcode
        self.error = error
        self.hint = hint
        super().__init__(self.describe())

    @property
    def no_server(self) -> bool:
        """No answer from Synapse: not reached, or a proxy says it is down."""
        return self.status == 0 or self.status in _PROXY_WITHOUT_SERVER

    def describe(self) -> str:
        if self.status == 0:
            text = f"cannot reach the server: {self.error}"
        else:
            text = f"the server answered {self.status} {self.errcode}: {self.error}"
        return f"{text} ({self.hint})" if self.hint else text


class BadAnswer(CliError):
    """A success answer that is not what the admin API sends (HTML from a proxy, a JSON
    value of the wrong type)."""


def parse_url(value: str) -> str:
    """The server's base URL: ``http://`` or ``https://``, a host, an optional port and
    path; no query, fragment or credentials, and not the admin API's own prefix."""
    if not value.isprintable() or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} holds spaces or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port
        if parts.hostname:
            parts.hostname.encode("idna")
    except ValueError as e:  # a broken IPv6 literal, a port that is not a number
        raise ValueError(f"{value!r} is not a valid URL: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http:// or https:// URL")
    if port == 0:
        raise ValueError(f"{value!r} has port 0")
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ValueError(f"{value!r}: the base URL takes no query (?...) or fragment (#...)")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{value!r}: no user@ in the URL; the token file authenticates")
    path = parts.path.rstrip("/")
    for prefix in ("/_synapse/", "/_matrix/"):
        if prefix in path + "/":
            base = urlunsplit((parts.scheme, parts.netloc, path[: path.index(prefix)], "", ""))
            raise ValueError(
                f"{value!r} holds an API path: give the server's base URL, e.g. --url {base}"
            )
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def read_token(path: str) -> str:
    """The access token in a file (surrounding whitespace ignored); CliError if the file
    cannot be read or holds anything but one token."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_TOKEN_FILE_BYTES + 1)
    except OSError as e:
        raise CliError(f"cannot read {path}: {e.strerror or e}") from None
    what = "it should hold a server admin's access token"
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise CliError(f"{path} is larger than {MAX_TOKEN_FILE_BYTES} bytes: {what}")
    token = data.decode("ascii", "replace").strip()
    if not token:
        raise CliError(f"{path} is empty: {what}")
    if not token.isprintable() or not token.isascii() or any(c.isspace() for c in token):
        raise CliError(f"{path} holds several lines, spaces or other characters: {what}, only")
    return token


def _connect_within(connection: http.client.HTTPConnection, connect: Any) -> None:
    """Connect (TCP, then TLS for https) within CONNECT_TIMEOUT_S; then each read may
    take the request's own timeout. A TLS handshake that times out is told apart from a
    host that does not answer: it is usually ``https://`` against a plain HTTP port."""
    answer_timeout = connection.timeout
    connection.timeout = CONNECT_TIMEOUT_S
    try:
        connect()
    except TimeoutError as e:
        if connection.sock is not None:
            raise _HandshakeTimeout from e
        raise
    finally:
        connection.timeout = answer_timeout
    assert connection.sock is not None
    connection.sock.settimeout(answer_timeout)


class _HandshakeTimeout(TimeoutError):
    """Connected, but the TLS handshake got no answer."""


class _HTTPConnection(http.client.HTTPConnection):
    def connect(self) -> None:
        _connect_within(self, super().connect)


class _HTTPSConnection(http.client.HTTPSConnection):
    def connect(self) -> None:
        _connect_within(self, super().connect)


class _HTTP(HTTPHandler):
    def http_open(self, req: Request) -> http.client.HTTPResponse:
        return self.do_open(_HTTPConnection, req)


class _HTTPS(HTTPSHandler):
    def __init__(self) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(context=self._tls)

    def https_open(self, req: Request) -> http.client.HTTPResponse:
        return self.do_open(_HTTPSConnection, req, context=self._tls)


class _NoRedirect(HTTPRedirectHandler):
    """A redirect is reported, not followed: it would carry the token elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _opener() -> OpenerDirector:
    return build_opener(_HTTP, _HTTPS, _NoRedirect)


class AdminClient:
    def __init__(self, base_url: str, token: str) -> None:
        """``base_url`` as the operator gave it (``--url``): CliError if it is not one."""
        try:
            self._base_url = parse_url(base_url)
        except ValueError as e:
            raise CliError(f"--url {e}") from None
        self._base = self._base_url + API_PREFIX
        self._token = token
        self._opener = _opener()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """Send a request; the parsed JSON answer (None if empty), or CliError."""
        data = None if body is None else json.dumps(body).encode()
        request = Request(self._base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self._token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(request, timeout=ANSWER_TIMEOUT_S) as response:
                raw = response.read(MAX_ANSWER_BYTES + 1)
                kind = response.headers.get_content_type()
        except HTTPError as e:
            raise self._error_answer(e, method, path) from None
        except (URLError, OSError, http.client.HTTPException, ValueError) as e:
            self._unreachable(e, method, path)
        if len(raw) > MAX_ANSWER_BYTES:
            raise BadAnswer(
                f"the answer to {method} {path} is larger than {MAX_ANSWER_BYTES} bytes"
            )
        return parse_answer(raw, f"{method} {path}", kind)

    def download(self, path: str, out: BinaryIO, chunk: int = 1024 * 1024) -> int:
        """Stream a GET answer's body into ``out`` a chunk at a time; the bytes written.
        Failures are the same ``CliError`` sentences as :meth:`call`'s."""
        request = Request(self._base + path, method="GET")
        request.add_header("Authorization", f"Bearer {self._token}")
        written = 0
        try:
            with self._opener.open(request, timeout=ANSWER_TIMEOUT_S) as response:
                while data := response.read(chunk):
                    out.write(data)
                    written += len(data)
        except HTTPError as e:
            raise self._error_answer(e, "GET", path) from None
        except (URLError, OSError, http.client.HTTPException, ValueError) as e:
            self._unreachable(e, "GET", path)
        return written

    def _error_answer(self, e: HTTPError, method: str, path: str) -> AdminApiError:
        try:
            text = e.read(64 * 1024).decode("utf-8", "replace")
        except (OSError, http.client.HTTPException):
            text = ""
        if 300 <= e.code < 400:
            location = str(e.headers.get("Location") or "")
            suffix = API_PREFIX + path
            hint = (
                f"use --url {location[: -len(suffix)]}"
                if location.endswith(suffix)
                else "give --url the address the server answers at without a redirect"
            )
            return AdminApiError(e.code, "redirect", f"to {location or '(nowhere)'}", hint)
        error = _matrix_error(e.code, text)
        if e.code == 404 and error.errcode in ("M_UNRECOGNIZED", "M_UNKNOWN"):
            hint = (
                f"{self._base_url} does not serve {API_PREFIX}: is the synapse_lux_privacy"
                " module loaded, and --url the server's base URL?"
            )
            return AdminApiError(e.code, error.errcode, error.error, hint)
        return error

    def _unreachable(self, e: BaseException, method: str, path: str) -> NoReturn:
        """No usable answer: one sentence for each way, with the usual cause."""
        parts = urlsplit(self._base_url)
        where = parts.netloc
        connecting = isinstance(e, URLError)  # urllib wraps what fails before the answer
        reason = e.reason if isinstance(e, URLError) else e
        if isinstance(reason, ssl.SSLCertVerificationError):
            text = f"the TLS certificate of {where} is not trusted ({reason.verify_message})"
        elif connecting and parts.scheme == "https" and _tls_failure(reason):
            detail = (
                f"no answer within {CONNECT_TIMEOUT_S:g} s"
                if isinstance(reason, TimeoutError)
                else getattr(reason, "reason", None) or str(reason) or type(reason).__name__
            )
            text = f"the TLS handshake with {where} failed ({detail}). {_other_scheme(parts)}"
        elif isinstance(reason, ConnectionRefusedError):
            text = f"{where} refused the connection: is Synapse running and listening there?"
        elif isinstance(reason, socket.gaierror):
            text = f"cannot find the host {parts.hostname}: {reason.strerror or reason}"
        elif isinstance(reason, TimeoutError) and connecting:
            text = (
                f"no connection to {where} within {CONNECT_TIMEOUT_S:g} s: is the address"
                " right, and no firewall in the way?"
            )
        elif isinstance(reason, TimeoutError):
            text = f"{where} did not answer {method} {path} within {ANSWER_TIMEOUT_S:g} s"
        elif isinstance(reason, http.client.HTTPException | ConnectionError | ssl.SSLError):
            detail = str(reason) or type(reason).__name__
            text = (
                f"{where} does not answer HTTP ({detail}): is it Synapse's HTTP listener or"
                f" its proxy? {_other_scheme(parts)}"
            )
        else:
            text = f"{where}: {getattr(reason, 'strerror', None) or reason}"
        raise AdminApiError(0, "", one_line(text)) from None


def _tls_failure(reason: object) -> bool:
    """What a TLS handshake with something that does not speak TLS ends in."""
    return isinstance(reason, ssl.SSLError | _HandshakeTimeout | ConnectionResetError)


def _other_scheme(parts: SplitResult) -> str:
    """The hint for the usual mix-up: ``https://`` against plain HTTP, or the reverse."""
    if parts.scheme == "https":
        return f"If it speaks plain HTTP, use --url {urlunsplit(('http', *parts[1:]))}"
    return f"If it expects TLS, use --url {urlunsplit(('https', *parts[1:]))}"


def parse_answer(raw: bytes, what: str, kind: str = "application/json") -> Any:
    """A success answer's JSON (None if empty); BadAnswer if it is not JSON, or holds
    ``NaN``/``Infinity`` (not JSON, though Python reads them)."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_not_json)
    except (ValueError, RecursionError):
        snippet = one_line(raw[:120].decode("utf-8", "replace"))
        raise BadAnswer(
            f"the answer to {what} is not JSON ({kind}: {snippet}): is --url the Synapse"
            " server itself, or a proxy that passes the admin API through?"
        ) from None


def _not_json(constant: str) -> NoReturn:
    raise ValueError(f"{constant} is not JSON")


def _matrix_error(status: int, text: str) -> AdminApiError:
    """The Matrix error in an error answer's body (or the body itself if it is not one)."""
    try:
        body = json.loads(text, parse_constant=_not_json)
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("errcode"), str):
        return AdminApiError(status, body["errcode"], one_line(str(body.get("error", ""))))
    return AdminApiError(status, "M_UNKNOWN", one_line(text)[:200] or "(no body)")
