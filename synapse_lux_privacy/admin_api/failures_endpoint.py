"""GET /failures: the items whose deletion keeps failing (rule, item, first and last
failure, attempts, error class), the longest-failing first; never content."""

from collections.abc import Sequence
from typing import Any

from synapse.module_api import SynapseRequest

from synapse_lux_privacy.admin_api.params import invalid, query_int
from synapse_lux_privacy.store.failures import FailureStore
from synapse_lux_privacy.sweep.rule import RULE_NAMES

MAX_LIMIT = 1000


class FailuresEndpoint:
    def __init__(self, failures: FailureStore) -> None:
        self._failures = failures

    async def list(
        self, request: SynapseRequest, admin: str, params: Sequence[str]
    ) -> tuple[int, Any]:
        limit = query_int(request, "limit", 100, 1, MAX_LIMIT)
        rule = _query_text(request, "rule")
        if rule is not None and rule not in RULE_NAMES:
            raise invalid(f"rule must be one of {list(RULE_NAMES)}")
        found = await self._failures.list_failures(limit, rule)
        return 200, {"failures": [f.to_json() for f in found]}


def _query_text(request: SynapseRequest, name: str) -> str | None:
    values = request.args.get(name.encode("ascii")) if request.args else None
    return None if not values else values[0].decode("utf-8", errors="replace")
