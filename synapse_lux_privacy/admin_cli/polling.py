"""What the commands that follow background sweeps share: the admin API client, the
console, and polling ``GET /sweeps/{id}`` until the sweep has ended (R1-R12 sweeps).

Each record is checked (``records.sweep_record``): a status this command does not know
ends the wait with an error. When the server stops answering, polling goes on for
``LOST_CONTACT_S``; then the command ends saying that the sweep may still run (or be
marked ``interrupted`` when the server starts again) and how to follow it. Ctrl-C asks
the server once to cancel; a second Ctrl-C during that request leaves at once.

``sleep`` and ``clock`` are injectable, so that tests drive the polling without waiting.
"""

import argparse
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import quote

from rich.console import Console

from synapse_lux_privacy.admin_cli import records
from synapse_lux_privacy.admin_cli.client import API_PREFIX, AdminApiError
from synapse_lux_privacy.admin_cli.errors import EXIT_CTRL_C, CliError, say

# How long a sweep is followed while the server does not answer (a restart, a proxy
# without its backend) before the command gives up.
LOST_CONTACT_S = 30.0

# ``--interval``'s bounds, in seconds: at most ten polls a second, at least one an hour.
MIN_INTERVAL_S, MAX_INTERVAL_S = 0.1, 3600.0

__all__ = ["EXIT_CTRL_C", "LOST_CONTACT_S", "Client", "PollingCommand", "polling_interval"]


def polling_interval(value: str) -> float:
    """``--interval`` of the commands that follow a job (R14 export, erase): the seconds
    between two polls, a number from 0.1 to 3600 (not negative, zero, NaN or infinite,
    which would hammer the server or never poll again)."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not MIN_INTERVAL_S <= seconds <= MAX_INTERVAL_S:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a number of seconds from {MIN_INTERVAL_S:g} to {MAX_INTERVAL_S:g}"
        )
    return seconds


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
        lost_since: float | None = None
        while True:
            try:
                answer = self._client.call("GET", path)
            except AdminApiError as e:
                if not e.no_server:
                    raise
                now = self._clock()
                if lost_since is None:
                    lost_since = now
                    say(
                        f"the server stopped answering; trying again for {LOST_CONTACT_S:g} s"
                        f" ({e.describe()})"
                    )
                elif now - lost_since >= LOST_CONTACT_S:
                    raise _lost_contact(e, path) from None
                self._sleep(self._interval_s)
                continue
            if lost_since is not None:
                say("the server answers again")
                lost_since = None
            sweep = records.sweep_record(answer, f"GET {path}")
            show(sweep)
            if sweep["status"] != records.RUNNING:
                return sweep
            self._sleep(self._interval_s)

    def _cancel(self, sweep_id: str | None) -> int:
        """Ctrl-C: ask the server once to stop the sweep after its current batch."""
        if sweep_id is None:
            say(
                "interrupted before the server said which sweep it started, if any"
                f" (GET {API_PREFIX}/sweeps lists the latest)"
            )
            return EXIT_CTRL_C
        follow = f"GET {API_PREFIX}/sweeps/{quote(sweep_id, safe='')}"
        try:
            self._client.call("DELETE", f"/sweeps/{quote(sweep_id, safe='')}")
        except CliError as e:
            say(f"interrupted; could not cancel sweep {sweep_id}: {e}")
            return EXIT_CTRL_C
        except KeyboardInterrupt:
            say(
                f"interrupted again: the request to cancel sweep {sweep_id} may not have"
                f" reached the server; see {follow}"
            )
            return EXIT_CTRL_C
        say(f"interrupted: sweep {sweep_id} was asked to stop after its current batch")
        return EXIT_CTRL_C


def _lost_contact(error: AdminApiError, path: str) -> CliError:
    return CliError(
        f"the server has not answered for {LOST_CONTACT_S:g} s ({error.describe()})."
        " The sweep may still be running;"
        " if the server stopped, the next sweep marks it interrupted."
        f" Follow it with GET {API_PREFIX}{path} (or GET {API_PREFIX}/sweeps, the latest)"
    )
