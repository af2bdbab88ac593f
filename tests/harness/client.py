"""A small Matrix client-server API client for integration tests (over ``requests``).

Methods return parsed JSON and raise :class:`MatrixError` on a non-2xx answer, except
the "raw" ones (:meth:`MatrixClient.request`, :meth:`MatrixClient.download_media`,
:meth:`MatrixClient.thumbnail`, :meth:`MatrixClient.lux`) which never raise on status.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import requests

DEFAULT_TIMEOUT = 30.0
LUX_PREFIX = "/_synapse/client/lux_privacy/v1"
_txn_counter = itertools.count(1)


def q(value: str) -> str:
    """Percent-encode one path segment (room IDs, event IDs, user IDs...)."""
    return quote(value, safe="")


def parse_mxc(mxc: str) -> tuple[str, str]:
    """Split ``mxc://server/media_id`` into ``(server, media_id)``."""
    if not mxc.startswith("mxc://"):
        raise ValueError(f"not an mxc URI: {mxc!r}")
    server, _, media_id = mxc[len("mxc://") :].partition("/")
    return server, media_id


class MatrixError(Exception):
    """A non-2xx answer from the homeserver."""

    def __init__(self, status: int, errcode: str | None, error: str | None) -> None:
        super().__init__(f"{status} {errcode}: {error}")
        self.status = status
        self.errcode = errcode
        self.error = error


class MatrixClient:
    """One user's session (or an anonymous client when ``access_token`` is None)."""

    def __init__(
        self,
        base_url: str,
        access_token: str | None = None,
        user_id: str | None = None,
        device_id: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.access_token = access_token
        self.user_id = user_id
        self.device_id = device_id
        self.timeout = timeout
        self.password: str | None = None  # set by SynapseServer.register_user / login
        self.session = requests.Session()

    def __repr__(self) -> str:
        return f"MatrixClient({self.user_id!r}, device={self.device_id!r})"

    # -- plumbing --------------------------------------------------------------------

    @staticmethod
    def txn_id() -> str:
        """A transaction ID unique within (and across) test runs."""
        return f"lux{time.time_ns()}.{next(_txn_counter)}.{secrets.token_hex(3)}"

    def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        params: dict[str, Any] | None = None,
        expect: int | Iterable[int] | None = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> requests.Response:
        """Send a raw request to ``base_url + path`` with this client's token.

        ``expect``: a status (or statuses); any other status raises :class:`MatrixError`.
        """
        all_headers = dict(headers or {})
        if self.access_token is not None:
            all_headers["Authorization"] = f"Bearer {self.access_token}"
        resp = self.session.request(
            method,
            self.base_url + path,
            json=json,
            params=params,
            data=data,
            headers=all_headers,
            timeout=timeout if timeout is not None else self.timeout,
        )
        if expect is not None:
            allowed = {expect} if isinstance(expect, int) else set(expect)
            if resp.status_code not in allowed:
                raise _error(resp)
        return resp

    def call(
        self,
        method: str,
        path: str,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send a request; return the parsed JSON body or raise :class:`MatrixError`."""
        resp = self.request(method, path, json=json, params=params, timeout=timeout)
        if not 200 <= resp.status_code < 300:
            raise _error(resp)
        return resp.json() if resp.content else {}

    def _c(self, method: str, path: str, json: Any = None, **kw: Any) -> Any:
        return self.call(method, "/_matrix/client/v3" + path, json=json, **kw)

    # -- account ---------------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        """``GET /account/whoami``."""
        result: dict[str, Any] = self._c("GET", "/account/whoami")
        return result

    def logout(self) -> None:
        """Log this session out (invalidates the access token)."""
        self._c("POST", "/logout", {})

    def deactivate(self, password: str, erase: bool = True) -> dict[str, Any]:
        """Deactivate the account (UI auth with ``m.login.password``)."""
        body: dict[str, Any] = {"erase": erase}
        resp = self.request("POST", "/_matrix/client/v3/account/deactivate", json=body)
        if resp.status_code == 401 and "session" in resp.json():
            body["auth"] = {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": self.user_id},
                "password": password,
                "session": resp.json()["session"],
            }
            resp = self.request("POST", "/_matrix/client/v3/account/deactivate", json=body)
        if not 200 <= resp.status_code < 300:
            raise _error(resp)
        result: dict[str, Any] = resp.json()
        return result

    def devices(self) -> list[dict[str, Any]]:
        """The user's devices (``GET /devices`` -> ``devices`` list)."""
        devices: list[dict[str, Any]] = self._c("GET", "/devices")["devices"]
        return devices

    # -- rooms -----------------------------------------------------------------------

    def create_room(
        self,
        name: str | None = None,
        topic: str | None = None,
        encrypted: bool = False,
        invite: Iterable[str] = (),
        preset: str = "private_chat",
        is_direct: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """Create a room and return its ID (``encrypted`` adds m.room.encryption)."""
        body: dict[str, Any] = {"preset": preset, "invite": list(invite), "is_direct": is_direct}
        if name is not None:
            body["name"] = name
        if topic is not None:
            body["topic"] = topic
        if encrypted:
            body["initial_state"] = [
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            ]
        body.update(extra or {})
        room_id: str = self._c("POST", "/createRoom", body)["room_id"]
        return room_id

    def join(self, room_id_or_alias: str) -> str:
        """Join a room; return its ID."""
        room_id: str = self._c("POST", f"/join/{q(room_id_or_alias)}", {})["room_id"]
        return room_id

    def leave(self, room_id: str) -> None:
        """Leave a room."""
        self._c("POST", f"/rooms/{q(room_id)}/leave", {})

    def invite(self, room_id: str, user_id: str) -> None:
        """Invite ``user_id`` to a room."""
        self._c("POST", f"/rooms/{q(room_id)}/invite", {"user_id": user_id})

    # -- events ----------------------------------------------------------------------

    def send_event(self, room_id: str, event_type: str, content: dict[str, Any]) -> str:
        """Send a message-like event; return its event ID."""
        path = f"/rooms/{q(room_id)}/send/{q(event_type)}/{q(self.txn_id())}"
        event_id: str = self._c("PUT", path, content)["event_id"]
        return event_id

    def send_message(
        self,
        room_id: str,
        body: str,
        msgtype: str = "m.text",
        extra: dict[str, Any] | None = None,
    ) -> str:
        """Send an ``m.room.message``; return its event ID."""
        content: dict[str, Any] = {"msgtype": msgtype, "body": body, **(extra or {})}
        return self.send_event(room_id, "m.room.message", content)

    def send_encrypted(self, room_id: str, ciphertext: str = "AwgAEnAcmFuZG9t") -> str:
        """Send a (fake) megolm ``m.room.encrypted`` event; return its event ID."""
        content = {
            "algorithm": "m.megolm.v1.aes-sha2",
            "sender_key": "c2VuZGVyX2tleV9mb3JfdGVzdHM",
            "ciphertext": ciphertext,
            "session_id": "c2Vzc2lvbl9pZF9mb3JfdGVzdHM",
            "device_id": self.device_id or "TESTDEVICE",
        }
        return self.send_event(room_id, "m.room.encrypted", content)

    def send_state(
        self, room_id: str, event_type: str, content: dict[str, Any], state_key: str = ""
    ) -> str:
        """Send a state event; return its event ID."""
        path = f"/rooms/{q(room_id)}/state/{q(event_type)}/{q(state_key)}"
        event_id: str = self._c("PUT", path, content)["event_id"]
        return event_id

    def redact(self, room_id: str, event_id: str, reason: str | None = None) -> str:
        """Redact an event; return the redaction's event ID."""
        body = {"reason": reason} if reason is not None else {}
        path = f"/rooms/{q(room_id)}/redact/{q(event_id)}/{q(self.txn_id())}"
        redaction_id: str = self._c("PUT", path, body)["event_id"]
        return redaction_id

    def get_event(self, room_id: str, event_id: str) -> dict[str, Any]:
        """``GET /rooms/{room}/event/{event}``."""
        event: dict[str, Any] = self._c("GET", f"/rooms/{q(room_id)}/event/{q(event_id)}")
        return event

    def context(self, room_id: str, event_id: str, limit: int = 10) -> dict[str, Any]:
        """``GET /rooms/{room}/context/{event}``."""
        path = f"/rooms/{q(room_id)}/context/{q(event_id)}"
        result: dict[str, Any] = self._c("GET", path, params={"limit": limit})
        return result

    def messages(
        self, room_id: str, direction: str = "b", limit: int = 100
    ) -> list[dict[str, Any]]:
        """``GET /rooms/{room}/messages`` -> the ``chunk`` list (newest first for "b")."""
        params = {"dir": direction, "limit": limit}
        chunk: list[dict[str, Any]] = self._c(
            "GET", f"/rooms/{q(room_id)}/messages", params=params
        )["chunk"]
        return chunk

    def sync(self, since: str | None = None, timeout: int = 0) -> dict[str, Any]:
        """``GET /sync`` (no long-polling by default)."""
        params: dict[str, Any] = {"timeout": timeout}
        if since is not None:
            params["since"] = since
        result: dict[str, Any] = self._c(
            "GET", "/sync", params=params, timeout=self.timeout + timeout / 1000
        )
        return result

    def search(self, term: str) -> list[dict[str, Any]]:
        """Server-side message search; return the matching events (newest first)."""
        body = {"search_categories": {"room_events": {"search_term": term}}}
        results = self._c("POST", "/search", body)["search_categories"]["room_events"]
        return [r["result"] for r in results.get("results", [])]

    # -- media -----------------------------------------------------------------------

    def upload_media(
        self,
        data: bytes,
        content_type: str = "application/octet-stream",
        filename: str | None = None,
    ) -> str:
        """Upload bytes; return the ``mxc://`` URI."""
        params = {"filename": filename} if filename is not None else None
        resp = self.request(
            "POST",
            "/_matrix/media/v3/upload",
            params=params,
            data=data,
            headers={"Content-Type": content_type},
        )
        if resp.status_code != 200:
            raise _error(resp)
        uri: str = resp.json()["content_uri"]
        return uri

    def download_media(self, mxc: str) -> requests.Response:
        """Authenticated download (raw response; check ``status_code``)."""
        server, media_id = parse_mxc(mxc)
        return self.request("GET", f"/_matrix/client/v1/media/download/{q(server)}/{q(media_id)}")

    def thumbnail(self, mxc: str, w: int, h: int, method: str = "scale") -> requests.Response:
        """Authenticated thumbnail (raw response)."""
        server, media_id = parse_mxc(mxc)
        return self.request(
            "GET",
            f"/_matrix/client/v1/media/thumbnail/{q(server)}/{q(media_id)}",
            params={"width": w, "height": h, "method": method},
        )

    # -- profile and directory -------------------------------------------------------

    def set_displayname(self, name: str) -> None:
        """Set this user's display name."""
        assert self.user_id is not None
        self._c("PUT", f"/profile/{q(self.user_id)}/displayname", {"displayname": name})

    def set_avatar_url(self, mxc: str) -> None:
        """Set this user's avatar."""
        assert self.user_id is not None
        self._c("PUT", f"/profile/{q(self.user_id)}/avatar_url", {"avatar_url": mxc})

    def get_profile(self, user_id: str) -> dict[str, Any]:
        """``GET /profile/{user}``."""
        profile: dict[str, Any] = self._c("GET", f"/profile/{q(user_id)}")
        return profile

    def directory_search(self, term: str, limit: int = 50) -> list[str]:
        """User directory search; return the matching user IDs."""
        body = {"search_term": term, "limit": limit}
        results = self._c("POST", "/user_directory/search", body)["results"]
        return [r["user_id"] for r in results]

    # -- admin APIs ------------------------------------------------------------------

    def lux(
        self,
        method: str,
        path: str,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> tuple[int, Any]:
        """Call the module's admin API (``/_synapse/client/lux_privacy/v1`` + path).

        Returns ``(status, parsed JSON)`` and never raises on status; a body that is
        not JSON comes back as ``{"raw": text}``.
        """
        resp = self.request(method, LUX_PREFIX + path, json=json, params=params)
        return resp.status_code, _json_or_raw(resp)

    def synapse_admin(self, method: str, path: str, json: Any = None) -> Any:
        """Call Synapse's admin API; ``path`` is relative to ``/_synapse/admin``.

        E.g. ``synapse_admin("GET", "/v2/users/@a:lux.test")``. Raises on non-2xx.
        """
        if not path.startswith("/_synapse/admin"):
            path = "/_synapse/admin" + path
        return self.call(method, path, json=json)


def _json_or_raw(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return {"raw": resp.text}


def _error(resp: requests.Response) -> MatrixError:
    body = _json_or_raw(resp)
    if isinstance(body, dict):
        return MatrixError(
            resp.status_code, body.get("errcode"), body.get("error", body.get("raw"))
        )
    return MatrixError(resp.status_code, None, str(body))
