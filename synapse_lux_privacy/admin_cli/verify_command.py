"""``synapse-lux-privacy verify CERTIFICATE``: check a certificate offline (docs/proof.md).

Checks the signature against the server's published keys, fetched from
``<server>/_matrix/key/v2/server`` (``--server URL``; by default
``https://<server_name>``) or read from a file holding that answer (``--key FILE``),
and, with ``--audit EXPORT``, that the certificate's audit chain head is a row of that
export (a JSON list of the rows ``GET /audit`` returns, or one row per line). Prints
one line saying what it proved, or why not. Needs no access token.
"""

import argparse
import json
import sys
import urllib.request
from datetime import UTC, datetime
from typing import Any

from synapse_lux_privacy.proof.verify import VerificationFailed, check_export, check_signature

EXIT_PROVED = 0
EXIT_REFUSED = 1
EXIT_UNUSABLE = 2
KEY_PATH = "/_matrix/key/v2/server"
FETCH_TIMEOUT_S = 10


class _Unusable(Exception):
    """An input could not be read: nothing was proved or refused."""


def add_parser(commands: Any) -> None:
    """Register ``verify`` on the CLI's sub-command parsers."""
    verify = commands.add_parser(
        "verify",
        help="check a signed certificate of a sweep or erasure offline",
        description="Exit status: 0 proved; 1 refused (bad signature, foreign key, chain"
        " head not in the export); 2 an input could not be read or the key fetched.",
    )
    verify.add_argument("certificate", metavar="CERTIFICATE", help="the certificate (JSON)")
    source = verify.add_mutually_exclusive_group()
    source.add_argument(
        "--server",
        metavar="URL",
        help=f"where the server answers {KEY_PATH} (default: https://<server_name>)",
    )
    source.add_argument("--key", metavar="FILE", help=f"a saved answer of {KEY_PATH}")
    verify.add_argument(
        "--audit",
        metavar="EXPORT",
        help="an audit export (GET /audit rows) to find the chain head in",
    )


def run(args: argparse.Namespace) -> int:
    try:
        certificate = _read_json(args.certificate)
        if not isinstance(certificate, dict):
            raise _Unusable(f"{args.certificate} is not a JSON object")
        keys, key_source = _keys(args, certificate)
        rows = _read_rows(args.audit) if args.audit else None
    except _Unusable as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_UNUSABLE
    try:
        signed = check_signature(certificate, keys)
        proved = (
            f"PROVED: {certificate.get('kind')} certificate {certificate.get('subject_id')}"
            f" was signed by {signed.server_name} with {signed.key_id} (key from {key_source})"
            f" on {_when(certificate.get('issued_ts'))}, unchanged since"
        )
        if rows is not None:
            found = check_export(certificate, rows)
            proved += (
                f"; its audit chain head (seq {certificate['audit_chain']['seq']}) is row"
                f" {found.head_id} of {args.audit}, whose {found.rows} chained rows match"
                " their hashes"
            )
    except VerificationFailed as e:
        print(f"REFUSED: {e}")
        return EXIT_REFUSED
    print(proved)
    return EXIT_PROVED


def _keys(args: argparse.Namespace, certificate: dict[str, Any]) -> tuple[dict[str, Any], str]:
    if args.key:
        keys = _read_json(args.key)
        source = args.key
    else:
        base = args.server or f"https://{certificate.get('server_name')}"
        source = base.rstrip("/") + KEY_PATH
        try:
            with urllib.request.urlopen(source, timeout=FETCH_TIMEOUT_S) as answer:
                keys = json.loads(answer.read())
        except (OSError, ValueError) as e:
            raise _Unusable(f"cannot fetch the server's keys from {source}: {e}") from None
    if not isinstance(keys, dict):
        raise _Unusable(f"{source} is not a JSON object of keys")
    return keys, source


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise _Unusable(f"cannot read {path}: {e.strerror}") from None
    except ValueError as e:
        raise _Unusable(f"{path} is not JSON: {e}") from None


def _read_rows(path: str) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise _Unusable(f"cannot read {path}: {e.strerror}") from None
    try:
        parsed = json.loads(text)
        rows = parsed if isinstance(parsed, list) else [parsed]
    except ValueError:
        try:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as e:
            raise _Unusable(f"{path} is neither a JSON list nor JSON lines: {e}") from None
    if not all(isinstance(r, dict) for r in rows):
        raise _Unusable(f"{path}: every audit row must be a JSON object")
    return rows


def _when(ts: Any) -> str:
    if not isinstance(ts, int):
        return "an unknown date"
    return datetime.fromtimestamp(ts / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
