"""A pause between a batch's steps, for the integration tests of the R13 interlock only.

Off unless the environment variable ``LUX_PRIVACY_TEST_GATE_DIR`` names a directory;
only the test harness sets it (``tests/integration/test_hold_race.py``), never a
deployment (docs/architecture.md). When it is set, a real sweep stops at each step
of each batch named below until the test lets it go on, so that a test can place a
hold exactly between a batch's listing and its deletion:

- ``listed``: a page of candidates was listed, the holds were not read again yet;
- ``marked``: the batch is marked in flight and its holds read; nothing deleted yet.

At a step, the sweep writes ``<dir>/<step>-<rule>.waiting`` and waits until
``<dir>/<step>-<rule>.go`` exists (a file left in place lets every later batch pass).
"""

import os
from collections.abc import Awaitable, Callable
from pathlib import Path

ENV = "LUX_PRIVACY_TEST_GATE_DIR"
LISTED, MARKED = "listed", "marked"
_POLL_S = 0.05


async def pause(step: str, rule: str, sleep: Callable[[float], Awaitable[None]]) -> None:
    """Wait at ``step`` of a batch of ``rule`` while the harness holds the gate closed;
    return at once when no gate is set."""
    directory = os.environ.get(ENV)
    if not directory:
        return
    go = Path(directory, f"{step}-{rule}.go")
    if go.exists():
        return
    Path(directory, f"{step}-{rule}.waiting").touch()
    while not go.exists():
        await sleep(_POLL_S)
