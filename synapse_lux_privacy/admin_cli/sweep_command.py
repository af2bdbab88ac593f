"""``synapse-lux-privacy sweep``: start a background sweep (``POST /sweeps``) and follow it.

Polls ``GET /sweeps/{id}`` and shows a progress bar per rule on a terminal (one
progress line per change when the output is a file or a pipe), then the report as a
table; ``--json`` prints only the final sweep record. Ctrl-C asks the server to stop
the sweep after its current batch (``DELETE /sweeps/{id}``).

Exit status: 0 the sweep completed; 1 it ended ``completed_with_errors``,
``cancelled`` or ``interrupted``; 2 the server refused, could not be reached or gave an
answer that is not the API's (``errors.guarded``); 130 interrupted with Ctrl-C, at any
moment (a Ctrl-C while the sweep is being started takes effect once the server has
answered, so that the sweep it started is cancelled).
"""

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from rich.live import Live

from synapse_lux_privacy.admin_cli import formatting, interrupts, records, sweep_view
from synapse_lux_privacy.admin_cli.errors import EXIT_FAILED
from synapse_lux_privacy.admin_cli.polling import PollingCommand
from synapse_lux_privacy.sweep.rule import RULE_NAMES

EXIT_COMPLETED = 0
EXIT_NOT_COMPLETED = 1
EXIT_API_ERROR = EXIT_FAILED


def parse_as_of(value: str) -> int:
    """Milliseconds since the epoch, or an ISO 8601 date or time (UTC unless it says)."""
    if value.isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is neither milliseconds since the epoch nor an ISO 8601 date"
            " (2027-01-31, 2027-01-31T12:00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def parse_rules(value: str) -> list[str]:
    """A comma-separated list of rule names, each one of RULE_NAMES."""
    rules = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in rules if name not in RULE_NAMES]
    if not rules or unknown:
        raise ValueError(
            f"unknown rule(s) {', '.join(unknown) or '(none given)'}; rules are"
            f" {', '.join(RULE_NAMES)}"
        )
    return rules


MAX_INTERVAL_S = 3600.0


def parse_interval(value: str) -> float:
    """A polling interval in seconds: a positive number, at most an hour."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= MAX_INTERVAL_S:
        raise ValueError(f"{value!r} is not a positive number of seconds, at most 3600")
    return seconds


class SweepCommand(PollingCommand):
    """One run of the command."""

    def run(
        self, dry_run: bool, as_of: int | None, rules: Sequence[str] | None, as_json: bool
    ) -> int:
        body = {"dry_run": dry_run, "as_of": as_of, "rules": None if rules is None else [*rules]}
        shown = list(rules) if rules is not None else list(RULE_NAMES)
        sweep_id: str | None = None
        try:
            with interrupts.deferred("the sweep is being started"):
                sweep_id = records.sweep_id(
                    self._client.call("POST", "/sweeps", body), "POST /sweeps"
                )
            path = f"/sweeps/{quote(sweep_id, safe='')}"
            if as_json:
                final = self._wait(path, lambda sweep: None)
            elif self._console.is_terminal:
                with Live(console=self._console, refresh_per_second=8) as live:
                    final = self._wait(
                        path,
                        lambda sweep: live.update(
                            sweep_view.progress_view(sweep, shown), refresh=True
                        ),
                    )
            else:
                final = self._wait(path, self._line_printer())
        except KeyboardInterrupt:
            return self._cancel(sweep_id)
        if as_json:
            print(json.dumps(sweep_view.in_rule_order(final, shown), indent=2))
        else:
            self._say(sweep_view.summary(final))
            self._console.print(
                sweep_view.results_table(final, shown, formatting.table_box(self._console))
            )
            for line in sweep_view.skipped_reasons(final):
                self._say(line)
        succeeded = sweep_view.FINAL_STATUSES.get(str(final.get("status")), False)
        return EXIT_COMPLETED if succeeded else EXIT_NOT_COMPLETED

    def _line_printer(self) -> Callable[[dict[str, Any]], None]:
        """Print a progress line whenever the counts, rule or status change."""
        started = self._clock()
        last: list[str] = []

        def show(sweep: dict[str, Any]) -> None:
            key = json.dumps(
                [sweep.get("status"), sweep.get("current_rule"), sweep.get("results")],
                sort_keys=True,
            )
            if last != [key]:
                last[:] = [key]
                self._say(sweep_view.progress_line(sweep, self._clock() - started))

        return show

    def _say(self, line: str) -> None:
        """One line as it is: never wrapped (logs), no markup."""
        self._console.print(line, markup=False, highlight=False, soft_wrap=True)
