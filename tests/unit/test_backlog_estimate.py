"""``synapse-lux-privacy estimate`` (R1-R12 sweeps): the arithmetic of a backlog estimate
(pure), and the command's steps over a fake admin API whose sweeps advance on an
injected clock (no server, no sleeping)."""

import io
import json
from typing import Any

import pytest
from rich.console import Console

from synapse_lux_privacy.admin_cli.backlog import BacklogEstimate, RuleForecast, worth_sampling
from synapse_lux_privacy.admin_cli.client import AdminApiError
from synapse_lux_privacy.admin_cli.estimate_command import (
    EstimateCommand,
    parse_factor,
    parse_sample_seconds,
    tried,
)
from synapse_lux_privacy.cli import main


def test_r1_time_left_is_what_the_sample_did_not_reach_at_the_sample_rate() -> None:
    rule = RuleForecast("messages", candidates=10_000, held=500, sampled=1_000, sample_s=4.0)
    assert rule.rate_per_s == 250.0
    assert rule.left == 9_000
    assert rule.estimate_s == 36.0
    done = RuleForecast("attachments", candidates=80, held=0, sampled=80, sample_s=2.0)
    assert done.left == 0 and done.estimate_s == 0.0
    idle = RuleForecast("sessions", candidates=0, held=0)
    assert idle.rate_per_s is None and idle.estimate_s == 0.0
    unsampled = RuleForecast("accounts", candidates=12, held=0)
    assert unsampled.estimate_s is None


def test_r1_the_whole_backlog_adds_the_samples_and_projects_in_proportion() -> None:
    result = BacklogEstimate(
        dry_run_s=3.0,
        rules=(
            RuleForecast("messages", 10_000, 0, 1_000, 4.0),
            RuleForecast("attachments", 80, 0, 80, 2.0),
        ),
    )
    assert result.left_s == 36.0
    assert result.whole_s == 42.0
    assert result.project(100) == 4_200.0
    unknown = BacklogEstimate(1.0, (RuleForecast("accounts", 12, 0),))
    assert unknown.left_s is None and unknown.whole_s is None and unknown.project(10) is None


def test_r13_a_rule_whose_candidates_are_all_held_is_not_sampled() -> None:
    assert worth_sampling(5, 0)
    assert not worth_sampling(5, 5)
    assert not worth_sampling(0, 0)


def test_r12_a_sample_counts_the_items_it_tried_not_those_its_stop_left() -> None:
    """Stopping a rule deleted item by item (accounts) leaves the rest of its batch
    untried, counted as skipped ``sweep_stopped``: they are not part of the sample."""
    result = {
        "candidates": 494,
        "deleted": 20,
        "held": 0,
        "errors": 1,
        "skipped": 473,
        "skipped_reasons": {"sweep_stopped": 470, "held_or_active_again": 3},
    }
    assert tried(result) == 24
    assert tried({"candidates": 5, "deleted": 5}) == 5


def test_sample_length_and_factor_are_checked() -> None:
    assert parse_sample_seconds("0") == 0.0
    assert parse_sample_seconds("2.5") == 2.5
    assert parse_factor("100") == 100.0
    for bad in ("-1", "x", "nan", "inf"):
        with pytest.raises(ValueError, match="seconds"):
            parse_sample_seconds(bad)
    for bad in ("0", "-3", "many", "nan"):
        with pytest.raises(ValueError, match="factor"):
            parse_factor(bad)


class FakeServer:
    """Sweeps that deal with ``rate`` items per second of the injected clock: a dry run
    ends at once with the given candidates; a real one stops when asked or when done."""

    def __init__(self, candidates: dict[str, int], rate: float) -> None:
        self.now = 0.0
        self.candidates = candidates
        self.rate = rate
        self.calls: list[tuple[str, str, Any]] = []
        self._sweeps: dict[str, dict[str, Any]] = {}

    def call(self, method: str, path: str, body: Any = None) -> Any:
        self.calls.append((method, path, body))
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
            results = {r: {"candidates": self.candidates[r], "held": 0} for r in rules}
            return {"status": "completed", "results": results, "started_ts": 0, "finished_ts": 1500}
        (rule,) = rules
        total = self.candidates[rule]
        end = sweep["stop"] if sweep["stop"] is not None else self.now
        dealt = min(total, int((end - start) * self.rate))
        finished = dealt == total or sweep["stop"] is not None
        return {
            "status": "cancelled"
            if finished and dealt < total
            else "completed"
            if finished
            else "running",
            "results": {rule: {"candidates": dealt, "deleted": dealt, "held": 0}},
            "started_ts": int(start * 1000),
            "finished_ts": int(end * 1000) if finished else None,
        }


def run_estimate(server: FakeServer, sample_s: float) -> tuple[int, str]:
    def sleep(seconds: float) -> None:
        server.now += seconds

    out = io.StringIO()
    command = EstimateCommand(
        server, Console(file=out, width=120), interval_s=0.5, sleep=sleep, clock=lambda: server.now
    )
    status = command.run(None, ["messages", "attachments", "sessions"], sample_s, [100], False)
    return status, out.getvalue()


def test_r1_estimate_runs_a_dry_run_then_stops_each_sample_at_its_length() -> None:
    server = FakeServer({"messages": 10_000, "attachments": 30, "sessions": 0}, rate=200)
    status, output = run_estimate(server, sample_s=5)
    assert status == 0
    posts = [body for method, _, body in server.calls if method == "POST"]
    assert posts[0]["dry_run"] is True
    # sessions has nothing to delete: not sampled; attachments ends before its sample does.
    assert [p["rules"] for p in posts[1:]] == [["messages"], ["attachments"]]
    assert [p["dry_run"] for p in posts[1:]] == [False, False]
    deletes = [path for method, path, _ in server.calls if method == "DELETE"]
    assert len(deletes) == 1  # only messages needed stopping
    # messages: 1,000 dealt with in 5 s, 9,000 left at 200/s: 45 s; attachments done at the
    # first poll (0.5 s): the whole backlog 50.5 s, 100 times larger 5,050 s.
    assert "45 s" in output and "dry run: 2 s" in output
    assert "a backlog 100 times larger: 1 h 24 min" in output


def test_r1_no_sample_gives_counts_and_says_the_time_is_unknown() -> None:
    server = FakeServer({"messages": 10, "attachments": 0, "sessions": 0}, rate=200)
    status, output = run_estimate(server, sample_s=0)
    assert status == 0
    assert [m for m, _, _ in server.calls].count("POST") == 1
    assert "time left: unknown" in output


def test_estimate_reports_a_refusal_with_exit_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    class Busy:
        def call(self, method: str, path: str, body: Any = None) -> Any:
            raise AdminApiError(409, "M_LIMIT_EXCEEDED", "A sweep is already running")

    command = EstimateCommand(Busy(), Console(file=io.StringIO()))
    assert command.run(None, None, 5, [], False) == 2
    assert "409 M_LIMIT_EXCEEDED" in capsys.readouterr().err


def test_estimate_json_and_bad_arguments(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    server = FakeServer({"messages": 400, "attachments": 0, "sessions": 0}, rate=100)
    out = io.StringIO()
    command = EstimateCommand(
        server,
        Console(file=out),
        interval_s=1,
        sleep=lambda s: setattr(server, "now", server.now + s),
        clock=lambda: server.now,
    )
    assert command.run(None, ["messages"], 2, [10], True) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["rules"]["messages"]["sampled"] == 200
    assert record["left_s"] == 2.0 and record["whole_s"] == 4.0
    assert record["projections"] == {"10": 40.0}
    token = tmp_path / "token"
    token.write_text("t")
    with pytest.raises(SystemExit) as exit_info:
        main(["estimate", "--url", "http://x", "--token-file", str(token), "--project", "0"])
    assert exit_info.value.code == 2
    assert "not a positive factor" in capsys.readouterr().err
