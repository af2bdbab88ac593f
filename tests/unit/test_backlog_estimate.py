"""``synapse-lux-privacy estimate`` (R1-R12 sweeps): the admin API's records as the cost
model's inputs (pure), and the command's steps over a fake admin API whose sweeps advance
on an injected clock (no server, no sleeping)."""

import io
import json
from typing import Any

import pytest
from rich.console import Console

from synapse_lux_privacy.admin_cli import backlog
from synapse_lux_privacy.admin_cli.client import AdminApiError
from synapse_lux_privacy.admin_cli.estimate_command import (
    EstimateCommand,
    confirm_deleting,
    parse_factor,
    parse_sample_seconds,
)
from synapse_lux_privacy.cli import main
from synapse_lux_privacy.sweep.cost_model import BENCHMARK_SOURCE, Pace

SETTINGS = {
    "dry_run": False,
    "sweep_interval_ms": 3_600_000,
    "sweep_batch_size": 500,
    "sweep_pace": None,
    "sweep_adaptive_pace": {"enabled": False, "max_slowdown": 1.5, "min_pace": 10.0},
}


def test_r13_the_work_is_what_the_dry_run_would_delete_not_the_held_items() -> None:
    dry = {
        "results": {
            "messages": {
                "candidates": 120,
                "held": 15,
                "skipped": 105,
                "skipped_reasons": {"dry_run": 100, "retry_backoff": 5},
                "rooms": 7,
                "seconds": 1.5,
            }
        }
    }
    (work,) = backlog.work(dry, ["messages"], 500)
    assert (work.items, work.rooms, work.dry_run_s, work.batch_size) == (100, 7, 1.5, 500)


def test_r12_history_keeps_real_measured_rules_with_a_time() -> None:
    """A stopped sample counts the items it tried (deleted or failed), not those its stop
    left untried; dry runs, interrupted sweeps and records without times are left out."""
    pace = {**SETTINGS}
    records = [
        {"dry_run": True, "status": "completed", "results": {"messages": {"deleted": 0}}},
        {
            "dry_run": False,
            "status": "cancelled",
            "pace": pace,
            "results": {
                "accounts": {
                    "deleted": 20,
                    "errors": 1,
                    "skipped_reasons": {"sweep_stopped": 470},
                    "seconds": 7.0,
                },
                "sessions": {"deleted": 0, "seconds": 0.1},
                "messages": {"deleted": 5},
            },
        },
        {
            "dry_run": False,
            "status": "interrupted",
            "results": {"ip_logs": {"deleted": 3, "seconds": 1}},
        },
    ]
    (recorded,) = backlog.history(records)
    assert (recorded.rule, recorded.items, recorded.seconds) == ("accounts", 21, 7.0)
    assert recorded.pace == Pace.from_json(SETTINGS)


def test_sample_length_and_factor_are_checked() -> None:
    assert parse_sample_seconds("2.5") == 2.5
    assert parse_factor("100") == 100.0
    for bad in ("0", "-1", "x", "nan", "inf"):
        with pytest.raises(ValueError, match="seconds"):
            parse_sample_seconds(bad)
    for bad in ("0", "-3", "many", "nan"):
        with pytest.raises(ValueError, match="factor"):
            parse_factor(bad)


def test_r1_a_deleting_sample_needs_yes_or_a_confirmation_on_a_terminal() -> None:
    def never(prompt: str) -> str:
        raise AssertionError("asked")

    assert confirm_deleting(5, True, False, never) is None
    refusal = confirm_deleting(5, False, False, never)
    assert refusal is not None and "--yes" in refusal
    asked: list[str] = []
    assert confirm_deleting(5, False, True, lambda p: asked.append(p) or "yes") is None
    assert "DELETES due items" in asked[0]
    assert confirm_deleting(5, False, True, lambda p: "no") == "not confirmed; nothing was deleted"


class FakeServer:
    """Sweeps that deal with ``rate`` items per second of the injected clock: a dry run
    ends at once with the given candidates; a real one stops when asked or when done."""

    def __init__(
        self, candidates: dict[str, int], rate: float, settings: dict[str, Any] = SETTINGS
    ) -> None:
        self.now = 0.0
        self.candidates = candidates
        self.rate = rate
        self.settings = settings
        self.calls: list[tuple[str, str, Any]] = []
        self._sweeps: dict[str, dict[str, Any]] = {}

    def call(self, method: str, path: str, body: Any = None) -> Any:
        self.calls.append((method, path, body))
        if path == "/sweep/settings":
            return self.settings
        if path.startswith("/sweeps?"):
            return {"sweeps": [self._record(s) for s in reversed(self._sweeps.values())]}
        if method == "POST":
            sweep_id = f"{len(self._sweeps):032x}"
            self._sweeps[sweep_id] = {"body": body, "start": self.now, "stop": None}
            return {"sweep_id": sweep_id}
        sweep = self._sweeps[path.rsplit("/", 1)[1]]
        if method == "DELETE":
            sweep["stop"] = self.now
            return {}
        return self._record(sweep)

    def _record(self, sweep: dict[str, Any]) -> dict[str, Any]:
        body, start = sweep["body"], sweep["start"]
        rules = body["rules"]
        if body["dry_run"]:
            results = {
                r: {
                    "candidates": self.candidates[r],
                    "held": 0,
                    "skipped_reasons": {"dry_run": self.candidates[r]},
                    "rooms": self.candidates[r] // 10,
                    "seconds": 0.5,
                }
                for r in rules
            }
            return {
                "dry_run": True,
                "status": "completed",
                "results": results,
                "started_ts": 0,
                "finished_ts": 1500,
            }
        (rule,) = rules
        total = self.candidates[rule]
        end = sweep["stop"] if sweep["stop"] is not None else self.now
        dealt = min(total, int((end - start) * self.rate))
        finished = dealt == total or sweep["stop"] is not None
        result = {"candidates": dealt, "deleted": dealt, "held": 0}
        result |= {"rooms": dealt // 10, "seconds": end - start}
        return {
            "dry_run": False,
            "pace": self.settings,
            "status": "cancelled"
            if finished and dealt < total
            else "completed"
            if finished
            else "running",
            "results": {rule: result},
            "started_ts": int(start * 1000),
            "finished_ts": int(end * 1000) if finished else None,
        }


def command(server: FakeServer, out: io.StringIO, **kwargs: Any) -> EstimateCommand:
    def sleep(seconds: float) -> None:
        server.now += seconds

    console = Console(file=out, width=200)
    return EstimateCommand(
        server, console, interval_s=0.5, sleep=sleep, clock=lambda: server.now, **kwargs
    )


def test_r1_estimate_by_default_runs_only_a_dry_run_and_says_what_it_measured_on() -> None:
    """No sweep recorded: the benchmarks' range, labelled; nothing but a dry run posted."""
    server = FakeServer({"messages": 1_000, "sessions": 0}, rate=200)
    out = io.StringIO()
    assert command(server, out).run(None, ["messages", "sessions"], None, [10], False) == 0
    posts = [body for method, _, body in server.calls if method == "POST"]
    assert posts == [{"dry_run": True, "as_of": None, "rules": ["messages", "sessions"]}]
    assert not any(method == "DELETE" for method, _, _ in server.calls)
    text = " ".join(out.getvalue().split())
    assert "no sweep recorded on this server" in text and "benchmarks" in text
    assert "nothing deleted" in text and "sweep_adaptive_pace off" in text
    # 100 purges at 30-70 ms: 3-7 s, about 4.6 s (the range's geometric middle).
    assert "about 4.6 s (range 3.0 s - 7.0 s" in text
    assert "[1] no sweep recorded on this server" in text


def test_r1_piped_estimate_draws_ascii_and_its_json_lists_rules_in_rule_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Off a terminal the table is plain ASCII; ``--json`` keeps the sweep's rule order
    (messages before attachments), not the alphabet."""
    server = FakeServer({"messages": 1_000, "attachments": 10}, rate=200)
    out = io.StringIO()
    assert command(server, out).run(None, ["messages", "attachments"], None, [10], False) == 0
    assert "|" in out.getvalue() and not any(c in out.getvalue() for c in "┏━┃│")
    assert (
        command(server, io.StringIO()).run(None, ["messages", "attachments"], None, [], True) == 0
    )
    record = json.loads(capsys.readouterr().out)
    assert list(record["rules"]) == ["messages", "attachments"]


def test_r1_the_sample_is_refused_under_the_modules_dry_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = FakeServer({"messages": 1_000}, rate=200, settings={**SETTINGS, "dry_run": True})
    status = command(server, io.StringIO()).run(None, ["messages"], 5, [], False, yes=True)
    assert status == 2
    assert "dry_run: true" in capsys.readouterr().err
    assert [m for m, _, _ in server.calls] == ["GET"]


def test_r1_the_sample_is_refused_without_yes_off_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = FakeServer({"messages": 1_000}, rate=200)
    cmd = command(server, io.StringIO(), interactive=lambda: False)
    assert cmd.run(None, ["messages"], 5, [], False) == 2
    assert "--yes" in capsys.readouterr().err
    assert [m for m, _, _ in server.calls] == ["GET"]


def test_r1_a_confirmed_sample_deletes_then_calibrates_what_is_left(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The sample deals with 1,000 items in 5 s (100 purges: 50 ms each, under the pace
    now in force); 9,000 items in 900 rooms are left: 45 s."""
    server = FakeServer({"messages": 10_000}, rate=200)
    cmd = command(server, io.StringIO(), interactive=lambda: True, ask=lambda p: "yes")
    assert cmd.run(None, ["messages"], 5, [100], True) == 0
    record = json.loads(capsys.readouterr().out)
    posts = [body["dry_run"] for method, _, body in server.calls if method == "POST"]
    assert posts == [True, False]
    assert record["sampled"] == {"messages": 1_000}
    messages = record["rules"]["messages"]
    assert messages["items"] == 9_000 and messages["rooms"] == 900
    assert messages["estimate_s"] == 45.0
    assert "recorded sweep(s) under the pace now in force" in messages["measured_on"]
    assert record["projections"] == {"100": 4500.0}


def test_estimate_reports_a_refusal_with_exit_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    class Busy:
        def call(self, method: str, path: str, body: Any = None) -> Any:
            if path == "/sweep/settings":
                return SETTINGS
            raise AdminApiError(409, "M_LIMIT_EXCEEDED", "A sweep is already running")

    assert (
        EstimateCommand(Busy(), Console(file=io.StringIO())).run(None, None, None, [], False) == 2
    )
    assert "409 M_LIMIT_EXCEEDED" in capsys.readouterr().err
    assert BENCHMARK_SOURCE  # the fallback's label exists for the output above


def test_estimate_bad_arguments(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    for bad in (["--project", "0"], ["--sample-seconds", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["estimate", "--url", "http://x", "--token-file", str(token), *bad])
        assert exit_info.value.code == 2
    assert "not a positive factor" in capsys.readouterr().err
