"""``synapse-lux-privacy estimate``: how long the sweep of a server's backlog will take.

By default it deletes nothing:

1. ``GET /sweep/settings``: the pace the server's sweeps run at (``sweep_pace``,
   ``sweep_adaptive_pace``, ``sweep_batch_size``).
2. A dry run (``POST /sweeps`` with ``dry_run``) counts what each rule would delete, the
   rooms its cost follows (messages: the purges; accounts: the rooms parted), and its own
   time per rule.
3. ``GET /sweeps``: this server's recorded real sweeps, whose per-rule times calibrate the
   cost model (``sweep/cost_model.py``); with none, the range measured on the project's
   benchmarks, labelled as such.

``--sample-seconds N`` adds a measured sample that **deletes due items**: a real sweep of
each rule with something to delete, stopped after N seconds, whose time then calibrates
the estimate of what is left. It asks for confirmation (``--yes`` skips it; without a
terminal and without ``--yes`` it is refused), and is refused when the module runs with
``dry_run: true`` (a sweep there deletes nothing, so it measures nothing).

Exit status: 0 estimated; 2 refused (by the server, or a sample not confirmed) or the
server could not be reached; 130 Ctrl-C (a running sweep is asked to stop).
"""

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import attrs
from rich.box import HEAVY_HEAD, Box
from rich.table import Table

from synapse_lux_privacy.admin_cli import backlog, formatting, records, sweep_view
from synapse_lux_privacy.admin_cli.client import AdminApiError
from synapse_lux_privacy.admin_cli.polling import Client, PollingCommand
from synapse_lux_privacy.admin_cli.sweep_command import EXIT_API_ERROR, EXIT_COMPLETED
from synapse_lux_privacy.sweep.cost_model import Pace, RuleWork, SweepEstimate, estimate
from synapse_lux_privacy.sweep.rule import RULE_NAMES

EXIT_REFUSED = 2
# How many recorded sweeps calibrate the estimate (GET /sweeps' largest page).
HISTORY = 100


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number == number and number not in (float("inf"), float("-inf")) else None


def parse_sample_seconds(value: str) -> float:
    """A sample's length in seconds: a number above 0."""
    number = _number(value)
    if number is None or number <= 0:
        raise ValueError(f"{value!r} is not a number of seconds above 0")
    return number


def parse_factor(value: str) -> float:
    """A projection's factor: a positive number (10: a backlog ten times larger)."""
    number = _number(value)
    if number is None or number <= 0:
        raise ValueError(f"{value!r} is not a positive factor (10: ten times the backlog)")
    return number


@attrs.frozen
class Outcome:
    """What the command found: the estimate, the dry run's time, what samples deleted."""

    estimate: SweepEstimate
    dry_run_s: float
    module_dry_run: bool
    sampled: dict[str, int]


def confirm_deleting(
    sample_s: float, yes: bool, interactive: bool, ask: Callable[[str], str]
) -> str | None:
    """None when the deleting sample may run; otherwise why it may not."""
    if yes:
        return None
    if not interactive:
        return "a sample deletes due items: confirm with --yes when not on a terminal"
    answer = ask(
        f"A sample runs a real sweep of each rule for {sample_s:g} s: it DELETES due items"
        " (audited like any sweep's). Type 'yes' to go on: "
    )
    return None if answer.strip().lower() == "yes" else "not confirmed; nothing was deleted"


class EstimateCommand(PollingCommand):
    """One run of the command."""

    _running: str | None = None

    def __init__(
        self,
        client: Client,
        *args: Any,
        ask: Callable[[str], str] = input,
        interactive: Callable[[], bool] = lambda: sys.stdin.isatty(),
        **kwargs: Any,
    ) -> None:
        super().__init__(client, *args, **kwargs)
        self._ask = ask
        self._interactive = interactive

    def run(
        self,
        as_of: int | None,
        rules: Sequence[str] | None,
        sample_s: float | None,
        projections: Sequence[float],
        as_json: bool,
        yes: bool = False,
    ) -> int:
        wanted = list(rules) if rules is not None else list(RULE_NAMES)
        try:
            answer = self._client.call("GET", "/sweep/settings")
            settings = records.sweep_settings(answer, "GET /sweep/settings")
            if sample_s is not None:
                refusal = self._sample_refusal(settings, sample_s, yes)
                if refusal is not None:
                    print(f"error: {refusal}", file=sys.stderr)
                    return EXIT_REFUSED
            outcome = self.estimate(settings, as_of, wanted, sample_s)
        except AdminApiError as e:
            print(f"error: {e.describe()}", file=sys.stderr)
            return EXIT_API_ERROR
        except KeyboardInterrupt:
            return self._cancel(self._running)
        if as_json:
            print(json.dumps(as_record(outcome, projections), indent=2))  # rules in order
        else:
            box = formatting.table_box(self._console)
            self._console.print(estimate_table(outcome.estimate, box))
            for line in summary_lines(outcome, projections):
                self._console.print(line, markup=False, highlight=False, soft_wrap=True)
        return EXIT_COMPLETED

    def _sample_refusal(self, settings: dict[str, Any], sample_s: float, yes: bool) -> str | None:
        if settings.get("dry_run"):
            return (
                "the module runs with dry_run: true, so a sweep deletes nothing and a sample"
                " would measure nothing; run the estimate without --sample-seconds (from the"
                " dry run's counts), or set dry_run: false first"
            )
        return confirm_deleting(sample_s, yes, self._interactive(), self._ask)

    def estimate(
        self,
        settings: dict[str, Any],
        as_of: int | None,
        rules: Sequence[str],
        sample_s: float | None,
    ) -> Outcome:
        """The dry run, the optional samples, then the cost model over the history."""
        pace = Pace.from_json(settings)
        dry = self._sweep({"dry_run": True, "as_of": as_of, "rules": [*rules]}, None)
        work = backlog.work(dry, rules, pace.batch_size)
        sampled: dict[str, int] = {}
        if sample_s is not None:
            work = [self._sample(w, as_of, sample_s, sampled) for w in work]
        path = f"/sweeps?limit={HISTORY}"
        recorded = records.sweep_records(self._client.call("GET", path), f"GET {path}")
        result = estimate(work, pace, backlog.history(recorded))
        return Outcome(result, _seconds(dry), bool(settings.get("dry_run")), sampled)

    def _sample(
        self, work: RuleWork, as_of: int | None, sample_s: float, sampled: dict[str, int]
    ) -> RuleWork:
        """A real sweep of the rule, stopped after ``sample_s``; the work it left."""
        if work.items == 0:
            return work
        body = {"dry_run": False, "as_of": as_of, "rules": [work.rule]}
        record = self._sweep(body, self._clock() + sample_s)
        done = backlog.tried((record.get("results") or {}).get(work.rule) or {})
        sampled[work.rule] = done
        left = max(0, work.items - done)
        rooms = round(work.rooms * left / work.items)
        return attrs.evolve(
            work, items=left, rooms=rooms, dry_run_s=work.dry_run_s * left / work.items
        )

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


def _seconds(record: dict[str, Any]) -> float:
    started, finished = record.get("started_ts"), record.get("finished_ts")
    if not isinstance(started, int) or not isinstance(finished, int):
        return 0.0
    return max(0.0, (finished - started) / 1000)


def _duration(seconds: float) -> str:
    """Tenths under ten seconds (a small backlog), else as the other commands write it."""
    return f"{seconds:.1f} s" if seconds < 10 else formatting.duration(seconds)


def _span(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "-"
    return f"{_duration(low)} - {_duration(high)}"


def sources(result: SweepEstimate) -> list[str]:
    """What the figures were measured on, each once, in the rules' order."""
    return list(dict.fromkeys(r.source for r in result.rules))


def estimate_table(result: SweepEstimate, box: Box = HEAVY_HEAD) -> Table:
    """One row per rule; its last column refers to the ``measured on`` lines below.
    ``box``: ``formatting.table_box`` (ASCII when not on a terminal)."""
    numbers = {source: i for i, source in enumerate(sources(result), 1)}
    table = Table(box=box)
    table.add_column("rule")
    for name in ("to delete", "rooms", "estimate", "range", "measured on"):
        table.add_column(name, justify="right")
    for r in result.rules:
        table.add_row(
            r.rule,
            str(r.items),
            str(r.rooms) if r.rooms else "-",
            "unknown" if r.seconds is None else _duration(r.seconds),
            _span(r.low_s, r.high_s),
            f"[{numbers[r.source]}]",
        )
    return table


def summary_lines(outcome: Outcome, projections: Sequence[float]) -> list[str]:
    result = outcome.estimate
    lines = [f"[{i}] {source}" for i, source in enumerate(sources(result), 1)]
    lines.append(f"dry run: {_duration(outcome.dry_run_s)} (nothing deleted)")
    if outcome.module_dry_run:
        lines.append(
            "the module runs with dry_run: true: its sweeps delete nothing; the figures"
            " are for the sweeps once dry_run is false"
        )
    if outcome.sampled:
        done = sum(outcome.sampled.values())
        lines.append(
            f"the samples deleted {done} due items (audited); the figures are for the rest"
        )
    lines.append(f"pace: {result.pace.describe()}")
    if result.seconds is None:
        lines.append("sweep time: unknown (a rule with items to delete has no measurement)")
        return lines
    lines.append(
        f"sweep time: about {_duration(result.seconds)}"
        f" (range {_span(result.low_s, result.high_s)}; rules one after the other)"
    )
    for factor in projections:
        lines.append(
            f"a backlog {factor:g} times larger, at the same cost per item and purge:"
            f" about {_duration(result.seconds * factor)}"
        )
    return lines


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def as_record(outcome: Outcome, projections: Sequence[float]) -> dict[str, Any]:
    result = outcome.estimate
    return {
        "dry_run_s": round(outcome.dry_run_s, 3),
        "module_dry_run": outcome.module_dry_run,
        "pace": result.pace.describe(),
        "sampled": outcome.sampled,
        "rules": {
            r.rule: {
                "items": r.items,
                "rooms": r.rooms,
                "estimate_s": _round(r.seconds),
                "low_s": _round(r.low_s),
                "high_s": _round(r.high_s),
                "measured_on": r.source,
            }
            for r in result.rules
        },
        "estimate_s": _round(result.seconds),
        "low_s": _round(result.low_s),
        "high_s": _round(result.high_s),
        "projections": {
            f"{f:g}": None if result.seconds is None else round(result.seconds * f, 1)
            for f in projections
        },
    }
