"""``synapse-lux-privacy export @alice:server --out alice.zip``: a data-subject access
export (R14, GDPR art. 15), from request to a verified archive on the operator's disk.

Starts the export (``POST /users/{id}/exports``), or follows an existing one
(``--export-id``, e.g. after the command was interrupted), shows a progress bar while
the server builds the archive (entries and bytes so far), keeps polling through
connection errors (the export goes on in the server), then downloads the archive to
``OUT.part``, checks that its size is the one the server recorded and that it opens
as a zip, and renames it to ``OUT``.

Exit status: 0 saved; 1 the export failed or the archive does not match; 2 the server
refused or could not be reached; 130 Ctrl-C (the export goes on in the server:
``--export-id`` resumes).
"""

import argparse
import os
import sys
import time
import zipfile
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

from synapse_lux_privacy.admin_cli import formatting
from synapse_lux_privacy.admin_cli.client import AdminApiError, AdminClient
from synapse_lux_privacy.admin_cli.polling import polling_interval

EXIT_OK, EXIT_FAILED, EXIT_API_ERROR, EXIT_CTRL_C = 0, 1, 2, 130
FINAL = ("completed", "failed", "expired")
# Connection errors tolerated in a row while polling (a proxy restarting, a blip).
MAX_POLL_ERRORS = 30


def add_parser(commands: Any, add_server_arguments: Callable[[Any], None]) -> None:
    parser = commands.add_parser(
        "export",
        help="export what the server holds about a user to a zip file (R14, GDPR art. 15)",
        description=__doc__.split("\n\n")[-1] if __doc__ else None,
    )
    parser.add_argument("user_id", metavar="USER_ID", help="a local user, @name:server")
    parser.add_argument("--out", required=True, metavar="FILE", help="where to save the zip")
    parser.add_argument(
        "--export-id", metavar="ID", help="follow an export already started (resume)"
    )
    parser.add_argument(
        "--interval",
        type=polling_interval,
        default=2.0,
        metavar="SECONDS",
        help="polling interval (0.1 to 3600)",
    )
    add_server_arguments(parser)


class ExportCommand:
    def __init__(
        self,
        client: AdminClient,
        console: Console,
        interval_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._console = console
        self._interval_s = interval_s
        self._sleep = sleep

    def run(self, user_id: str, out: str, export_id: str | None) -> int:
        base = f"/users/{quote(user_id, safe='')}/exports"
        try:
            if export_id is None:
                export_id = str(self._client.call("POST", base)["export_id"])
                self._console.print(f"export {export_id} started for {user_id}", highlight=False)
            record = self._follow(f"{base}/{quote(export_id, safe='')}")
            if record.get("status") != "completed":
                print(
                    f"error: export {export_id} is {record.get('status')}:"
                    f" {record.get('error') or 'no archive'}",
                    file=sys.stderr,
                )
                return EXIT_FAILED
            return self._save(f"{base}/{quote(export_id, safe='')}/archive", out, record)
        except AdminApiError as e:
            print(f"error: {e.describe()}", file=sys.stderr)
            return EXIT_API_ERROR
        except KeyboardInterrupt:
            if export_id is not None:
                print(
                    f"interrupted: export {export_id} goes on in the server;"
                    f" resume with --export-id {export_id}",
                    file=sys.stderr,
                )
            return EXIT_CTRL_C

    def _follow(self, path: str) -> dict[str, Any]:
        """Poll until the export has ended, with a progress line; its final record."""
        errors = 0
        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(None))
        with Progress(*columns, console=self._console, transient=True) as progress:
            task = progress.add_task("waiting", total=None)
            while True:
                try:
                    record: dict[str, Any] = self._client.call("GET", path)
                    errors = 0
                except AdminApiError as e:
                    if e.status != 0 or errors >= MAX_POLL_ERRORS:
                        raise
                    errors += 1
                    progress.update(task, description=f"no answer ({e.error}); retrying")
                    self._sleep(self._interval_s)
                    continue
                progress.update(task, description=describe(record))
                if record.get("status") in FINAL:
                    return record
                self._sleep(self._interval_s)

    def _save(self, path: str, out: str, record: dict[str, Any]) -> int:
        part = out + ".part"
        with open(part, "wb") as file:
            written = self._client.download(path, file)
        expected = int(record.get("bytes") or 0)
        problem = verify(part, written, expected)
        if problem is not None:
            print(f"error: {problem}; the download is kept in {part}", file=sys.stderr)
            return EXIT_FAILED
        os.replace(part, out)
        self._console.print(
            f"saved {out}: {formatting.size(written)}, {record.get('files')} entries;"
            f" the server deletes its copy at {formatting.timestamp(record.get('expires_ts'))}",
            highlight=False,
        )
        return EXIT_OK


def describe(record: dict[str, Any]) -> str:
    """One progress line: status, entries and bytes so far."""
    return (
        f"{record.get('status')}: {record.get('files', 0)} entries,"
        f" {formatting.size(int(record.get('bytes') or 0))}"
    )


def verify(path: str, written: int, expected: int) -> str | None:
    """Why the downloaded archive is not the server's (None: it is)."""
    if written != expected:
        return f"received {written} bytes, the server recorded {expected}"
    try:
        with zipfile.ZipFile(path) as archive:
            archive.namelist()
    except zipfile.BadZipFile as e:
        return f"the archive does not open as a zip ({e})"
    return None


def run(args: argparse.Namespace, client: AdminClient) -> int:
    command = ExportCommand(client, Console(stderr=True), interval_s=args.interval)
    return command.run(args.user_id, args.out, args.export_id)
