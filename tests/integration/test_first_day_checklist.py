"""The operator guide's first-day checklist, run against a real server (R1-R15),
SQLite and PostgreSQL, so that the guide cannot drift from the code.

The checklist's section of ``docs/operator-guide.md`` is read as it is: its
``<!-- checklist: config -->`` YAML block is the homeserver.yaml snippet the server
starts with (``example.org`` read as the test server's name, the mailer pointed at a
local SMTP sink), and its ``<!-- checklist: restart -->`` block is applied to the
module's config before the server restarts, as an operator edits the file. Every ``$ ``
line of its ``console`` blocks runs in a shell, in order, with the variables the section
sets (``SERVER``, ``HS``, ``TOKEN_FILE``, ``LUX``, ``AUTH``, ``METRICS``); each must
exit as shown (``(exit status N)``, else 0) and print the lines shown, in order, with
numbers, durations and IDs masked.

Time: the owner's messages are backdated 25 months (rows' timestamps), so they are past
``retention.messages`` (24 months, R1) as on a server with history.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import DATABASES, StartSynapse
from tests.harness import SynapseServer
from tests.harness.smtp import SmtpSink
from tests.harness.synapse_server import SERVER_NAME, deep_merge

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
GUIDE = REPO_ROOT / "docs" / "operator-guide.md"
SECTION = "## First day: a checklist"
GUIDE_SERVER = "example.org"
MONTH_MS = 30 * 86_400_000
BLOCK = re.compile(r"(?:<!-- checklist: (\w+) -->\n)?```(\w+)\n(.*?)```", re.DOTALL)
# A table's lines: drawn with box characters on a terminal (as the guide shows them),
# in ASCII when piped (as this test runs the commands: formatting.table_box).
TABLE = re.compile(r"[│┃┏┓┗┛━─┡┩└┘┌┐╇┼┳┻┬┴├┤╭╮╰╯|]")
ASCII_BORDER = re.compile(r"[+\-= ]*")
DURATION = re.compile(r"\d+ h \d\d min|\d+ min \d\d s|\d+(\.\d)? s\b")
MASKS = (
    (TABLE, " "),
    (re.compile(r"[0-9a-f]{32}"), "<id>"),
    (re.compile(r"![A-Za-z0-9_-]+(:[A-Za-z0-9.-]+)?"), "<room>"),
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"), "<time>"),
    (DURATION, "<duration>"),
    (re.compile(r"\d+(\.\d+)?(e[+-]?\d+)?"), "<n>"),
)


def checklist() -> list[tuple[str, str]]:
    """The section's blocks in order: ("config" | "restart" | "console", text)."""
    text = GUIDE.read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    blocks = []
    for mark, language, body in BLOCK.findall(text[start:end]):
        if mark:
            blocks.append((mark, body))
        elif language == "console":
            blocks.append(("console", body))
    return blocks


def commands(console: str) -> list[tuple[str, list[str], int]]:
    """Each ``$ `` command of a console block, the lines shown after it, its exit status."""
    out: list[tuple[str, list[str], int]] = []
    for line in console.splitlines():
        if line.startswith("$ "):
            out.append((line[2:], [], 0))
        elif out:
            command, shown, _ = out[-1]
            status = re.fullmatch(r"\(exit status (\d+)\)", line.strip())
            if status:
                out[-1] = (command, shown, int(status.group(1)))
            else:
                shown.append(line)
    return out


def masked(line: str) -> str:
    for pattern, mask in MASKS:
        line = pattern.sub(mask, line)
    if ASCII_BORDER.fullmatch(line):
        return ""
    return " ".join(line.split())


def shown_lines(lines: list[str]) -> list[str]:
    """The lines a command's output must have (a table's rows as their cells): tables'
    borders and ``...`` left out."""
    kept = [masked(line) for line in lines if line.strip() != "..."]
    return [line for line in kept if line]


def appears_in_order(shown: list[str], printed: list[str]) -> list[str]:
    """The shown lines missing from what was printed (in order)."""
    missing, at = [], 0
    for line in shown:
        try:
            at = printed.index(line, at) + 1
        except ValueError:
            missing.append(line)
    return missing


def guide_config(text: str, smtp: SmtpSink) -> dict[str, Any]:
    """A checklist YAML block as this test server's: its name, the local mailer."""
    config: dict[str, Any] = yaml.safe_load(text.replace(GUIDE_SERVER, SERVER_NAME))
    if "email" in config:
        email = {"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "enable_tls": False}
        config["email"] = {**config["email"], **email}
    return config


def backdate_messages(hs: SynapseServer, rooms: list[str], ts: int) -> None:
    marks = ", ".join("?" for _ in rooms)
    hs.db().execute(
        "UPDATE events SET origin_server_ts = ?, received_ts = ?"
        f" WHERE type = 'm.room.message' AND room_id IN ({marks})",
        (ts, ts, *rooms),
    )


def rotate_logs(hs: SynapseServer) -> None:
    """The harness logs to a plain file, which keeps IP addresses for ever; an operator
    rotates logs within ``logs.ip_retention`` (R9; the guide's Log files section), and
    ``check-config`` reads the log config: rotate daily, keep 30 days."""
    path = hs.dir / "log.config"
    log_config = yaml.safe_load(path.read_text())
    handler = log_config["handlers"]["file"]
    handler.update(
        {
            "class": "logging.handlers.TimedRotatingFileHandler",
            "when": "midnight",
            "backupCount": 30,
        }
    )
    path.write_text(yaml.safe_dump(log_config))


@pytest.fixture
def smtp() -> Any:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.mark.parametrize("database", DATABASES)
def test_r1_r15_the_first_day_checklist_runs_as_the_guide_shows(
    start_synapse: StartSynapse, database: str, tmp_path: Path, smtp: SmtpSink
) -> None:
    """Every command of the checklist, against a server started from its snippet: each
    exits and prints as the guide shows; the dry run, the estimate and the refused
    sample delete nothing before the restart with ``dry_run: false`` (R1)."""
    blocks = checklist()
    assert [kind for kind, _ in blocks if kind != "console"] == ["config", "restart"], blocks
    snippet = next(body for kind, body in blocks if kind == "config")
    config = guide_config(snippet, smtp)
    (entry,) = config.pop("modules")
    hs = start_synapse(database, entry["config"], config)
    rotate_logs(hs)
    admin = hs.register_user("privacy-admin", admin=True)
    owner = hs.register_user("alice")
    rooms = [owner.create_room() for _ in range(3)]
    for room in rooms:
        for i in range(20):
            owner.send_message(room, f"m{i}")
    backdate_messages(hs, rooms, int(time.time() * 1000) - 25 * MONTH_MS)
    stored = hs.db().number("SELECT COUNT(*) FROM events WHERE type = 'm.room.message'")
    token_file = tmp_path / "token"
    token_file.write_text(admin.access_token)
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=str(REPO_ROOT),
        NO_COLOR="1",
        COLUMNS="160",
        SERVER=hs.base_url,
        HS=str(hs.config_path),
        TOKEN_FILE=str(token_file),
        LUX=f"{hs.base_url}/_synapse/client/lux_privacy/v1",
        AUTH=f"Authorization: Bearer {admin.access_token}",
        METRICS=f"{hs.base_url}/_synapse/metrics",
    )
    ran = 0
    for kind, body in blocks:
        if kind == "restart":
            # Nothing was deleted before the operator turns dry_run off (R1).
            assert (
                hs.db().number("SELECT COUNT(*) FROM events WHERE type = 'm.room.message'")
                == stored
            )
            (change,) = guide_config(body, smtp)["modules"]
            hs.config["modules"][0]["config"] = deep_merge(
                hs.config["modules"][0]["config"], change["config"]
            )
            hs.config_path.write_text(yaml.safe_dump(hs.config, sort_keys=False))
            hs.restart()
            continue
        if kind != "console":
            continue
        for command, shown, status in commands(body):
            run = subprocess.run(
                ["bash", "-c", command.replace(GUIDE_SERVER, hs.server_name)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
                cwd=tmp_path,
                timeout=300,
                check=False,
            )
            output = run.stdout.replace(hs.server_name, GUIDE_SERVER)
            print(f"\n$ {command}\n{output}", end="")
            assert run.returncode == status, f"$ {command}\n{output}"
            assert shown, f"the guide shows no output for: $ {command}"
            printed = [masked(line) for line in output.splitlines()]
            missing = appears_in_order(shown_lines(shown), printed)
            assert not missing, f"$ {command}\n{output}\nnot printed: {missing}"
            ran += 1
    assert ran >= 11
    assert hs.db().number("SELECT COUNT(*) FROM events WHERE type = 'm.room.message'") < stored
