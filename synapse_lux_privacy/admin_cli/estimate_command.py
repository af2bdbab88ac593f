"""``synapse-lux-privacy estimate``: how long the sweep of a server's backlog will take.

1. A dry run (``POST /sweeps`` with ``dry_run``) counts every rule's candidates.
2. Each rule with something to delete is sampled: a real background sweep of that rule
   alone, asked to stop (``DELETE /sweeps/{id}``) after ``--sample-seconds``. The items
   a sample deletes were due: the first sweep would have deleted them too, and the
   audit records them like any sweep's.
3. ``backlog.py`` turns the counts and the samples into a time per rule, a total and,
   with ``--project``, the time for a history that many times larger.

Exit status: 0 estimated; 2 the server refused (409 while another sweep runs) or could
not be reached; 130 Ctrl-C (the running sample is asked to stop).
"""

import json
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from rich.table import Table

from synapse_lux_privacy.admin_cli import formatting, records, sweep_view
from synapse_lux_privacy.admin_cli.backlog import BacklogEstimate, RuleForecast, worth_sampling
from synapse_lux_privacy.admin_cli.client import AdminApiError
from synapse_lux_privacy.admin_cli.polling import PollingCommand
from synapse_lux_privacy.admin_cli.sweep_command import EXIT_API_ERROR, EXIT_COMPLETED
from synapse_lux_privacy.sweep.rule import RULE_NAMES, SWEEP_STOPPED


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number == number and number not in (float("inf"), float("-inf")) else None


def parse_sample_seconds(value: str) -> float:
    """A sample's length in seconds: a number, 0 or more (0: no sample)."""
    number = _number(value)
    if number is None or number < 0:
        raise ValueError(f"{value!r} is not a number of seconds (0 or more)")
    return number


def parse_factor(value: str) -> float:
    """A projection's factor: a positive number (10: a backlog ten times larger)."""
    number = _number(value)
    if number is None or number <= 0:
        raise ValueError(f"{value!r} is not a positive factor (10: ten times the backlog)")
    return number


class EstimateCommand(PollingCommand):
    """One run of the command."""

    _running: str | None = None

    def run(
        self,
        as_of: int | None,
        rules: Sequence[str] | None,
        sample_s: float,
        projections: Sequence[float],
        as_json: bool,
    ) -> int:
        wanted = list(rules) if rules is not None else list(RULE_NAMES)
        try:
            result = self.estimate(as_of, wanted, sample_s)
        except AdminApiError as e:
            print(f"error: {e.describe()}", file=sys.stderr)
            return EXIT_API_ERROR
        except KeyboardInterrupt:
            return self._cancel(self._running)
        if as_json:
            print(json.dumps(as_record(result, projections), indent=2, sort_keys=True))
        else:
            self._console.print(forecast_table(result))
            for line in summary_lines(result, projections):
                self._console.print(line, markup=False, highlight=False, soft_wrap=True)
        return EXIT_COMPLETED

    def estimate(self, as_of: int | None, rules: Sequence[str], sample_s: float) -> BacklogEstimate:
        """The dry run, then a sample of each rule with something to delete."""
        dry = self._sweep({"dry_run": True, "as_of": as_of, "rules": [*rules]}, None)
        results = dry.get("results") or {}
        forecasts = []
        for rule in rules:
            counts = sweep_view.counts(results.get(rule) or {})
            forecast = RuleForecast(rule, counts["candidates"], counts["held"])
            if sample_s > 0 and worth_sampling(forecast.candidates, forecast.held):
                sample = self._sweep(
                    {"dry_run": False, "as_of": as_of, "rules": [rule]}, self._clock() + sample_s
                )
                forecast = RuleForecast(
                    rule,
                    forecast.candidates,
                    forecast.held,
                    tried((sample.get("results") or {}).get(rule) or {}),
                    _seconds(sample),
                )
            forecasts.append(forecast)
        return BacklogEstimate(_seconds(dry), tuple(forecasts))

    def _sweep(self, body: dict[str, Any], stop_at: float | None) -> dict[str, Any]:
        """Run a background sweep to its end, or ask it to stop at ``stop_at``; its record."""
        sweep_id = records.sweep_id(self._client.call("POST", "/sweeps", body), "POST /sweeps")
        self._running = sweep_id
        path = f"/sweeps/{quote(sweep_id, safe='')}"
        asked: list[bool] = []

        def stop_when_due(record: dict[str, Any]) -> None:
            running = record.get("status") not in sweep_view.FINAL_STATUSES
            if running and stop_at is not None and not asked and self._clock() >= stop_at:
                self._client.call("DELETE", path)
                asked.append(True)

        record = self._wait(path, stop_when_due)
        self._running = None
        return record


def tried(result: dict[str, Any]) -> int:
    """Items a sample dealt with, less those its stop left untried (``sweep_stopped``):
    a rule deleted item by item stops within a second, the rest of its batch skipped."""
    reasons = result.get("skipped_reasons") or {}
    return sweep_view.dealt_with(result) - int(reasons.get(SWEEP_STOPPED, 0))


def _seconds(record: dict[str, Any]) -> float:
    started, finished = record.get("started_ts"), record.get("finished_ts")
    if not isinstance(started, int) or not isinstance(finished, int):
        return 0.0
    return max(0.0, (finished - started) / 1000)


def forecast_table(result: BacklogEstimate) -> Table:
    table = Table()
    table.add_column("rule")
    for name in ("candidates", "held", "sampled", "items/s", "time left"):
        table.add_column(name, justify="right")
    for r in result.rules:
        rate = r.rate_per_s
        table.add_row(
            r.rule,
            str(r.candidates),
            str(r.held),
            str(r.sampled),
            "-" if rate is None else f"{rate:.1f}",
            "unknown" if r.estimate_s is None else formatting.duration(r.estimate_s),
        )
    return table


def summary_lines(result: BacklogEstimate, projections: Sequence[float]) -> list[str]:
    lines = [f"dry run: {formatting.duration(result.dry_run_s)}"]
    sampled = sum(r.sampled for r in result.rules)
    if sampled:
        lines.append(f"the samples dealt with {sampled} due items (deleted, audited)")
    left, whole = result.left_s, result.whole_s
    if left is None or whole is None:
        lines.append("time left: unknown (a rule with candidates was not sampled)")
        return lines
    lines.append(f"time left: {formatting.duration(left)}")
    lines.append(f"whole backlog, samples included: {formatting.duration(whole)}")
    for factor in projections:
        lines.append(
            f"a backlog {factor:g} times larger: {formatting.duration(result.project(factor))}"
        )
    return lines


def as_record(result: BacklogEstimate, projections: Sequence[float]) -> dict[str, Any]:
    return {
        "dry_run_s": round(result.dry_run_s, 3),
        "rules": {
            r.rule: {
                "candidates": r.candidates,
                "held": r.held,
                "sampled": r.sampled,
                "sample_s": round(r.sample_s, 3),
                "rate_per_s": None if r.rate_per_s is None else round(r.rate_per_s, 2),
                "estimate_s": None if r.estimate_s is None else round(r.estimate_s, 1),
            }
            for r in result.rules
        },
        "left_s": None if result.left_s is None else round(result.left_s, 1),
        "whole_s": None if result.whole_s is None else round(result.whole_s, 1),
        "projections": {f"{f:g}": result.project(f) for f in projections},
    }
