"""The operator's commands against a real server (R1, R14), SQLite and PostgreSQL.

``synapse-lux-privacy sweep`` and ``report`` run as subprocesses (``python -m
synapse_lux_privacy``), as an operator would run them, against a server holding a
few thousand events. The live progress bars are captured through a pseudo-terminal
(``pty``), so ``rich`` draws them as on an operator's screen; piped output gives the
plain progress lines of a log.

Time: the sweeps run "as of" a date 25 months ahead (``--as-of`` as an ISO date,
``allow_future_sweeps: true``), so every message sent now is past its 24 months (R1).
"""

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DATABASES, StartSynapse
from tests.harness import MatrixClient, SynapseServer, uid

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
ROOMS = 3
MESSAGES_PER_ROOM = 300
SWEEP_BATCH = 20
SEND_THREADS = 16
# Terminal controls: rich redraws the display by moving the cursor up and erasing lines,
# and makes headers bold (no colours: NO_COLOR). Styles and the cursor's visibility are
# dropped, every other control becomes a line break, so every frame drawn can be read.
STYLES = re.compile(r"\x1b\[[0-9;]*m|\x1b\[\?25[hl]")
CONTROLS = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")
# A rule's line in the live display: name, bar (pulsing: blocks and gaps), "dealt
# with/candidates", del(eted) n, and "done" once the rule is done.
BAR_LINE = re.compile(r"^messages\s+[━\s]*?(\d+)/(\d+)\s+del (\d+)\b.*?(done)?$")


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "synapse_lux_privacy", *args]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The command run to its end with its output captured, as a script or a log sees it."""
    return subprocess.run(
        cli(*args),
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=REPO_ROOT,
        check=False,
        timeout=300,
    )


def cli_env() -> dict[str, str]:
    """The worktree's code, a terminal type rich draws bars on, no colour codes."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TERM="xterm", NO_COLOR="1")
    env.pop("COLUMNS", None)
    return env


def _ctrl_c_as_on_a_terminal() -> None:
    """Ctrl-C (SIGINT) delivered as on an operator's terminal. A test run started in the
    background (``cmd &`` in a script) inherits SIGINT ignored, and Python then installs
    no KeyboardInterrupt handler: the command would never see the Ctrl-C it is sent."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Terminal:
    """A command run on a pseudo-terminal of 120 x 40; its whole output, ANSI removed."""

    def __init__(self, argv: list[str]) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=cli_env(),
            cwd=REPO_ROOT,
            preexec_fn=_ctrl_c_as_on_a_terminal,
        )
        os.close(slave)
        self._master = master
        self._raw = b""

    def read(self, timeout: float) -> bool:
        """Read what is there within ``timeout``; False once the command has closed it."""
        ready, _, _ = select.select([self._master], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self._master, 65536)
        except OSError:  # EIO: the command has exited and the terminal is closed
            chunk = b""
        self._raw += chunk
        return bool(chunk)

    def text(self) -> str:
        raw = STYLES.sub("", self._raw.decode("utf-8", "replace"))
        lines = CONTROLS.sub("\n", raw).splitlines()
        return "\n".join(line.rstrip() for line in lines if line.strip())

    def finish(self, timeout: float = 300) -> int:
        deadline = time.monotonic() + timeout
        while self.read(1):
            assert time.monotonic() < deadline, f"the command did not end:\n{self.text()}"
        os.close(self._master)
        return self.proc.wait(30)


def bar_frames(text: str) -> list[tuple[bool, int, int, int]]:
    """(finished, dealt with, candidates, deleted) of the ``messages`` bar in each frame."""
    frames = []
    for line in text.splitlines():
        match = BAR_LINE.match(line.strip())
        if match:
            done, candidates, deleted, finished = match.groups()
            frames.append((finished is not None, int(done), int(candidates), int(deleted)))
    return frames


def table_row(text: str, rule: str) -> list[str]:
    """The cells of a rule's row in the final table."""
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]
        if cells and cells[0] == rule:
            return cells
    raise AssertionError(f"no {rule} row in:\n{text}")


def bodies_left(hs: SynapseServer, rooms: list[str]) -> int:
    """Messages of these rooms whose stored JSON still has a body."""
    marks = ", ".join("?" for _ in rooms)
    rows = hs.db().query(
        "SELECT ej.json FROM events AS e JOIN event_json AS ej ON ej.event_id = e.event_id"
        f" WHERE e.type = 'm.room.message' AND e.room_id IN ({marks})",
        rooms,
    )
    return sum("body" in json.loads(r[0])["content"] for r in rows)


def sweep_record(admin: MatrixClient, sweep_id: str) -> dict[str, Any]:
    code, body = admin.lux("GET", f"/sweeps/{sweep_id}")
    assert code == 200, body
    record: dict[str, Any] = body
    return record


def stored_messages(hs: SynapseServer, rooms: list[str]) -> int:
    marks = ", ".join("?" for _ in rooms)
    return hs.db().number(
        f"SELECT COUNT(*) FROM events WHERE type = 'm.room.message' AND room_id IN ({marks})",
        rooms,
    )


@pytest.mark.parametrize("database", DATABASES)
def test_r1_r14_operator_cli_follows_a_background_sweep_and_prints_reports(
    start_synapse: StartSynapse, database: str, tmp_path: Path
) -> None:
    """Ctrl-C cancels the sweep on the server; a full run draws bars whose counts grow to
    every message, then the table; ``--json`` and piped output serve scripts and logs;
    ``report`` prints the R14 report; a bad token exits 2 with the Matrix error."""
    hs = start_synapse(database, {"allow_future_sweeps": True, "sweep_batch_size": SWEEP_BATCH})
    admin = hs.register_user(uid("admin"), admin=True)
    owner = hs.register_user(uid("owner"))
    rooms = [owner.create_room() for _ in range(ROOMS)]
    jobs = [(room, i) for room in rooms for i in range(MESSAGES_PER_ROOM)]
    with ThreadPoolExecutor(SEND_THREADS) as pool:
        list(pool.map(lambda j: owner.send_message(j[0], f"m{j[1]}"), jobs))
    total = stored_messages(hs, rooms)
    token_file = tmp_path / "token"
    token_file.write_text(f"{admin.access_token}\n")
    as_of = (datetime.now(UTC) + timedelta(days=760)).date().isoformat()
    sweep_args = ["--url", hs.base_url, "--token-file", str(token_file), "--as-of", as_of]
    sweep_args += ["--rules", "messages", "--interval", "0.1"]

    # A forecast, piped as into a log: plain progress lines, then the table.
    piped = run_cli("sweep", *sweep_args, "--dry-run")
    assert piped.returncode == 0, piped.stdout + piped.stderr
    assert re.search(r"^\[\s*\d+ s\] ", piped.stdout, re.MULTILINE), piped.stdout
    assert "dry run" in piped.stdout
    forecast = table_row(piped.stdout, "messages")
    assert int(forecast[1]) >= total - ROOMS and int(forecast[2]) == 0, piped.stdout

    # Ctrl-C once some batches are deleted: the server is asked to stop the sweep.
    interrupted = Terminal(cli("sweep", *sweep_args))
    deadline = time.monotonic() + 120
    while not any(f[3] > 0 for f in bar_frames(interrupted.text())):
        assert interrupted.read(0.5) or interrupted.proc.poll() is None, interrupted.text()
        assert time.monotonic() < deadline, interrupted.text()
    interrupted.proc.send_signal(signal.SIGINT)
    assert interrupted.finish() == 130, interrupted.text()
    match = re.search(r"sweep (\w+) was asked to stop", interrupted.text())
    assert match, interrupted.text()
    deadline = time.monotonic() + 60
    while (record := sweep_record(admin, match.group(1)))["status"] == "running":
        assert time.monotonic() < deadline, record
        time.sleep(0.2)
    assert record["status"] == "cancelled", record
    left = stored_messages(hs, rooms)
    assert 0 < left < total

    # The full run: bars whose counts grow, then the table.
    screen = Terminal(cli("sweep", *sweep_args))
    assert screen.finish() == 0, screen.text()
    output = screen.text()
    frames = bar_frames(output)
    done = [f[1] for f in frames]
    assert done == sorted(done) and len(set(done)) >= 3, frames
    assert frames[-1][0] and frames[-1][1] == frames[-1][2]
    row = table_row(output, "messages")
    assert int(row[2]) == frames[-1][3] >= left - ROOMS, output
    assert bodies_left(hs, rooms) == 0  # purged, or expunged where a purge cannot reach

    # Scripts: --json gives the final record only; nothing is left to do.
    scripted = run_cli("sweep", *sweep_args, "--json")
    assert scripted.returncode == 0, scripted.stderr
    final = json.loads(scripted.stdout)
    assert final["status"] == "completed"
    assert final["results"]["messages"]["candidates"] == 0

    # R14: the owner's report, readable and as JSON.
    report_args = ["--url", hs.base_url, "--token-file", str(token_file)]
    readable = run_cli("report", str(owner.user_id), *report_args)
    assert readable.returncode == 0, readable.stderr
    lines = readable.stdout.splitlines()
    assert lines[0] == owner.user_id
    assert any(re.match(r"\s+legal hold:\s+no$", line) for line in lines), readable.stdout
    assert any(re.match(r"\s+last active:\s+\d{4}-\d\d-\d\d ", line) for line in lines)
    as_json = run_cli("report", str(owner.user_id), *report_args, "--json")
    assert json.loads(as_json.stdout)["user_id"] == owner.user_id

    # A token that is not an admin's: the Matrix error, exit status 2.
    token_file.write_text(str(owner.access_token))
    refused = run_cli("report", str(owner.user_id), *report_args)
    assert refused.returncode == 2
    assert refused.stderr.startswith("error: the server answered 403 M_FORBIDDEN: ")
    lines = output.splitlines()
    middle = [i for i, line in enumerate(lines) if BAR_LINE.match(line.strip())]
    print(f"\n--- sweep on a terminal ({database}): a frame mid-sweep, the last frame, table ---")
    print("\n".join(lines[middle[len(middle) // 2] : middle[len(middle) // 2] + 2]))
    print("\n".join(lines[middle[-1] :]))
    print(f"--- piped ({database}) ---\n{piped.stdout}")
    print(f"--- report ({database}) ---\n{readable.stdout}")


def audit_rows(admin: MatrixClient) -> list[Any]:
    code, body = admin.lux("GET", "/audit?limit=1000")
    assert code == 200, body
    rows: list[Any] = body if isinstance(body, list) else body["audit"]
    return rows


@pytest.mark.parametrize("database", DATABASES)
def test_r1_estimate_deletes_nothing_unless_a_sample_is_asked_for_and_confirmed(
    start_synapse: StartSynapse, database: str, tmp_path: Path
) -> None:
    """``synapse-lux-privacy estimate`` by default: a dry run and the cost model, no
    stored message and no audit row changes, and a fresh server says its figures are the
    benchmarks'. A sample (``--sample-seconds``) piped without ``--yes`` is refused
    (exit 2, nothing deleted); with ``--yes`` it deletes some due messages (and nothing
    else), is stopped, and the rest is estimated at the pace it measured on this server
    (``sweep_pace`` keeps the sample from finishing the backlog). Time: "as of" a date 25
    months ahead (``--as-of``, ``allow_future_sweeps``)."""
    hs = start_synapse(
        database, {"allow_future_sweeps": True, "sweep_batch_size": 10, "sweep_pace": 40}
    )
    admin = hs.register_user(uid("admin"), admin=True)
    owner = hs.register_user(uid("owner"))
    rooms = [owner.create_room() for _ in range(2)]
    jobs = [(room, i) for room in rooms for i in range(200)]
    with ThreadPoolExecutor(SEND_THREADS) as pool:
        list(pool.map(lambda j: owner.send_message(j[0], f"m{j[1]}"), jobs))
    before = stored_messages(hs, rooms)
    assert bodies_left(hs, rooms) == before
    audit_before = audit_rows(admin)
    token_file = tmp_path / "token"
    token_file.write_text(admin.access_token)
    as_of = (datetime.now(UTC) + timedelta(days=760)).date().isoformat()
    args = ["--url", hs.base_url, "--token-file", str(token_file), "--as-of", as_of]
    args += ["--rules", "messages,attachments", "--interval", "0.2"]

    run = run_cli("estimate", *args, "--project", "100", "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    estimate = json.loads(run.stdout)
    messages = estimate["rules"]["messages"]
    assert messages["items"] >= before - len(rooms) and messages["rooms"] > 0
    assert "no sweep recorded on this server" in messages["measured_on"]
    assert messages["low_s"] <= messages["estimate_s"] <= messages["high_s"]
    assert estimate["rules"]["attachments"]["estimate_s"] == 0.0
    assert estimate["sampled"] == {}
    assert stored_messages(hs, rooms) == before and bodies_left(hs, rooms) == before
    assert audit_rows(admin) == audit_before
    code, listed = admin.lux("GET", "/sweeps")
    assert code == 200 and [s["dry_run"] for s in listed["sweeps"]] == [True], listed

    # A sample off a terminal without --yes: refused before anything runs.
    refused = run_cli("estimate", *args, "--sample-seconds", "2")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "--yes" in refused.stderr
    assert bodies_left(hs, rooms) == before and audit_rows(admin) == audit_before

    sampled = run_cli("estimate", *args, "--sample-seconds", "2", "--yes", "--json")
    assert sampled.returncode == 0, sampled.stdout + sampled.stderr
    measured = json.loads(sampled.stdout)
    done = measured["sampled"]["messages"]
    assert 0 < done < messages["items"]
    assert measured["rules"]["messages"]["items"] == messages["items"] - done
    assert "under the pace now in force" in measured["rules"]["messages"]["measured_on"]
    # The sample deleted (purged or expunged) what it dealt with, no more, audited.
    assert bodies_left(hs, rooms) == before - done
    assert len(audit_rows(admin)) > len(audit_before)
    code, listed = admin.lux("GET", "/sweeps")
    statuses = [(s["dry_run"], s["status"]) for s in listed["sweeps"][:2]]
    assert statuses == [(False, "cancelled"), (True, "completed")], listed
    readable = run_cli("estimate", *args)
    assert readable.returncode == 0, readable.stderr
    assert re.search(r"^sweep time: about \d+", readable.stdout, re.MULTILINE), readable.stdout
    print(f"\n--- estimate ({database}) ---\n{readable.stdout}")
