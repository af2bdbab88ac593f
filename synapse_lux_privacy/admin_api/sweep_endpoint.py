"""POST /sweep: run the retention rules now and return the report.

``parse`` reads the request body shared with ``POST /sweeps`` (background sweeps).
"""

from collections.abc import Callable, Sequence
from typing import Any

import attrs
from synapse.module_api import SynapseRequest
from synapse.module_api.errors import Codes, SynapseError

from synapse_lux_privacy.admin_api.params import (
    invalid,
    optional_bool,
    optional_timestamp,
    read_json_object,
)
from synapse_lux_privacy.config import LuxPrivacyConfig
from synapse_lux_privacy.sweep.orchestrator import (
    SweepAlreadyRunning,
    SweepOrchestrator,
    pace_settings,
)
from synapse_lux_privacy.sweep.rule import RULE_NAMES

# An "as of" this close to now counts as now (clocks of admin tools drift).
_FUTURE_TOLERANCE_MS = 60_000


@attrs.frozen
class SweepRequest:
    as_of: int | None
    dry_run: bool
    rules: list[str] | None


class SweepEndpoint:
    def __init__(
        self,
        config: LuxPrivacyConfig,
        orchestrator: SweepOrchestrator,
        clock_ms: Callable[[], int],
    ) -> None:
        self._config = config
        self._orchestrator = orchestrator
        self._clock_ms = clock_ms

    async def post(
        self, request: SynapseRequest, admin: str, params: Sequence[str]
    ) -> tuple[int, Any]:
        wanted = self.parse(request)
        try:
            report = await self._orchestrator.run(wanted.as_of, wanted.dry_run, wanted.rules)
        except SweepAlreadyRunning:
            raise already_running() from None
        return 200, report.to_json()

    async def settings(
        self, request: SynapseRequest, admin: str, params: Sequence[str]
    ) -> tuple[int, Any]:
        """``GET /sweep/settings``: what decides a sweep's pace (R1-R12), read-only, for
        ``synapse-lux-privacy estimate``'s cost model and for an operator's checks."""
        config = self._config
        return 200, {
            "dry_run": config.dry_run,
            "sweep_interval_ms": config.sweep_interval_ms,
            **pace_settings(config.sweep_batch_size, config.sweep_pace, config.sweep_adaptive_pace),
        }

    def parse(self, request: SynapseRequest) -> SweepRequest:
        """The sweep a request asks for (``dry_run``, ``as_of``, ``rules``), checked."""
        body = read_json_object(request, frozenset({"dry_run", "as_of", "rules"}))
        requested_dry_run = optional_bool(body, "dry_run")
        # A module configured with dry_run: true never deletes, whatever the request says.
        dry_run = self._config.dry_run or bool(requested_dry_run)
        as_of = optional_timestamp(body, "as_of")
        if (
            as_of is not None
            and as_of > self._clock_ms() + _FUTURE_TOLERANCE_MS
            and not dry_run
            and not self._config.allow_future_sweeps
        ):
            raise invalid(
                "as_of is in the future: a real sweep as of a future time needs"
                " allow_future_sweeps: true in the module config; use dry_run: true for a"
                " forecast"
            )
        return SweepRequest(as_of, dry_run, _rule_names(body.get("rules")))


def already_running() -> SynapseError:
    return SynapseError(
        409, "A sweep is already running; try again when it has finished", Codes.LIMIT_EXCEEDED
    )


def _rule_names(value: object) -> list[str] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, str) and v in RULE_NAMES for v in value)
    ):
        raise invalid(
            f"rules must be null or a non-empty list of rule names among {list(RULE_NAMES)}"
        )
    return list(value)
