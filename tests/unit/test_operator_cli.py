"""``synapse-lux-privacy sweep`` and ``report`` (R1-R14 sweeps, R14 report): the pure
pieces (formatting, argument parsing, views) and the command's logic over a fake API."""

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from synapse_lux_privacy.admin_cli import formatting, polling, report_command, sweep_view
from synapse_lux_privacy.admin_cli.client import AdminApiError, _matrix_error, parse_url
from synapse_lux_privacy.admin_cli.errors import guarded
from synapse_lux_privacy.admin_cli.sweep_command import (
    SweepCommand,
    parse_as_of,
    parse_interval,
    parse_rules,
)
from synapse_lux_privacy.cli import main

DAY_MS = 86_400_000


def result(candidates: int = 0, deleted: int = 0, **more: Any) -> dict[str, Any]:
    return {"candidates": candidates, "deleted": deleted, "held": 0, "errors": 0, **more}


def sweep(status: str, current: str | None = None, **results: dict[str, Any]) -> dict[str, Any]:
    return {
        "sweep_id": "s1",
        "status": status,
        "as_of": 1_767_225_600_000,
        "dry_run": False,
        "started_ts": 1_000,
        "finished_ts": None if status == "running" else 61_000,
        "current_rule": current,
        "results": results,
        "rate_per_s": 12.5,
        "eta_s": None,
    }


def rendered(renderable: Any, width: int = 100) -> str:
    console = Console(file=io.StringIO(), width=width, no_color=True)
    console.print(renderable)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def test_formatting_of_times_sizes_and_durations() -> None:
    assert formatting.timestamp(1_767_225_600_000) == "2026-01-01 00:00:00 UTC"
    assert formatting.timestamp(None) == "-"
    assert [formatting.size(n) for n in (0, 1023, 1024, 1536 * 1024, 3 * 1024**4)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "1.5 MiB",
        "3.0 TiB",
    ]
    assert [formatting.duration(s) for s in (None, 0.4, 42, 185, 7620)] == [
        "-",
        "0 s",
        "42 s",
        "3 min 05 s",
        "2 h 07 min",
    ]


def test_r1_as_of_accepts_milliseconds_dates_and_times() -> None:
    assert parse_as_of("1767225600000") == 1_767_225_600_000
    assert parse_as_of("2026-01-01") == 1_767_225_600_000
    assert parse_as_of("2026-01-01T01:00:00+01:00") == 1_767_225_600_000
    assert parse_as_of("2026-01-02T00:00:00Z") == 1_767_225_600_000 + DAY_MS
    with pytest.raises(ValueError, match="neither milliseconds"):
        parse_as_of("next week")


def test_rules_and_interval_are_checked() -> None:
    assert parse_rules("messages, accounts") == ["messages", "accounts"]
    with pytest.raises(ValueError, match="unknown rule\\(s\\) mesages; rules are messages,"):
        parse_rules("mesages")
    with pytest.raises(ValueError, match="\\(none given\\)"):
        parse_rules(",")
    assert parse_interval("0.5") == 0.5
    for bad in ("0", "-1", "x", "nan"):
        with pytest.raises(ValueError, match="not a positive number"):
            parse_interval(bad)


def test_rules_before_the_current_one_are_done_and_after_it_waiting() -> None:
    running = sweep("running", "attachments", messages=result(3, 3), attachments=result(4, 1))
    rules = ["messages", "attachments", "quota"]
    assert sweep_view.rule_states(running, rules) == {
        "messages": "done",
        "attachments": "running",
        "quota": "waiting",
    }
    assert set(sweep_view.rule_states(sweep("cancelled"), rules).values()) == {"done"}


def test_progress_view_shows_a_bar_and_counts_per_rule() -> None:
    running = sweep(
        "running", "attachments", messages=result(3, 3), attachments=result(4, 1, skipped=1)
    )
    lines = rendered(sweep_view.progress_view(running, ["messages", "attachments", "quota"]))
    messages, attachments, quota, status = lines.splitlines()
    assert messages.startswith("messages ") and messages.endswith(" done")
    assert "     3/3      del 3      held 0    skip 0    err 0" in messages
    assert "     2/4      del 1      held 0    skip 1    err 0" in attachments
    assert quota.split() == ["quota", "waiting"]
    assert status == "sweep s1: running, rule attachments, 12.5 items/s"


def test_progress_line_for_logs() -> None:
    running = sweep("running", "messages", messages=result(40, 25, held=5))
    assert sweep_view.progress_line(running, 65) == (
        "[1 min 05 s] messages: 30/40 (deleted 25, held 5, skipped 0, errors 0);"
        " sweep s1: running, rule messages, 12.5 items/s"
    )


def test_results_table_has_every_count_a_total_and_the_skipped_reasons() -> None:
    done = sweep(
        "completed_with_errors",
        messages=result(10, 7, errors=1, bytes=2048),
        attachments=result(
            5, 2, skipped=3, bytes=1024, skipped_reasons={"avatar_in_use": 2, "newest_event": 1}
        ),
    )
    assert sweep_view.summary(done) == (
        "Sweep s1 completed_with_errors in 1 min 00 s, as of 2026-01-01 00:00:00 UTC"
    )
    text = rendered(sweep_view.results_table(done, ["messages", "attachments"]))
    rows = [line.split("│")[1:-1] for line in text.splitlines() if line.startswith("│")]
    cells = [[c.strip() for c in row] for row in rows]
    assert cells == [
        ["messages", "10", "7", "0", "0", "1", "2.0 KiB"],
        ["attachments", "5", "2", "0", "3", "0", "1.0 KiB"],
        ["total", "15", "9", "0", "3", "1", "3.0 KiB"],
    ]
    assert sweep_view.skipped_reasons(done) == [
        "skipped by attachments: avatar_in_use 2, newest_event 1"
    ]


def test_r14_report_lines_are_readable() -> None:
    report = {
        "user_id": "@alice:example.org",
        "legal_hold": False,
        "legal_hold_ids": [],
        "last_active_ts": 1_767_225_600_000,
        "storage": {"used_bytes": 2048, "quota_bytes": None},
        "sessions": [{"device_id": "ABC", "last_seen_ts": 1_767_225_600_000}],
    }
    assert report_command.report_lines(report) == [
        "@alice:example.org",
        "  legal hold:     no",
        "  legal hold ids: none",
        "  last active:    2026-01-01 00:00:00 UTC",
        "  storage:",
        "    used:  2.0 KiB (2048 bytes)",
        "    quota: -",
        "  sessions (1):",
        "    - device id ABC, last seen 2026-01-01 00:00:00 UTC",
    ]


def test_an_error_answer_gives_its_matrix_error() -> None:
    error = _matrix_error(403, '{"errcode": "M_FORBIDDEN", "error": "You are not a server admin"}')
    assert error.describe() == "the server answered 403 M_FORBIDDEN: You are not a server admin"
    assert _matrix_error(502, "<html>Bad\n gateway</html>").describe() == (
        "the server answered 502 M_UNKNOWN: <html>Bad gateway</html>"
    )
    assert AdminApiError(0, "", "Connection refused").describe() == (
        "cannot reach the server: Connection refused"
    )


class FakeApi:
    """Answers POST /sweeps, then the given sweep records in turn."""

    def __init__(self, records: list[dict[str, Any]], fail: AdminApiError | None = None) -> None:
        self.records = records
        self.fail = fail
        self.calls: list[tuple[str, str, Any]] = []

    def call(self, method: str, path: str, body: Any = None) -> Any:
        self.calls.append((method, path, body))
        if self.fail is not None:
            raise self.fail
        if method == "POST":
            return {"sweep_id": "s1"}
        if method == "GET":
            return self.records.pop(0)
        return {}


def run(
    api: FakeApi, as_json: bool, sleep: Any = lambda s: None, clock: Any = lambda: 0.0
) -> tuple[int, str]:
    """The command as ``cli.main`` runs it: through ``errors.guarded``."""
    out = io.StringIO()
    console = Console(file=out, width=120, no_color=True)
    command = SweepCommand(api, console, interval_s=0.5, sleep=sleep, clock=clock)
    status = guarded(lambda: command.run(False, 1_000, ["messages"], as_json))
    return status, out.getvalue()


def test_sweep_polls_until_the_end_prints_lines_then_the_table() -> None:
    api = FakeApi(
        [
            sweep("running", "messages", messages=result(5, 0)),
            sweep("running", "messages", messages=result(5, 0)),
            sweep("running", "messages", messages=result(10, 5)),
            sweep("completed", messages=result(10, 10)),
        ]
    )
    status, out = run(api, as_json=False)
    assert status == 0
    assert api.calls[0] == (
        "POST",
        "/sweeps",
        {"dry_run": False, "as_of": 1_000, "rules": ["messages"]},
    )
    assert [c[1] for c in api.calls[1:]] == ["/sweeps/s1"] * 4
    lines = out.splitlines()
    assert [line.split("]")[1].split(";")[0] for line in lines[:3]] == [
        " messages: 0/5 (deleted 0, held 0, skipped 0, errors 0)",  # printed once, not twice
        " messages: 5/10 (deleted 5, held 0, skipped 0, errors 0)",
        " sweep s1: completed, 12.5 items/s",
    ]
    assert any(line.startswith("| messages |") for line in lines)  # ASCII: not a terminal


@pytest.mark.parametrize(
    ("final", "code"),
    [("completed", 0), ("completed_with_errors", 1), ("cancelled", 1), ("interrupted", 1)],
)
def test_sweep_json_prints_only_the_final_record_and_exits_by_status(
    final: str, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = run(FakeApi([sweep(final, messages=result(1, 1))]), as_json=True)
    assert (status, out) == (code, "")
    assert json.loads(capsys.readouterr().out)["status"] == final


def test_ctrl_c_cancels_the_sweep_and_exits_130(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    api = FakeApi([sweep("running", "messages", messages=result(5, 1))])
    status, _ = run(api, as_json=True, sleep=interrupt)
    assert status == 130
    assert api.calls[-1] == ("DELETE", "/sweeps/s1", None)
    assert "sweep s1 was asked to stop after its current batch" in capsys.readouterr().err


def test_an_api_error_exits_2_with_the_matrix_error(capsys: pytest.CaptureFixture[str]) -> None:
    busy = AdminApiError(409, "M_LIMIT_EXCEEDED", "A sweep is already running")
    status, _ = run(FakeApi([], fail=busy), as_json=False)
    assert status == 2, "errors.guarded, as cli.main runs every command"
    assert capsys.readouterr().err == (
        "error: the server answered 409 M_LIMIT_EXCEEDED: A sweep is already running\n"
    )


def test_unreadable_or_empty_token_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = ["--url", "http://127.0.0.1:9"]
    assert main(["sweep", *server, "--token-file", str(tmp_path / "absent")]) == 2
    assert capsys.readouterr().err.startswith(f"error: cannot read {tmp_path / 'absent'}: ")
    (tmp_path / "empty").write_text("\n")
    assert main(["report", "@a:b", *server, "--token-file", str(tmp_path / "empty")]) == 2
    assert "is empty: it should hold a server admin's access token" in capsys.readouterr().err


def test_unreachable_server_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "token").write_text("secret")
    args = ["--url", "http://127.0.0.1:9", "--token-file", str(tmp_path / "token")]
    assert main(["report", "@a:b", *args]) == 2
    assert capsys.readouterr().err.startswith("error: cannot reach the server: ")


def test_the_url_must_be_http_or_https() -> None:
    assert parse_url("https://matrix.example.org") == "https://matrix.example.org"
    for bad in ("matrix.example.org", "ftp://x", "https://"):
        with pytest.raises(ValueError, match="is not an http:// or https:// URL"):
            parse_url(bad)


def test_r14_report_shows_periods_as_configured_and_empty_objects_as_none() -> None:
    """Issue 21: an account warning's ``lead_ms`` reads as the configuration writes it,
    and a server without storage providers shows ``provider copies: none``."""
    report = {
        "user_id": "@alice:example.org",
        "account_deletion_warnings": [
            {"lead_ms": 30 * DAY_MS, "sent_ts": 1_767_225_600_000, "addresses": 1}
        ],
        "media": {"count": 0, "provider_copies": {}},
    }
    assert report_command.report_lines(report) == [
        "@alice:example.org",
        "  account deletion warnings (1):",
        "    - lead 30d, sent 2026-01-01 00:00:00 UTC, addresses 1",
        "  media:",
        "    count:           0",
        "    provider copies: none",
    ]


def test_r14_report_shows_server_text_on_one_printable_line() -> None:
    """A hostile server's escape sequences and line breaks are shown escaped."""
    report = {"user_id": "@a:b\x1b[2J", "note": "one\ntwo\x07", "when_ts": 10**30}
    assert report_command.report_lines(report) == [
        "@a:b\\x1b[2J",
        "  note: one two\\x07",
        f"  when: {10**30} ms since the epoch",
    ]


def test_r1_sweep_json_lists_the_results_in_rule_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 21: ``--json`` keeps the order the rules run in, not the alphabet's."""
    out = io.StringIO()
    api = FakeApi([sweep("completed", sessions=result(1, 1), messages=result(2, 2))])
    command = SweepCommand(api, Console(file=out), sleep=lambda s: None, clock=lambda: 0.0)
    assert command.run(False, None, ["sessions", "messages"], True) == 0
    assert list(json.loads(capsys.readouterr().out)["results"]) == ["sessions", "messages"]


def test_r1_piped_sweep_output_draws_ascii_tables_only() -> None:
    """Issue 21: output to a file or a pipe has no box-drawing characters."""
    status, out = run(FakeApi([sweep("completed", messages=result(2, 2))]), as_json=False)
    assert status == 0
    assert out.isascii(), out
    assert "| total    |" in out


def test_r1_unknown_status_ends_the_wait_instead_of_polling_for_ever(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 25: the fake API has three records; an endless poll would run out of them."""
    api = FakeApi([sweep("paused"), sweep("paused"), sweep("completed")])
    status, _ = run(api, as_json=True)
    assert status == 2
    assert "has the status 'paused', which this command does not know" in capsys.readouterr().err
    assert len(api.records) == 2


class LostApi(FakeApi):
    """Answers once, then cannot be reached (a server that stopped mid-sweep)."""

    def call(self, method: str, path: str, body: Any = None) -> Any:
        if method == "GET" and not self.records:
            self.calls.append((method, path, body))
            raise AdminApiError(0, "", "127.0.0.1:8008 refused the connection")
        return super().call(method, path, body)


def test_r1_server_gone_mid_sweep_is_tried_for_a_while_then_says_how_to_follow(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 21: polling goes on for LOST_CONTACT_S (an injected clock: each sleep adds
    its seconds), then one line says the sweep may still run and how to follow it."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    api = LostApi([sweep("running", "messages", messages=result(5, 1))])
    status, _ = run(api, as_json=True, sleep=sleep, clock=lambda: now[0])
    err = capsys.readouterr().err.splitlines()
    assert status == 2
    polls = [c for c in api.calls if c[0] == "GET"]
    assert len(polls) == 1 + round(polling.LOST_CONTACT_S / 0.5) + 1
    assert err[0] == (
        "the server stopped answering; trying again for 30 s (cannot reach the server:"
        " 127.0.0.1:8008 refused the connection)"
    )
    assert err[-1] == (
        "error: the server has not answered for 30 s (cannot reach the server: 127.0.0.1:8008"
        " refused the connection). The sweep may still be running; if the server stopped,"
        " the next sweep marks it"
        " interrupted. Follow it with GET /_synapse/client/lux_privacy/v1/sweeps/s1 (or GET"
        " /_synapse/client/lux_privacy/v1/sweeps, the latest)"
    )


def test_r1_ctrl_c_during_the_cancel_request_exits_130_with_one_cancel(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 25: a second Ctrl-C while the cancel request waits leaves at once."""

    class Interrupted(FakeApi):
        def call(self, method: str, path: str, body: Any = None) -> Any:
            if method == "DELETE":
                self.calls.append((method, path, body))
                raise KeyboardInterrupt
            return super().call(method, path, body)

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    api = Interrupted([sweep("running", "messages", messages=result(5, 1))])
    status, _ = run(api, as_json=True, sleep=interrupt)
    assert status == 130
    assert [c[0] for c in api.calls].count("DELETE") == 1
    assert "may not have reached the server" in capsys.readouterr().err


def test_ctrl_c_while_the_command_starts_exits_130_without_a_traceback() -> None:
    """Issue 25: Ctrl-C while Synapse and rich are being imported (seconds at start-up),
    made exact by an import hook that raises KeyboardInterrupt when ``synapse`` is first
    imported, in a fresh interpreter started as ``python -m synapse_lux_privacy``."""
    code = (
        "import runpy, sys\n"
        "class CtrlC:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'synapse':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, CtrlC())\n"
        "sys.argv = ['synapse-lux-privacy', '--help']\n"
        "runpy.run_module('synapse_lux_privacy', run_name='__main__')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
        timeout=120,
    )
    assert (done.returncode, done.stderr) == (130, "interrupted\n")
