"""Helpers for ``scripts/dev-homeserver.sh`` (standard library + Synapse's own deps only).

Sub-commands:

* ``write-config --dir D --port P [--smtp-port S] [--override F]`` - (re)write
  ``D/homeserver.yaml`` and its log config, creating the signing key and the registration
  secret on first use. The configuration is, each merged over the one before: the dev
  settings, the Synapse sections and the module entry of ``config/homeserver-snippet.yaml``,
  Synapse's mailer pointed at the SMTP sink and server notices, then the local override
  file (``dev-homeserver.local.yaml``, untracked) when it exists.
* ``smtp-sink --dir D --smtp-port S`` - an SMTP server on 127.0.0.1:S that keeps every mail
  in ``D/mail/`` (one ``.eml`` file each) and prints its recipient and subject.
* ``check-port --port P`` - fail if something already listens on 127.0.0.1:P.
* ``wait --port P --pid PID`` - wait until ``/health`` answers, or fail if PID exits.
* ``register-admin --dir D --port P`` - register ``@admin:localhost`` (password kept in
  ``D/admin-password``); does nothing if the user already exists.
* ``instructions --dir D --port P [--override F]`` - print how to get a token, call the
  admin API, and where mail and settings are.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from signedjson.key import generate_signing_key, write_signing_keys

SERVER_NAME = "localhost"
MODULE_NAME = "synapse_lux_privacy.LuxPrivacyModule"
REPO_ROOT = Path(__file__).resolve().parent.parent
SNIPPET = REPO_ROOT / "config" / "homeserver-snippet.yaml"
OVERRIDE = REPO_ROOT / "dev-homeserver.local.yaml"
ADMIN = "admin"
NOTICES = "notices"  # the server-notices user, @notices:localhost


def _secret(path: Path) -> str:
    """Read a secret from ``path``, creating it on first use."""
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``: mappings merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping (an empty file is an empty one); anything else is an error."""
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise SystemExit(f"error: {path} must be a YAML mapping of homeserver.yaml keys")
    return loaded


def _with_module(config: dict[str, Any], source: Path) -> dict[str, Any]:
    """``config`` with its ``modules:`` list turned into ``module_config`` (this module's
    ``config:`` block) and ``other_modules`` (every other entry), for merging."""
    config = dict(config)
    modules = config.pop("modules", None) or []
    if not isinstance(modules, list):
        raise SystemExit(f"error: modules in {source} must be a list")
    own = [m for m in modules if isinstance(m, dict) and m.get("module") == MODULE_NAME]
    if len(own) > 1:
        raise SystemExit(f"error: {source} lists {MODULE_NAME} more than once")
    module_config = (own[0].get("config") or {}) if own else {}
    if not isinstance(module_config, dict):
        raise SystemExit(f"error: the config of {MODULE_NAME} in {source} must be a mapping")
    return {
        **config,
        "module_config": module_config,
        "other_modules": [m for m in modules if m not in own],
    }


def dev_config(directory: Path, port: int) -> dict[str, Any]:
    """What the dev homeserver needs whatever the snippet says: SQLite in ``directory``,
    a listener on 127.0.0.1:``port``, secrets, relaxed login rate limits."""
    relaxed = {"per_second": 10, "burst_count": 100}
    return {
        "server_name": SERVER_NAME,
        "public_baseurl": f"http://localhost:{port}/",
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client", "federation"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(directory / "homeserver.db")}},
        "media_store_path": str(directory / "media_store"),
        "signing_key_path": str(directory / "signing.key"),
        "log_config": str(directory / "log.config"),
        "registration_shared_secret": _secret(directory / "registration-secret"),
        "macaroon_secret_key": _secret(directory / "macaroon-secret"),
        "form_secret": _secret(directory / "form-secret"),
        "enable_registration": False,
        "report_stats": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "user_directory": {"enabled": True, "search_all_users": True},
        "rc_login": {"address": relaxed, "account": relaxed, "failed_attempts": relaxed},
    }


def dev_mail_and_notices(smtp_port: int) -> dict[str, Any]:
    """Over the snippet's placeholders: Synapse's mailer (R12 warnings, R14 certificates)
    sends to the SMTP sink; server notices on, so that R4's notice after an eviction is
    sent (to a room with @notices:localhost)."""
    return {
        "email": {
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp_port,
            "require_transport_security": False,
            "enable_tls": False,
            "notif_from": f"Luxchat dev <noreply@{SERVER_NAME}>",
        },
        "server_notices": {
            "system_mxid_localpart": NOTICES,
            "system_mxid_display_name": "Server notices",
            "room_name": "Server notices",
        },
    }


def homeserver_config(
    directory: Path, port: int, smtp_port: int, override: Path | None
) -> dict[str, Any]:
    """The dev homeserver.yaml: the dev settings, then the snippet, then mail and
    notices, then the override file (when given and present), each merged over the last."""
    layers = [
        _with_module(dev_config(directory, port), Path("dev settings")),
        _with_module(_read_yaml(SNIPPET), SNIPPET),
        _with_module(dev_mail_and_notices(smtp_port), Path("dev settings")),
    ]
    if override is not None and override.exists():
        layers.append(_with_module(_read_yaml(override), override))
    merged: dict[str, Any] = {}
    other_modules: list[Any] = []
    for layer in layers:
        other_modules.extend(layer.pop("other_modules"))
        merged = deep_merge(merged, layer)
    module = {"module": MODULE_NAME, "config": merged.pop("module_config")}
    return {**merged, "modules": [module, *other_modules]}


def write_config(directory: Path, port: int, smtp_port: int, override: Path | None) -> None:
    """Write homeserver.yaml, log.config and (once) the signing key."""
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    key_path = directory / "signing.key"
    if not key_path.exists():
        with key_path.open("w") as f:
            write_signing_keys(f, [generate_signing_key("a_dev")])
    config = homeserver_config(directory, port, smtp_port, override)
    (directory / "homeserver.yaml").write_text(
        "# Generated by scripts/dev-homeserver.sh on every start from\n"
        f"# config/homeserver-snippet.yaml and {override}: put your settings in\n"
        "# the latter (README.md, 'Set up for development').\n"
        + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    )
    log_config = {
        "version": 1,
        "formatters": {
            "precise": {
                "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - "
                "%(request)s - %(message)s"
            }
        },
        "handlers": {
            # Rotated daily, 7 old files kept: the logs hold IP addresses, so they
            # must not outlive logs.ip_retention (R9; check-config verifies it).
            "file": {
                "class": "logging.handlers.TimedRotatingFileHandler",
                "formatter": "precise",
                "filename": str(directory / "homeserver.log"),
                "when": "midnight",
                "backupCount": 7,
                "encoding": "utf8",
            }
        },
        "root": {"level": "INFO", "handlers": ["file"]},
        "disable_existing_loggers": False,
    }
    (directory / "log.config").write_text(yaml.safe_dump(log_config))


class _KeepMail:
    """aiosmtpd handler: each message to ``folder`` as an ``.eml`` file, one line printed."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._count = len(list(folder.glob("*.eml")))

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self._count += 1
        path = self._folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{self._count:04d}.eml"
        path.write_bytes(envelope.content)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        print(
            f"==> mail to {', '.join(envelope.rcpt_tos)}: {message['Subject']} ({path})",
            flush=True,
        )
        return "250 Message accepted for delivery"


def smtp_sink(directory: Path, smtp_port: int) -> int:
    """Run an SMTP server on 127.0.0.1:``smtp_port`` keeping mail in ``directory/mail``
    until SIGTERM or Ctrl-C."""
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        print("error: aiosmtpd is missing: .venv/bin/pip install -e '.[dev]'")
        return 1
    folder = directory / "mail"
    folder.mkdir(parents=True, exist_ok=True)
    controller = Controller(_KeepMail(folder), hostname="127.0.0.1", port=smtp_port)
    controller.start()

    async def until_stopped() -> None:
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopped.set)
        await stopped.wait()

    try:
        asyncio.run(until_stopped())
    finally:
        controller.stop()
    return 0


def _request(url: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def check_port(port: int) -> int:
    """Return 1 (with a message) if 127.0.0.1:port is already taken, else 0."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            print(
                f"error: 127.0.0.1:{port} is already in use (another dev homeserver?); "
                "stop it or choose another port: PORT={port + 1} bash scripts/dev-homeserver.sh"
            )
            return 1
    return 0


def wait(port: int, pid: int, timeout: float) -> int:
    """Wait for /health; return 0 when healthy, 1 if Synapse died or timed out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            print("Synapse exited during start-up; see dev-homeserver/homeserver.log")
            return 1
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return 0
        except OSError:
            pass
        time.sleep(0.3)
    print(f"Synapse did not answer /health within {timeout:.0f} s")
    return 1


def register_admin(directory: Path, port: int) -> int:
    """Register @admin:localhost via the shared secret unless it exists."""
    password = _secret(directory / "admin-password")
    secret = (directory / "registration-secret").read_text().strip()
    url = f"http://127.0.0.1:{port}/_synapse/admin/v1/register"
    _status, body = _request(url)
    nonce = body["nonce"]
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
    mac.update(b"\x00".join([nonce.encode(), ADMIN.encode(), password.encode(), b"admin"]))
    payload = {
        "nonce": nonce,
        "username": ADMIN,
        "password": password,
        "admin": True,
        "mac": mac.hexdigest(),
    }
    status, body = _request(url, payload)
    if status == 200:
        print(f"Registered admin user @{ADMIN}:{SERVER_NAME}")
    elif body.get("errcode") == "M_USER_IN_USE":
        print(f"Admin user @{ADMIN}:{SERVER_NAME} already exists")
    else:
        print(f"Registering the admin user failed: {status} {body}")
        return 1
    return 0


def instructions(directory: Path, port: int, override: Path) -> None:
    """Print the admin password and ready-to-paste curl commands."""
    password = (directory / "admin-password").read_text().strip()
    base = f"http://localhost:{port}"
    login = json.dumps(
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": ADMIN},
            "password": password,
        }
    )
    print(
        f"""
Synapse is running at {base} (server name '{SERVER_NAME}', log: {directory}/homeserver.log)
Admin user: @{ADMIN}:{SERVER_NAME}   password: {password}   (kept in {directory}/admin-password)

Get an admin access token:
  TOKEN=$(curl -s -X POST {base}/_matrix/client/v3/login \\
    -H 'Content-Type: application/json' \\
    -d '{login}' \\
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')

Call the module's admin API:
  curl -H "Authorization: Bearer $TOKEN" {base}/_synapse/client/lux_privacy/v1/holds
  curl -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
    -d '{{"dry_run": true}}' {base}/_synapse/client/lux_privacy/v1/sweep

Or with the operator command (in .venv, not on PATH):
  (umask 077; echo "$TOKEN" > {directory}/admin-token)
  .venv/bin/synapse-lux-privacy sweep --dry-run --url {base} --token-file {directory}/admin-token

Mail Synapse sends (R12 warnings, certificates) lands in {directory}/mail/ (one .eml each);
server notices (R4) come from @{NOTICES}:{SERVER_NAME}.
Your settings (module config, Synapse sections) go in {override}
({"present" if override.exists() else "absent; README.md has an example"}), merged over
config/homeserver-snippet.yaml at every start.

Press Ctrl-C to stop Synapse.
"""
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "command",
        choices=[
            "write-config",
            "smtp-sink",
            "check-port",
            "wait",
            "register-admin",
            "instructions",
        ],
    )
    parser.add_argument("--dir", type=Path, default=REPO_ROOT / "dev-homeserver")
    parser.add_argument("--port", type=int, default=8008)
    parser.add_argument("--smtp-port", type=int, default=8025)
    parser.add_argument("--override", type=Path, default=OVERRIDE)
    parser.add_argument("--pid", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args(argv)
    directory: Path = args.dir.resolve()
    if args.command == "write-config":
        write_config(directory, args.port, args.smtp_port, args.override.resolve())
    elif args.command == "smtp-sink":
        return smtp_sink(directory, args.smtp_port)
    elif args.command == "check-port":
        return check_port(args.port)
    elif args.command == "wait":
        return wait(args.port, args.pid, args.timeout)
    elif args.command == "register-admin":
        return register_admin(directory, args.port)
    else:
        instructions(directory, args.port, args.override.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
