"""What ``synapse-lux-privacy sweep`` shows of a sweep (pure functions of
``GET /sweeps/{id}``): a progress bar per rule, a progress line for logs, the final table.

A rule's counts are those of its candidates found so far and of those dealt with
(deleted, held, skipped or errors): while a rule runs, both grow, page by page. Its bar
is empty while it waits, pulses while it runs, and is full once it is done.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from rich.box import HEAVY_HEAD, Box
from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from synapse_lux_privacy.admin_cli import formatting

COUNTS = ("candidates", "deleted", "held", "skipped", "errors")

DONE, RUNNING, WAITING = "done", "running", "waiting"

BAR_WIDTH = 20

# Statuses of a sweep that has ended, and whether each one is a success.
FINAL_STATUSES = {
    "completed": True,
    "completed_with_errors": False,
    "cancelled": False,
    "interrupted": False,
}


def counts(result: Mapping[str, Any]) -> dict[str, int]:
    """A rule's counts (0 where the server reports none, e.g. ``skipped``)."""
    return {name: int(result.get(name) or 0) for name in (*COUNTS, "bytes")}


def dealt_with(result: Mapping[str, Any]) -> int:
    c = counts(result)
    return c["deleted"] + c["held"] + c["skipped"] + c["errors"]


def rule_order(sweep: Mapping[str, Any], requested: Sequence[str]) -> list[str]:
    """The rules to show: those requested, in order, then any other the server reports."""
    results = sweep.get("results") or {}
    return [*requested, *(name for name in results if name not in requested)]


def rule_states(sweep: Mapping[str, Any], rules: Sequence[str]) -> dict[str, str]:
    """done / running / waiting per rule: rules run in order, ``current_rule`` is running."""
    if sweep.get("status") != "running":
        return dict.fromkeys(rules, DONE)
    current = sweep.get("current_rule")
    if current not in rules:
        return dict.fromkeys(rules, WAITING)
    position = rules.index(current)
    return {
        name: DONE if i < position else RUNNING if i == position else WAITING
        for i, name in enumerate(rules)
    }


def _counts_text(result: Mapping[str, Any], state: str) -> str:
    """``done/candidates`` and the outcomes, compact enough for an 80-column terminal."""
    if state == WAITING:
        return WAITING
    c = counts(result)
    text = (
        f"{dealt_with(result):>6}/{c['candidates']:<6} del {c['deleted']:<6}"
        f" held {c['held']:<4} skip {c['skipped']:<4} err {c['errors']:<4}"
    )
    return f"{text} {DONE}" if state == DONE else text


def progress_view(sweep: Mapping[str, Any], requested: Sequence[str]) -> RenderableType:
    """A progress bar per rule and a status line, for a live terminal display."""
    rules = rule_order(sweep, requested)
    states = rule_states(sweep, rules)
    results = sweep.get("results") or {}
    grid = Table.grid(padding=(0, 1))
    for _ in range(3):
        grid.add_column(no_wrap=True)
    for name in rules:
        result = results.get(name) or {}
        state = states[name]
        if state == RUNNING:
            # Pulses: the server finds a rule's candidates page by page and cannot say
            # how many are left (``eta_s`` is null while it runs), so there is no share
            # to draw; the counts beside the bar grow instead.
            bar = ProgressBar(total=None, width=BAR_WIDTH)
        else:
            bar = ProgressBar(total=1, completed=1 if state == DONE else 0, width=BAR_WIDTH)
        grid.add_row(Text(f"{name:<16}"), bar, Text(_counts_text(result, state)))
    return Group(grid, Text(status_line(sweep)))


def status_line(sweep: Mapping[str, Any]) -> str:
    """The sweep's status, speed and expected end, in one line."""
    parts = [f"sweep {sweep.get('sweep_id', '?')}: {sweep.get('status', '?')}"]
    if sweep.get("dry_run"):
        parts.append("dry run")
    if sweep.get("current_rule") and sweep.get("status") == "running":
        parts.append(f"rule {sweep['current_rule']}")
    rate = sweep.get("rate_per_s")
    if isinstance(rate, int | float):
        parts.append(f"{rate:.1f} items/s")
    if sweep.get("status") == "running" and isinstance(sweep.get("eta_s"), int | float):
        parts.append(f"ETA {formatting.duration(sweep['eta_s'])}")
    return ", ".join(parts)


def progress_line(sweep: Mapping[str, Any], elapsed_s: float) -> str:
    """One line of progress for a log (output that is not a terminal)."""
    rule = sweep.get("current_rule")
    result = (sweep.get("results") or {}).get(rule) or {}
    where = ""
    if rule:
        c = counts(result)
        where = (
            f" {rule}: {dealt_with(result)}/{c['candidates']} (deleted {c['deleted']},"
            f" held {c['held']}, skipped {c['skipped']}, errors {c['errors']});"
        )
    return f"[{formatting.duration(elapsed_s):>9}]{where} {status_line(sweep)}"


def in_rule_order(sweep: Mapping[str, Any], requested: Sequence[str]) -> dict[str, Any]:
    """The record with its ``results`` in the order the rules run (``--json``)."""
    results = sweep.get("results")
    if not isinstance(results, Mapping):
        return dict(sweep)
    ordered = {name: results[name] for name in rule_order(sweep, requested) if name in results}
    return {**sweep, "results": ordered}


def results_table(
    sweep: Mapping[str, Any], requested: Sequence[str], box: Box = HEAVY_HEAD
) -> Table:
    """The final report: one row per rule and a total (rule names as text, never markup)."""
    table = Table(box=box)
    table.add_column("rule")
    for name in (*COUNTS, "bytes"):
        table.add_column(name, justify="right")
    results = sweep.get("results") or {}
    total = dict.fromkeys((*COUNTS, "bytes"), 0)
    for name in rule_order(sweep, requested):
        c = counts(results.get(name) or {})
        for key in total:
            total[key] += c[key]
        table.add_row(Text(name), *(str(c[key]) for key in COUNTS), formatting.size(c["bytes"]))
    table.add_section()
    table.add_row("total", *(str(total[key]) for key in COUNTS), formatting.size(total["bytes"]))
    return table


def skipped_reasons(sweep: Mapping[str, Any]) -> list[str]:
    """``rule: reason n, reason n`` for every rule that skipped items."""
    lines = []
    for name, result in (sweep.get("results") or {}).items():
        reasons = (result or {}).get("skipped_reasons") or {}
        if reasons:
            listed = ", ".join(f"{reason} {n}" for reason, n in sorted(reasons.items()))
            lines.append(f"skipped by {name}: {listed}")
    return lines


def summary(sweep: Mapping[str, Any]) -> str:
    """``Sweep <id> <status> in <duration>, as of <time>``."""
    kind = "Dry run (nothing deleted)" if sweep.get("dry_run") else "Sweep"
    started, finished = sweep.get("started_ts"), sweep.get("finished_ts")
    took = ""
    if isinstance(started, int) and isinstance(finished, int):
        took = f" in {formatting.duration((finished - started) / 1000)}"
    return (
        f"{kind} {sweep.get('sweep_id', '?')} {sweep.get('status', '?')}{took},"
        f" as of {formatting.timestamp(sweep.get('as_of'))}"
    )
