"""scripts/dev-homeserver.sh: the local override file, the SMTP sink and server notices.

The configuration test runs the script's ``write-config`` step into a temporary folder
and loads the result with Synapse's own loader. The start-up test runs the whole script
on free ports (never 8008) in a temporary folder, as a developer would, and stops it
with SIGTERM as Ctrl-C would.

Time: real time only; the sweep "as of" 13 months ahead is what ``allow_future_sweeps``
(set in the override file) allows.
"""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from signedjson.key import generate_signing_key, write_signing_keys
from synapse.config.homeserver import HomeServerConfig

from synapse_lux_privacy.module import LuxPrivacyModule
from tests.harness.ports import free_port
from tests.harness.synapse_server import REPO_ROOT
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.integration

MODULE = "synapse_lux_privacy.LuxPrivacyModule"
MONTH_MS = 30 * 86_400_000
OVERRIDE = {
    "modules": [
        {
            "module": MODULE,
            "config": {"allow_future_sweeps": True, "quota": {"default_bytes": 1_000_000}},
        }
    ],
    "email": {"notif_from": "Dev <dev@localhost>"},
}


def _write_config(tmp_path: Path, override: Path, port: int = 8008) -> dict[str, Any]:
    """Run the script's write-config step; return the homeserver.yaml it wrote."""
    subprocess.run(
        [
            sys.executable, str(REPO_ROOT / "scripts" / "devserver.py"), "write-config",
            "--dir", str(tmp_path / "hs"), "--port", str(port),
            "--smtp-port", "2525", "--override", str(override),
        ],
        check=True,
    )  # fmt: skip
    loaded: dict[str, Any] = yaml.safe_load((tmp_path / "hs" / "homeserver.yaml").read_text())
    return loaded


def _module_config(config: dict[str, Any]) -> dict[str, Any]:
    [entry] = [m for m in config["modules"] if m["module"] == MODULE]
    return dict(entry["config"])


def test_override_file_is_merged_over_the_snippet_for_the_module_and_synapse(
    tmp_path: Path,
) -> None:
    """The override's module keys merge into the snippet's module config key by key (R4's
    quota.default_bytes beside the snippet's quota.counts), its Synapse sections over the
    snippet's (email), the snippet's other sections stay (push, R15); mail goes to the
    SMTP sink and server notices are on (R4's notice); Synapse and the module accept it."""
    override = tmp_path / "dev-homeserver.local.yaml"
    override.write_text(yaml.safe_dump(OVERRIDE))
    config = _write_config(tmp_path, override)

    module = _module_config(config)
    assert module["allow_future_sweeps"] is True
    assert module["quota"]["default_bytes"] == 1_000_000
    assert module["quota"]["counts"] == ["media", "events"]  # from the snippet
    assert module["sweep_interval"] == "1h"  # from the snippet
    assert config["email"]["notif_from"] == "Dev <dev@localhost>"
    assert (config["email"]["smtp_host"], config["email"]["smtp_port"]) == ("127.0.0.1", 2525)
    assert config["push"] == {"include_content": False}
    assert config["require_auth_for_profile_requests"] is True
    assert config["server_notices"]["system_mxid_localpart"] == "notices"

    with (tmp_path / "hs" / "signing.key").open("w") as key_file:
        write_signing_keys(key_file, [generate_signing_key("a")])
    synapse = HomeServerConfig.load_config("dev", ["-c", str(tmp_path / "hs" / "homeserver.yaml")])
    assert synapse.servernotices.server_notices_mxid == "@notices:localhost"
    assert synapse.email.email_smtp_port == 2525
    [(module_class, parsed)] = synapse.modules.loaded_modules
    assert module_class is LuxPrivacyModule
    assert parsed.allow_future_sweeps is True


def test_without_an_override_file_the_snippet_is_used_as_written(tmp_path: Path) -> None:
    """No override file: the snippet's module config (allow_future_sweeps: false)."""
    config = _write_config(tmp_path, tmp_path / "absent.yaml")
    assert _module_config(config)["allow_future_sweeps"] is False
    assert config["email"]["smtp_host"] == "127.0.0.1"


@pytest.fixture
def dev_homeserver(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    """scripts/dev-homeserver.sh running on free ports in tmp_path, with OVERRIDE."""
    override = tmp_path / "override.yaml"
    override.write_text(yaml.safe_dump(OVERRIDE))
    env = {
        **os.environ,
        "PORT": str(free_port()),
        "SMTP_PORT": str(free_port()),
        "LUX_DEV_DIR": str(tmp_path / "hs"),
        "LUX_DEV_OVERRIDE": str(override),
    }
    output = tmp_path / "script.out"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            ["bash", str(REPO_ROOT / "scripts" / "dev-homeserver.sh")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    info = {"port": int(env["PORT"]), "smtp_port": int(env["SMTP_PORT"]), "dir": tmp_path / "hs"}
    try:
        wait_for(
            lambda: "Press Ctrl-C" in output.read_text() or proc.poll() is not None,
            timeout=180,
            what="the dev homeserver",
        )
        assert proc.poll() is None, output.read_text()
        yield proc, info
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the script stops Synapse and the sink
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def test_dev_script_serves_the_override_notices_and_the_smtp_sink_then_stops(
    dev_homeserver: tuple[subprocess.Popen[bytes], dict[str, Any]],
) -> None:
    """The running dev homeserver: a real sweep as of a future time is allowed (the
    override's allow_future_sweeps), Synapse sends server notices (R4's notice needs
    them), the SMTP sink keeps a mail in <dir>/mail/; SIGTERM stops all of it."""
    proc, info = dev_homeserver
    base = f"http://127.0.0.1:{info['port']}"
    password = (info["dir"] / "admin-password").read_text().strip()
    login = requests.post(
        f"{base}/_matrix/client/v3/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": "admin"},
            "password": password,
        },
        timeout=30,
    )
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

    as_of = int(time.time() * 1000) + 13 * MONTH_MS
    sweep = requests.post(
        f"{base}/_synapse/client/lux_privacy/v1/sweep",
        json={"as_of": as_of, "rules": ["attachments"]},
        headers=headers,
        timeout=60,
    )
    assert sweep.status_code == 200, sweep.text
    assert sweep.json()["dry_run"] is False

    notice = requests.post(
        f"{base}/_synapse/admin/v1/send_server_notice",
        json={"user_id": "@admin:localhost", "content": {"msgtype": "m.text", "body": "hi"}},
        headers=headers,
        timeout=30,
    )
    assert notice.status_code == 200, notice.text

    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "a@localhost", "b@localhost", "dev"
    message.set_content("hello")
    with smtplib.SMTP("127.0.0.1", info["smtp_port"], timeout=30) as smtp:
        smtp.send_message(message)
    mail = info["dir"] / "mail"
    wait_for(lambda: any(mail.glob("*.eml")), timeout=10, what="the mail in the sink")
    assert "Subject: dev" in next(mail.glob("*.eml")).read_text()

    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    for port in (info["port"], info["smtp_port"]):
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/", timeout=5)
