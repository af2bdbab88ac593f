"""``synapse-lux-privacy export`` and ``erase`` without a server (R14)."""

import argparse
import zipfile
from pathlib import Path
from typing import Any

import pytest

from synapse_lux_privacy.admin_cli import erase_command
from synapse_lux_privacy.admin_cli.client import AdminApiError
from synapse_lux_privacy.admin_cli.export_command import verify
from synapse_lux_privacy.admin_cli.polling import polling_interval
from synapse_lux_privacy.cli import main


def test_r14_export_verify_refuses_a_short_or_broken_archive(tmp_path: Path) -> None:
    good = tmp_path / "a.zip"
    with zipfile.ZipFile(good, "w") as archive:
        archive.writestr("README.txt", "x")
    size = good.stat().st_size
    assert verify(str(good), size, size) is None
    assert "recorded" in str(verify(str(good), size - 1, size))
    bad = tmp_path / "b.zip"
    bad.write_bytes(b"not a zip")
    assert "zip" in str(verify(str(bad), 9, 9))


class _Client:
    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str, Any]] = []

    def call(self, method: str, path: str, body: Any = None) -> Any:
        self.calls.append((method, path, body))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def _args(yes: bool) -> argparse.Namespace:
    return argparse.Namespace(user_id="@alice:x", reason="art. 17", yes=yes, interval=0)


def test_r14_erase_asks_for_the_user_id_and_does_nothing_without_it() -> None:
    client = _Client([])
    code = erase_command.run(_args(False), client, ask=lambda _: "@bob:x")  # type: ignore[arg-type]
    assert code == erase_command.EXIT_FAILED and client.calls == []


@pytest.mark.parametrize("yes", [True, False])
def test_r14_erase_posts_the_reason_and_follows_to_the_end(yes: bool) -> None:
    done = {"status": "completed", "media_deleted": 2, "media_bytes": 10, "provider_objects": 4}
    client = _Client([{"erasure_id": "e" * 32}, {"status": "running"}, done])
    code = erase_command.run(
        _args(yes),
        client,  # type: ignore[arg-type]
        ask=lambda _: "@alice:x",
        sleep=lambda _: None,
    )
    assert code == erase_command.EXIT_OK
    assert client.calls[0] == ("POST", "/users/%40alice%3Ax/erase", {"reason": "art. 17"})
    assert client.calls[-1][1] == f"/users/%40alice%3Ax/erasures/{'e' * 32}"


def test_r13_erase_of_a_held_user_exits_2_with_the_servers_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = _Client([AdminApiError(409, "M_LUX_HELD", "a legal hold covers @alice:x")])
    assert erase_command.run(_args(True), client) == erase_command.EXIT_API_ERROR  # type: ignore[arg-type]
    assert "M_LUX_HELD" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["export", "erase"])
@pytest.mark.parametrize("interval", ["-1", "0", "nan", "inf", "1e9", "two"])
def test_r14_a_polling_interval_that_would_hammer_or_never_poll_is_refused_naming_it(
    command: str, interval: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--interval`` of ``export`` and ``erase`` (R14): a negative, zero, NaN, infinite,
    huge or non-numeric value is an argument error (exit 2, the value named), before
    anything reaches the server."""
    argv = [command, "@alice:example.org", "--interval", interval, "--url", "http://x"]
    argv += ["--token-file", "t"]
    argv += ["--out", "a.zip"] if command == "export" else ["--reason", "art. 17"]
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--interval" in err and repr(interval) in err


def test_r14_a_sensible_polling_interval_is_taken() -> None:
    assert polling_interval("0.5") == 0.5
    assert polling_interval("3600") == 3600.0
