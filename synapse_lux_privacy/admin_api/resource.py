"""Routing and authentication of the admin API: server admins only (401/403)."""

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import unquote

import attrs
from synapse.module_api import DirectServeJsonResource, ModuleApi, SynapseRequest
from synapse.module_api.errors import Codes, SynapseError

from synapse_lux_privacy.admin_api import ADMIN_API_PREFIX

# A handler gets the request, the admin's user ID and the decoded path parameters; it
# returns the status and JSON body, or None when it wrote the response itself (a file).
Handler = Callable[[SynapseRequest, str, Sequence[str]], Awaitable[tuple[int, Any] | None]]


@attrs.frozen
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


def route(method: str, path: str, handler: Handler) -> Route:
    """``path`` uses ``{name}`` for one path segment, e.g. ``/holds/{hold_id}``."""
    segments = [
        "([^/]+)" if re.fullmatch(r"\{[a-z_]+\}", s) else re.escape(s) for s in path.split("/")
    ]
    return Route(method, re.compile("/".join(segments)), handler)


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
        admin = await self._require_admin(request)
        for r, m in matched:
            if r.method == method:
                return await r.handler(request, admin, [_path_param(g) for g in m.groups()])
        raise SynapseError(405, f"{method} is not allowed on {subpath}", Codes.UNRECOGNIZED)

    async def _require_admin(self, request: SynapseRequest) -> str:
        requester = await self._api.get_user_by_req(request)
        user_id = requester.user.to_string()
        if not await self._api.is_user_admin(user_id):
            raise SynapseError(403, "You are not a server admin", Codes.FORBIDDEN)
        return user_id


def _path_param(raw: str) -> str:
    """A path segment, URL-decoded; a NUL byte (which PostgreSQL refuses in text) is a 400."""
    value = unquote(raw)
    if "\x00" in value:
        raise SynapseError(400, "path parameters may not contain NUL", Codes.INVALID_PARAM)
    return value
