"""Command line: ``synapse-lux-privacy check-config|sweep|estimate|report|export|erase``.

``check-config PATH [PATH ...]`` reads ``homeserver.yaml`` the way Synapse does
(several files or directories of ``*.yaml``, merged top-level, later wins),
validates the module's ``config:`` block, checks the installed Synapse (supported
range, and the private-API half of the adapter's self-check) and reports the native
settings that contradict the policy (R1, R2, R5, R9, R11, R15). Exit status:
0 compliant, 1 findings, 2 unusable configuration.

``sweep``, ``estimate`` and ``report`` talk to a running server's admin API
(``synapse_lux_privacy.admin_cli``): a background sweep with its progress, a forecast,
and a user's R14 report. Every command runs through ``admin_cli.errors.guarded``: a
failure is one line and exit status 2, Ctrl-C is 130, never a traceback.
"""

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import redirect_stdout
from typing import Any

import yaml
from rich.console import Console
from synapse.module_api.errors import ConfigError

from synapse_lux_privacy import synapse_adapter
from synapse_lux_privacy.admin_cli import (
    erase_command,
    export_command,
    report_command,
    verify_command,
)
from synapse_lux_privacy.admin_cli.client import AdminClient, read_token
from synapse_lux_privacy.admin_cli.errors import guarded
from synapse_lux_privacy.admin_cli.estimate_command import (
    EstimateCommand,
    parse_factor,
    parse_sample_seconds,
)
from synapse_lux_privacy.admin_cli.sweep_command import (
    SweepCommand,
    parse_as_of,
    parse_interval,
    parse_rules,
)
from synapse_lux_privacy.config import parse_config
from synapse_lux_privacy.config_yaml import UnreadableYaml, read_yaml
from synapse_lux_privacy.finding import Finding
from synapse_lux_privacy.native_settings import find_contradictions
from synapse_lux_privacy.synapse_adapter import selfcheck
from synapse_lux_privacy.synapse_adapter.config_files import config_files

MODULE = "synapse_lux_privacy.LuxPrivacyModule"

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_UNUSABLE = 2


class _Unusable(Exception):
    """The configuration cannot be checked at all (exit status 2)."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="synapse-lux-privacy", description="Tools for the synapse_lux_privacy module."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "check-config",
        help="validate the module's config and check Synapse's own settings against it",
        description="Exit status: 0 compliant, 1 contradicting settings, 2 unusable config.",
    )
    check.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="homeserver config file or directory of *.yaml files, as given to Synapse with -c",
    )
    sweep = commands.add_parser(
        "sweep",
        help="start a background sweep on a running server and follow its progress",
        description="Exit status: 0 completed; 1 completed_with_errors, cancelled or"
        " interrupted; 2 the server refused or could not be reached; 130 Ctrl-C (the"
        " sweep is asked to stop after its current batch).",
    )
    _add_server_arguments(sweep)
    sweep.add_argument("--dry-run", action="store_true", help="count what would go; delete nothing")
    _add_sweep_arguments(sweep)
    sweep.add_argument("--json", action="store_true", help="print only the final JSON record")
    estimate = commands.add_parser(
        "estimate",
        help="estimate how long a sweep of the server's backlog takes (deletes nothing"
        " unless --sample-seconds is given)",
        description="A dry run counts what each rule would delete (nothing is deleted);"
        " the time comes from a cost model calibrated on this server's recorded sweeps"
        " (GET /sweeps) and its pace settings (GET /sweep/settings), or, with none recorded,"
        " from the range measured on the project's benchmarks, labelled as such."
        " --sample-seconds adds a measured sample that DELETES due items (asks for"
        " confirmation, or --yes; refused under the module's dry_run: true). Exit status:"
        " 0 estimated; 2 refused or the server could not be reached; 130 Ctrl-C.",
    )
    _add_server_arguments(estimate)
    _add_sweep_arguments(estimate)
    estimate.add_argument(
        "--sample-seconds",
        type=_argument(parse_sample_seconds),
        default=None,
        metavar="SECONDS",
        help="also run each rule for SECONDS as a real sweep, which DELETES due items, and"
        " estimate the rest at the pace it measured (default: no sample, nothing deleted)",
    )
    estimate.add_argument(
        "--yes", action="store_true", help="do not ask before a sample deletes due items"
    )
    estimate.add_argument(
        "--project",
        type=_argument(parse_factor),
        action="append",
        default=[],
        metavar="FACTOR",
        help="also give the time for a backlog FACTOR times larger (repeatable)",
    )
    estimate.add_argument("--json", action="store_true", help="print the estimate as JSON")
    report = commands.add_parser(
        "report",
        help="print what the server holds about a user and when it goes (R14)",
        description="Exit status: 0 printed; 2 the server refused or could not be reached.",
    )
    report.add_argument("user_id", metavar="USER_ID", help="a local user, @name:server")
    _add_server_arguments(report)
    report.add_argument("--json", action="store_true", help="print the report as JSON")
    export_command.add_parser(commands, _add_server_arguments)
    erase_command.add_parser(commands, _add_server_arguments)
    verify_command.add_parser(commands)
    args = parser.parse_args(argv)
    return guarded(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    """The chosen command (failures: ``CliError``, printed by ``errors.guarded``)."""
    if args.command == "check-config":
        return _check_config(args.paths)
    if args.command == "verify":
        return verify_command.run(args)
    client = AdminClient(args.url, read_token(args.token_file))
    if args.command == "sweep":
        command = SweepCommand(client, Console(), interval_s=args.interval)
        return command.run(args.dry_run, args.as_of, args.rules, args.json)
    if args.command == "estimate":
        estimator = EstimateCommand(client, Console(), interval_s=args.interval)
        return estimator.run(
            args.as_of, args.rules, args.sample_seconds, args.project, args.json, args.yes
        )
    if args.command == "export":
        return export_command.run(args, client)
    if args.command == "erase":
        return erase_command.run(args, client)
    return report_command.run(client, args.user_id, args.json)


def _add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """What the commands that run sweeps take: the time, the rules, the polling interval."""
    parser.add_argument(
        "--as-of",
        type=_argument(parse_as_of),
        metavar="TIME",
        help="evaluate the rules as if it were this time: milliseconds since the epoch or"
        " an ISO 8601 date/time (UTC unless given)",
    )
    parser.add_argument(
        "--rules", type=_argument(parse_rules), metavar="A,B", help="only these rules"
    )
    parser.add_argument(
        "--interval",
        type=_argument(parse_interval),
        default=1.0,
        metavar="SECONDS",
        help="polling interval (default 1)",
    )


def _add_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        required=True,
        help="the server's base URL, e.g. https://matrix.example.org (no /_synapse/... path)",
    )
    parser.add_argument(
        "--token-file",
        required=True,
        metavar="PATH",
        help="a file holding a server admin's access token",
    )


def _argument(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type from a parser raising ValueError (argparse then prints its text)."""

    def convert(value: str) -> Any:
        try:
            return parse(value)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return convert


def _check_config(paths: Sequence[str]) -> int:
    """Print the findings for the given config files; return the exit status (0, 1 or 2),
    whatever the files hold: anything unforeseen is one line and exit 2, not a traceback."""
    try:
        return _check_config_files(paths)
    except Exception as e:
        reason = " ".join(str(e).split())[:200] or type(e).__name__
        print(f"error: the configuration could not be checked: {reason}", file=sys.stderr)
        return EXIT_UNUSABLE


def _check_config_files(paths: Sequence[str]) -> int:
    try:
        with redirect_stdout(sys.stderr):  # Synapse prints what it skips in a directory
            files = config_files(paths)
        homeserver, text_findings = _read_merged(files)
        index, raw_config = _module_entry(homeserver)
    except OSError as e:
        print(f"error: cannot read {e.filename}: {e.strerror}", file=sys.stderr)
        return EXIT_UNUSABLE
    except _Unusable as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_UNUSABLE
    try:
        config = parse_config(raw_config)
    except ConfigError as e:
        print(f"error in modules[{index}].config: {e.msg}", file=sys.stderr)
        return EXIT_UNUSABLE
    unusable = _synapse_findings(config.allow_untested_synapse)
    for problem in unusable:
        print(f"error: {problem}", file=sys.stderr)
    if unusable:
        return EXIT_UNUSABLE
    findings = [
        *text_findings,
        *find_contradictions(homeserver, config, os.path.dirname(os.path.abspath(files[-1]))),
    ]
    for finding in findings:
        print(finding)
    if findings:
        print(f"{len(findings)} setting(s) at odds with the privacy policy.")
        return EXIT_FINDINGS
    print(f"OK: the {MODULE} config is valid and no Synapse setting contradicts it.")
    return EXIT_OK


def _synapse_findings(allow_untested: bool) -> list[str]:
    """The installed Synapse against the supported range, and the private-API half of the
    adapter's self-check (the database may be out of reach here: the columns are checked
    at start-up)."""
    try:
        synapse_adapter.check_synapse_version(allow_untested)
    except ConfigError as e:
        return [e.msg]
    return [f"self-check: {finding}" for finding in selfcheck.check_private_api()]


def _read_merged(files: Sequence[str]) -> tuple[dict[str, Any], list[Finding]]:
    """Merge like Synapse: later files replace whole top-level keys; empty files are skipped.
    With the merged settings, the findings about the files' text (``config_yaml``)."""
    if not files:
        raise _Unusable("no *.yaml configuration file found")
    merged: dict[str, Any] = {}
    findings: list[Finding] = []
    for path in files:
        try:
            loaded, found = read_yaml(path)
        except UnreadableYaml as e:
            raise _Unusable(str(e)) from None
        except UnicodeDecodeError as e:
            raise _Unusable(f"cannot read {path}: {e}") from None
        except yaml.YAMLError as e:
            raise _Unusable(f"{path} is not valid YAML: {' '.join(str(e).split())}") from None
        except RecursionError:
            raise _Unusable(f"{path} is nested too deeply to be read as YAML") from None
        if loaded is None:
            continue
        if not isinstance(loaded, dict):
            raise _Unusable(f"{path} is not a mapping of settings")
        merged.update(loaded)
        findings.extend(found)
    return merged, findings


def _module_entry(homeserver: dict[str, Any]) -> tuple[int, Any]:
    """The position of the module in ``modules:`` and its raw ``config``."""
    modules = homeserver.get("modules")
    entries = [
        (index, entry.get("config"))
        for index, entry in enumerate(modules if isinstance(modules, list) else [])
        if isinstance(entry, dict) and entry.get("module") == MODULE
    ]
    if len(entries) != 1:
        found = "is not listed" if not entries else f"is listed {len(entries)} times"
        raise _Unusable(f"{MODULE} {found} under modules:")
    return entries[0]
