"""``synapse-lux-privacy erase @alice:server --reason "..."``: erasure on request (R14,
GDPR art. 17): the R12 deletion chain, now, audited with the reason.

Asks for confirmation (typing the user ID) unless ``--yes``, starts the erasure
(``POST /users/{id}/erase``) and follows it until it has ended. A legal hold on the
user (R13) makes the server refuse (409 ``M_LUX_HELD``).

Exit status: 0 erased; 1 the erasure failed, or was not confirmed; 2 the server
refused (a hold included) or could not be reached; 130 Ctrl-C (the erasure goes on
in the server).
"""

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from synapse_lux_privacy.admin_cli import formatting
from synapse_lux_privacy.admin_cli.client import AdminApiError, AdminClient
from synapse_lux_privacy.admin_cli.polling import polling_interval

EXIT_OK, EXIT_FAILED, EXIT_API_ERROR, EXIT_CTRL_C = 0, 1, 2, 130
FINAL = ("completed", "failed", "interrupted")


def add_parser(commands: Any, add_server_arguments: Callable[[Any], None]) -> None:
    parser = commands.add_parser(
        "erase",
        help="delete a user's account and data now, on their request (R14, GDPR art. 17)",
        description=__doc__.split("\n\n")[-1] if __doc__ else None,
    )
    parser.add_argument("user_id", metavar="USER_ID", help="a local user, @name:server")
    parser.add_argument("--reason", required=True, help="why (recorded in the audit)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--interval",
        type=polling_interval,
        default=1.0,
        metavar="SECONDS",
        help="polling interval (0.1 to 3600)",
    )
    add_server_arguments(parser)


def confirmed(user_id: str, ask: Callable[[str], str] = input) -> bool:
    """Whether the operator typed the user ID back."""
    print(
        f"This deactivates {user_id} with erasure and deletes their files from every store,"
        " now. It cannot be undone.",
        file=sys.stderr,
    )
    try:
        return ask("Type the user ID to confirm: ").strip() == user_id
    except EOFError:
        return False


def run(
    args: argparse.Namespace,
    client: AdminClient,
    ask: Callable[[str], str] = input,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    user_id: str = args.user_id
    if not args.yes and not confirmed(user_id, ask):
        print("not confirmed: nothing was erased", file=sys.stderr)
        return EXIT_FAILED
    base = f"/users/{quote(user_id, safe='')}"
    erasure_id = None
    try:
        erasure_id = str(
            client.call("POST", f"{base}/erase", {"reason": args.reason})["erasure_id"]
        )
        print(f"erasure {erasure_id} of {user_id} started", file=sys.stderr)
        while True:
            record: dict[str, Any] = client.call(
                "GET", f"{base}/erasures/{quote(erasure_id, safe='')}"
            )
            if record.get("status") in FINAL:
                break
            sleep(args.interval)
    except AdminApiError as e:
        print(f"error: {e.describe()}", file=sys.stderr)
        return EXIT_API_ERROR
    except KeyboardInterrupt:
        print(f"interrupted: erasure {erasure_id} goes on in the server", file=sys.stderr)
        return EXIT_CTRL_C
    if record["status"] != "completed":
        print(
            f"error: erasure {erasure_id} {record['status']}: {record.get('error')}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(
        f"{user_id} erased: {record['media_deleted']} file(s),"
        f" {formatting.size(record['media_bytes'])}, deleted from every store"
        f" ({record['provider_objects']} storage-provider objects)"
    )
    return EXIT_OK
