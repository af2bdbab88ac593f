"""What the commands that follow background sweeps share: the admin API client, the
console, and polling ``GET /sweeps/{id}`` until the sweep has ended (R1-R12 sweeps).

``sleep`` and ``clock`` are injectable, so that tests drive the polling without waiting.
"""

import sys
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import quote

from rich.console import Console

from synapse_lux_privacy.admin_cli import sweep_view
from synapse_lux_privacy.admin_cli.client import AdminApiError

EXIT_CTRL_C = 130


class Client(Protocol):
    def call(self, method: str, path: str, body: Any = None) -> Any: ...


class PollingCommand:
    def __init__(
        self,
        client: Client,
        console: Console,
        interval_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._console = console
        self._interval_s = interval_s
        self._sleep = sleep
        self._clock = clock

    def _wait(self, path: str, show: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Poll until the sweep has ended, showing each record; its final record."""
        while True:
            sweep: dict[str, Any] = self._client.call("GET", path)
            show(sweep)
            if sweep.get("status") in sweep_view.FINAL_STATUSES:
                return sweep
            self._sleep(self._interval_s)

    def _cancel(self, sweep_id: str | None) -> int:
        """Ctrl-C: ask the server to stop the sweep after its current batch."""
        if sweep_id is None:
            print("interrupted before the sweep started", file=sys.stderr)
            return EXIT_CTRL_C
        try:
            self._client.call("DELETE", f"/sweeps/{quote(sweep_id, safe='')}")
        except AdminApiError as e:
            print(
                f"interrupted; could not cancel sweep {sweep_id}: {e.describe()}", file=sys.stderr
            )
            return EXIT_CTRL_C
        print(
            f"interrupted: sweep {sweep_id} was asked to stop after its current batch",
            file=sys.stderr,
        )
        return EXIT_CTRL_C
