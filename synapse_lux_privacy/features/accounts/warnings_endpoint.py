"""Admin API of the e-mail warnings before an R12 deletion.

- ``GET /notifications/account_deletion``: dry run, nothing is sent or recorded:
  ``{"enabled": bool, "dry_run": true, "warnings": {"30d": n, "7d": m}, "total": n + m,
  "failed": 0}``, the warnings a pass would send now, per lead time (whole days as
  ``Nd``);
- ``POST /notifications/account_deletion`` (empty body): run a pass now, as the
  background pass does at every ``sweep_interval``; same shape with ``"dry_run": false``,
  the warnings sent and the accounts none of whose addresses could be reached (with the
  module's ``dry_run``, a dry run too: ``"dry_run": true``).

``enabled`` is false (and every count 0) when ``notify.account_deletion`` is empty or
Synapse's ``email:`` settings have no ``notif_from``.
"""

from collections import Counter
from collections.abc import Sequence
from typing import Any

from synapse.module_api import SynapseRequest

from synapse_lux_privacy.admin_api import params
from synapse_lux_privacy.admin_api.resource import Route, route
from synapse_lux_privacy.features.accounts.warnings import AccountWarnings
from synapse_lux_privacy.units import DAY_MS, format_duration


class WarningsEndpoint:
    def __init__(self, warnings: AccountWarnings, leads_ms: Sequence[int], dry_run: bool) -> None:
        self._warnings = warnings
        self._leads_ms = leads_ms
        self._dry_run = dry_run  # the module's dry_run: counted, never sent

    def routes(self) -> list[Route]:
        return [
            route("GET", "/notifications/account_deletion", self.count),
            route("POST", "/notifications/account_deletion", self.send),
        ]

    async def count(
        self, request: SynapseRequest, admin: str, path: Sequence[str]
    ) -> tuple[int, Any]:
        return 200, self._json(*await self._warnings.run(dry_run=True), dry_run=True)

    async def send(
        self, request: SynapseRequest, admin: str, path: Sequence[str]
    ) -> tuple[int, Any]:
        params.read_json_object(request, frozenset())
        dry_run = self._dry_run
        return 200, self._json(*await self._warnings.run(dry_run=dry_run), dry_run=dry_run)

    def _json(self, done: Counter[int], failed: int, dry_run: bool) -> dict[str, Any]:
        return {
            "enabled": self._warnings.enabled,
            "dry_run": dry_run,
            "warnings": {_lead(lead): done[lead] for lead in self._leads_ms},
            "total": sum(done.values()),
            "failed": failed,
        }


def _lead(ms: int) -> str:
    """A lead time as the key of ``warnings``: whole days as ``30d``, else ``12h`` and the like."""
    return f"{ms // DAY_MS}d" if ms % DAY_MS == 0 else format_duration(ms)
