"""Driving the project's compose stacks from a test: `docker compose` as a provider types it.

The stacks run the stand-ins of the official images (``shared/docker-standins``): they
prove the compose files and Dockerfiles work with the images' contracts (entrypoint,
user 991, ``/data``, ``POSTGRES_*``), not the official image's exact Python packages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from tests.harness import MatrixClient
from tests.harness.ports import free_port
from tests.harness.waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
LUX_PREFIX = "/_synapse/client/lux_privacy/v1"
SERVER_NAME = "localhost"  # docker/homeserver.yaml


def docker_usable() -> str | None:
    """None when `docker compose` and the stand-in Synapse image are there; else why not."""
    if shutil.which("docker") is None:
        return "no docker command (bash ../shared/docker-standins/make-images.sh installs it)"
    probe = subprocess.run(
        ["docker", "image", "inspect", "matrixdotorg/synapse:v1.163.2"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        return "no matrixdotorg/synapse:v1.163.2 image (make-images.sh builds the stand-ins)"
    return None


class ComposeStack:
    """One compose project (its own name, volumes and host port), torn down with ``down -v``."""

    def __init__(self, compose_file: str, project: str) -> None:
        self.compose_file = compose_file
        self.project = project
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"

    def compose(
        self, *args: str, check: bool = True, timeout: float = 900, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        command = ["docker", "compose", "-p", self.project, "-f", self.compose_file, *args]
        env = dict(os.environ, LUX_HTTP_PORT=str(self.port))
        done = subprocess.run(
            command,
            cwd=REPO_ROOT,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{' '.join(command)} exited {done.returncode}\n"
                f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
            )
        return done

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "60", check=False).stdout

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", check=False, timeout=300)

    def wait_healthy(self, timeout: float = 300) -> None:
        def answers() -> bool:
            try:
                return requests.get(f"{self.base_url}/health", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        try:
            wait_for(answers, timeout=timeout, what=f"{self.base_url}/health")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.logs()}") from None

    def register(self, service: str, localpart: str, password: str, admin: bool) -> MatrixClient:
        """A user made with Synapse's own ``register_new_matrix_user``, then logged in."""
        self.compose(
            "exec", "-T", service,
            "register_new_matrix_user", "-c", "/data/homeserver.yaml",
            "-u", localpart, "-p", password, "--admin" if admin else "--no-admin",
            "http://localhost:8008",
        )  # fmt: skip
        resp = requests.post(
            f"{self.base_url}/_matrix/client/v3/login",
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": localpart},
                "password": password,
            },
            timeout=30,
        )
        resp.raise_for_status()
        body = resp.json()
        return MatrixClient(self.base_url, body["access_token"], body["user_id"])

    def sql(self, statement: str) -> str:
        """One statement run by psql in the stack's PostgreSQL (test rows only)."""
        done = self.compose(
            "exec", "-T", "postgres",
            "psql", "-U", "synapse", "-d", "synapse", "-tAc", statement,
        )  # fmt: skip
        return done.stdout.strip()


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """The operator command from this checkout, as an operator on the host runs it."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "synapse_lux_privacy", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def final_record(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON record ``sweep --json`` prints last."""
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    record = json.loads(done.stdout)
    assert isinstance(record, dict)
    return record


def wait_until_flushed(stack: ComposeStack, statement: str, timeout: float = 60) -> None:
    """Synapse writes client IPs in batches every few seconds: wait for a row to appear."""
    began = time.monotonic()
    while stack.sql(statement) in ("", "0"):
        if time.monotonic() - began > timeout:
            raise AssertionError(f"{statement!r} still empty after {timeout} s")
        time.sleep(1)
