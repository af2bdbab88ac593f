"""Command line: ``synapse-lux-privacy check-config PATH [PATH ...]``.

Reads ``homeserver.yaml`` the way Synapse does (several files or directories of
``*.yaml``, merged top-level, later wins), validates the module's ``config:``
block, checks the installed Synapse (supported range, and the private-API half of the
adapter's self-check) and reports the native settings that contradict the policy (R1, R2, R5,
R9, R11, R15). Exit status: 0 compliant, 1 findings, 2 unusable configuration.
"""

import argparse
import os
import sys
from collections.abc import Sequence
from contextlib import redirect_stdout
from typing import Any

import yaml
from synapse.module_api.errors import ConfigError

from synapse_lux_privacy import synapse_adapter
from synapse_lux_privacy.config import parse_config
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
    args = parser.parse_args(argv)
    return _check_config(args.paths)


def _check_config(paths: Sequence[str]) -> int:
    """Print the findings for the given config files; return the exit status."""
    try:
        with redirect_stdout(sys.stderr):  # Synapse prints what it skips in a directory
            files = config_files(paths)
        homeserver = _read_merged(files)
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
    findings = find_contradictions(homeserver, config, os.path.dirname(os.path.abspath(files[-1])))
    for finding in findings:
        print(finding)
    if findings:
        print(f"{len(findings)} Synapse setting(s) contradict the privacy policy.")
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


def _read_merged(files: Sequence[str]) -> dict[str, Any]:
    """Merge like Synapse: later files replace whole top-level keys; empty files are skipped."""
    if not files:
        raise _Unusable("no *.yaml configuration file found")
    merged: dict[str, Any] = {}
    for path in files:
        try:
            with open(path, encoding="utf-8") as file:
                loaded = yaml.safe_load(file)
        except UnicodeDecodeError as e:
            raise _Unusable(f"cannot read {path}: {e}") from None
        except yaml.YAMLError as e:
            raise _Unusable(f"{path} is not valid YAML: {' '.join(str(e).split())}") from None
        if loaded is None:
            continue
        if not isinstance(loaded, dict):
            raise _Unusable(f"{path} is not a mapping of settings")
        merged.update(loaded)
    return merged


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
