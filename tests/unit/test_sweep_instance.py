"""Sweeps start only where background tasks run (R1-R12 on workers): pure routing logic.

The integration test (tests/integration/test_workers.py) shows it on real workers.
Time: nothing here depends on time.
"""

from collections.abc import Sequence
from typing import Any

import pytest
import pytest_twisted
from synapse.module_api.errors import SynapseError

from synapse_lux_privacy.admin_api.sweep_instance import on_sweep_instance, wrong_instance


async def _sweep(request: Any, admin: str, params: Sequence[str]) -> tuple[int, Any]:
    return 202, {"sweep_id": "0" * 32}


@pytest_twisted.ensureDeferred
async def test_the_background_tasks_instance_runs_the_sweep() -> None:
    """No other instance named: this process runs background tasks, so it sweeps."""
    handler = on_sweep_instance(_sweep, None)
    assert await handler(None, "@admin:lux.test", []) == (202, {"sweep_id": "0" * 32})


@pytest_twisted.ensureDeferred
async def test_another_instance_refuses_with_421_naming_where_to_send_it() -> None:
    """Elsewhere: 421 M_LUX_WRONG_INSTANCE, ``run_on`` the instance, said in the error."""
    handler = on_sweep_instance(_sweep, "background_worker")
    with pytest.raises(SynapseError) as caught:
        await handler(None, "@admin:lux.test", [])
    error = caught.value
    assert (error.code, error.errcode) == (421, "M_LUX_WRONG_INSTANCE")
    assert error.error_dict(None)["run_on"] == "background_worker"
    assert "(run_background_tasks_on), background_worker: send the request to it" in error.msg


def test_the_main_process_is_named_as_operators_know_it() -> None:
    """Synapse calls the main process "master": the message says "the main process"."""
    error = wrong_instance("master")
    assert error.error_dict(None)["run_on"] == "master"
    assert "(run_background_tasks_on), the main process: send the request" in error.msg
