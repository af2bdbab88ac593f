"""Sweeps start only on the instance that runs background tasks (R1-R12 on workers).

The periodic sweep runs where Synapse runs its background tasks
(``run_background_tasks_on``): that is the process an operator gives the media store
and the storage providers, which the media rules need (R2, R4, R6, R7, R12). A sweep
requested through the admin API (``POST /sweep``, ``POST /sweeps``) must run there
too, so any other process refuses it with 421 ``M_LUX_WRONG_INSTANCE``, naming the
instance to send it to (``run_on``). Reading sweeps (``GET /sweeps``) and cancelling
one (``DELETE /sweeps/{id}``) go through the shared database and work everywhere.
"""

from collections.abc import Sequence
from typing import Any

from synapse.module_api import SynapseRequest
from synapse.module_api.errors import SynapseError

from synapse_lux_privacy.admin_api.resource import Handler
from synapse_lux_privacy.synapse_adapter import MAIN_PROCESS_INSTANCE

WRONG_INSTANCE = "M_LUX_WRONG_INSTANCE"


def on_sweep_instance(handler: Handler, sweep_instance: str | None) -> Handler:
    """``handler`` where this process runs background tasks (``sweep_instance`` None);
    elsewhere a handler refusing with 421 ``M_LUX_WRONG_INSTANCE``, naming the
    instance that runs them (``sweep_instance``)."""
    if sweep_instance is None:
        return handler

    async def refuse(request: SynapseRequest, admin: str, params: Sequence[str]) -> tuple[int, Any]:
        raise wrong_instance(sweep_instance)

    return refuse


def wrong_instance(sweep_instance: str) -> SynapseError:
    """421: this process does not run sweeps; ``run_on`` names the one that does."""
    where = "the main process" if sweep_instance == MAIN_PROCESS_INSTANCE else sweep_instance
    return SynapseError(
        421,
        f"Sweeps run only on the instance that runs background tasks"
        f" (run_background_tasks_on), {where}: send the request to it, not to this process",
        WRONG_INSTANCE,
        additional_fields={"run_on": sweep_instance},
    )
