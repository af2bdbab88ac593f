"""Background sweeps: ``POST /sweeps``, ``GET /sweeps[/{id}]``, ``DELETE /sweeps/{id}``.

A first sweep on a server with years of history runs for hours, longer than any
proxy keeps a request open. ``POST /sweeps`` takes the lease, answers 202 with the
sweep's ID at once and runs the sweep in the background; its progress (counts so
far, rate) is read from the sweep's record, so any worker can answer for a sweep
running on another, the periodic one included.
"""

import re
from collections.abc import Callable, Sequence
from typing import Any

from synapse.module_api import SynapseRequest
from synapse.module_api.errors import Codes, SynapseError

from synapse_lux_privacy.admin_api.params import query_int, shown
from synapse_lux_privacy.admin_api.sweep_endpoint import SweepEndpoint, already_running
from synapse_lux_privacy.store.sweeps import SweepRunStore
from synapse_lux_privacy.sweep.orchestrator import SweepAlreadyRunning, SweepOrchestrator

MAX_LIMIT = 100


class SweepsEndpoint:
    def __init__(
        self,
        sweep: SweepEndpoint,
        orchestrator: SweepOrchestrator,
        runs: SweepRunStore,
        clock_ms: Callable[[], int],
    ) -> None:
        self._sweep = sweep
        self._orchestrator = orchestrator
        self._runs = runs
        self._clock_ms = clock_ms

    async def start(
        self, request: SynapseRequest, admin: str, params: Sequence[str]
    ) -> tuple[int, Any]:
        wanted = self._sweep.parse(request)
        try:
            started = await self._orchestrator.start(wanted.as_of, wanted.dry_run, wanted.rules)
        except SweepAlreadyRunning:
            raise already_running() from None
        self._orchestrator.run_in_background(started)
        return 202, {"sweep_id": started.sweep_id}

    async def get(
        self, request: SynapseRequest, admin: str, params: Sequence[str]
    ) -> tuple[int, Any]:
        now = self._clock_ms()
        record = await self._runs.get(params[0], now) if _is_sweep_id(params[0]) else None
        if record is None:
            raise _unknown(params[0])
        return 200, record.to_json(now)

    async def list(
        self, request: SynapseRequest, admin: str, params: Sequence[str]
    ) -> tuple[int, Any]:
        limit = query_int(request, "limit", 20, 1, MAX_LIMIT)
        now = self._clock_ms()
        return 200, {"sweeps": [r.to_json(now) for r in await self._runs.latest(limit, now)]}

    async def cancel(
        self, request: SynapseRequest, admin: str, params: Sequence[str]
    ) -> tuple[int, Any]:
        """Ask a running sweep to stop after its current batch (a finished one: no-op)."""
        now = self._clock_ms()
        record = (
            await self._runs.request_cancel(params[0], now) if _is_sweep_id(params[0]) else None
        )
        if record is None:
            raise _unknown(params[0])
        return 202, record.to_json(now)


def _is_sweep_id(value: str) -> bool:
    """Sweep IDs are 32 hexadecimal digits; anything else names no sweep."""
    return re.fullmatch(r"[0-9a-f]{32}", value) is not None


def _unknown(sweep_id: str) -> SynapseError:
    return SynapseError(404, f"No sweep {shown(sweep_id)}", Codes.NOT_FOUND)
