"""Routing and authentication of the admin API: server admins only (401/403).

Input rules that hold for every route, present and future, are enforced here rather
than in handlers: each route declares the query parameters it reads, and any other
parameter, or one given twice, is a 400 ``M_INVALID_PARAM`` before the handler runs;
an error message never runs past ``MAX_ERROR_LENGTH`` characters, whatever a handler
echoes of the request.
"""

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import unquote

import attrs
from synapse.module_api import DirectServeJsonResource, ModuleApi, SynapseRequest
from synapse.module_api.errors import Codes, SynapseError

from synapse_lux_privacy import synapse_adapter
from synapse_lux_privacy.admin_api import ADMIN_API_PREFIX
from synapse_lux_privacy.admin_api.params import invalid, shown

# A handler gets the request, the admin's user ID and the decoded path parameters; it
# returns the status and JSON body, or None when it wrote the response itself (a file).
Handler = Callable[[SynapseRequest, str, Sequence[str]], Awaitable[tuple[int, Any] | None]]

# Query parameters Synapse's authentication reads: an access token on every route, and
# for an application service's token the user or device it acts as.
TOKEN_PARAM = "access_token"
APPSERVICE_PARAMS = frozenset({"user_id", "device_id"})
# The longest error message sent back; a longer one is cut (values echoed from the request).
MAX_ERROR_LENGTH = 500


@attrs.frozen
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    query: frozenset[str]


def route(method: str, path: str, handler: Handler, query: Sequence[str] = ()) -> Route:
    """``path`` uses ``{name}`` for one path segment, e.g. ``/holds/{hold_id}``; ``query``
    names the query parameters the handler reads (any other one is refused)."""
    segments = [
        "([^/]+)" if re.fullmatch(r"\{[a-z_]+\}", s) else re.escape(s) for s in path.split("/")
    ]
    return Route(method, re.compile("/".join(segments)), handler, frozenset(query))


class AdminApiResource(DirectServeJsonResource):
    """Serves every endpoint under ADMIN_API_PREFIX."""

    # Every path below the prefix comes here; routing is done by ``_async_render``.
    isLeaf = True

    def __init__(self, api: ModuleApi, routes: Sequence[Route]) -> None:
        super().__init__()
        self._api = api
        self._routes = routes

    async def _async_render(self, request: SynapseRequest) -> tuple[int, Any] | None:
        method = request.method.decode("ascii", errors="replace")
        path = request.path.decode("utf-8", errors="replace")
        if not path.startswith(ADMIN_API_PREFIX):
            raise SynapseError(404, "Unrecognized request", Codes.UNRECOGNIZED)
        subpath = path[len(ADMIN_API_PREFIX) :].rstrip("/") or "/"
        matched = [(r, m) for r in self._routes if (m := r.pattern.fullmatch(subpath))]
        if not matched:
            raise SynapseError(404, "Unrecognized request", Codes.UNRECOGNIZED)
        admin, appservice = await self._require_admin(request)
        for r, m in matched:
            if r.method == method:
                _check_query(request, r.query | (APPSERVICE_PARAMS if appservice else set()))
                try:
                    return await r.handler(request, admin, [_path_param(g) for g in m.groups()])
                except SynapseError as e:
                    if len(e.msg) > MAX_ERROR_LENGTH:
                        e.msg = e.msg[:MAX_ERROR_LENGTH] + "…"
                    raise
        raise SynapseError(405, f"{method} is not allowed on {shown(subpath)}", Codes.UNRECOGNIZED)

    async def _require_admin(self, request: SynapseRequest) -> tuple[str, bool]:
        """The admin's user ID, and whether the token is an application service's."""
        requester = await self._api.get_user_by_req(request)
        user_id = requester.user.to_string()
        if not await self._api.is_user_admin(user_id):
            raise SynapseError(403, "You are not a server admin", Codes.FORBIDDEN)
        return user_id, synapse_adapter.is_appservice_requester(requester)


def _check_query(request: SynapseRequest, allowed: frozenset[str]) -> None:
    """The docs' promise: a query parameter the route does not read, or one given twice,
    is a 400 (never silently ignored, never the first of two values taken)."""
    for raw_name, values in (request.args or {}).items():
        name = raw_name.decode("utf-8", errors="replace")
        if name not in allowed and name != TOKEN_PARAM:
            known = ", ".join(sorted(allowed)) or "none"
            raise invalid(f"unknown query parameter {shown(name)}; this endpoint takes: {known}")
        if len(values) > 1:
            raise invalid(f"query parameter {shown(name)} given {len(values)} times")


def _path_param(raw: str) -> str:
    """A path segment, URL-decoded; a NUL byte (which PostgreSQL refuses in text) is a 400."""
    value = unquote(raw)
    if "\x00" in value:
        raise SynapseError(400, "path parameters may not contain NUL", Codes.INVALID_PARAM)
    return value
