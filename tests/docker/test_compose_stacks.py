"""The compose stacks a provider starts first, brought up for real with Docker.

Run by ``scripts/docker-checks.sh`` (CI: ``.ci/run``) once the stand-ins of the official
images exist (``bash ../shared/docker-standins/make-images.sh``); skipped elsewhere,
and a failure where ``LUX_REQUIRE_DOCKER=1`` says Docker must be there. Old data is
made by backdating rows in the stack's own PostgreSQL (a test database): no sleeping.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from tests.docker.compose import (
    ComposeStack,
    docker_usable,
    final_record,
    run_cli,
    wait_until_flushed,
)

DAY_MS = 24 * 3600 * 1000

_why_not = docker_usable()
if _why_not and os.environ.get("LUX_REQUIRE_DOCKER") == "1":
    raise RuntimeError(f"LUX_REQUIRE_DOCKER=1 but Docker cannot run the stacks: {_why_not}")
pytestmark = pytest.mark.skipif(
    _why_not is not None or os.environ.get("LUX_DOCKER_TESTS") != "1",
    reason=_why_not or "Docker stacks run by scripts/docker-checks.sh (LUX_DOCKER_TESTS=1)",
)


def _stack(compose_file: str, project: str) -> Iterator[ComposeStack]:
    stack = ComposeStack(compose_file, project)
    stack.down()  # a stack left behind by an interrupted run
    stack.compose("build")
    try:
        yield stack
    finally:
        stack.down()


@pytest.fixture
def single() -> Iterator[ComposeStack]:
    yield from _stack("docker-compose.yml", "luxci-single")


@pytest.fixture
def workers() -> Iterator[ComposeStack]:
    yield from _stack("docker-compose.workers.yml", "luxci-workers")


def _token_file(tmp_path_factory: pytest.TempPathFactory, token: str) -> str:
    path = tmp_path_factory.mktemp("token") / "admin-token"
    path.write_text(token + "\n")
    return str(path)


def test_r9_readme_docker_line_runs_the_module_and_a_cli_sweep(
    single: ComposeStack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """R9 through the README's line: `docker compose up -d synapse` (the image's user
    991 reads the key synapse-init made), the module's API answers, and the CLI's dry
    run counts an IP-log row backdated 200 days while its real sweep deletes it."""
    single.compose("up", "-d", "synapse")
    single.wait_healthy()
    admin = single.register("synapse", "admin", "admin-password-1", admin=True)
    status, body = admin.lux("GET", "/sweeps")
    assert status == 200, body

    alice = single.register("synapse", "alice", "alice-password-1", admin=False)
    alice.whoami()
    alice_ips = f"SELECT count(*) FROM user_ips WHERE user_id = '{alice.user_id}'"
    wait_until_flushed(single, alice_ips)
    cutoff = int(time.time() * 1000) - 190 * DAY_MS
    single.sql(
        f"UPDATE user_ips SET last_seen = last_seen - {200 * DAY_MS} "
        f"WHERE user_id = '{alice.user_id}'"
    )
    old_ips = f"{alice_ips} AND last_seen < {cutoff}"
    assert int(single.sql(old_ips)) >= 1

    token = _token_file(tmp_path_factory, str(admin.access_token))
    base = ["--url", single.base_url, "--token-file", token, "--json"]
    dry = final_record(run_cli("sweep", *base, "--dry-run"))
    assert dry["status"] == "completed" and dry["dry_run"] is True
    assert dry["results"]["ip_logs"]["candidates"] >= 1
    assert dry["results"]["ip_logs"]["deleted"] == 0
    assert int(single.sql(old_ips)) >= 1, "a dry run deleted IP-log rows"

    real = final_record(run_cli("sweep", *base))
    assert real["status"] == "completed", real
    assert real["results"]["ip_logs"]["deleted"] >= 1
    assert int(single.sql(old_ips)) == 0


def test_r2_workers_stack_sweep_through_the_front_door_deletes_media(
    workers: ComposeStack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """R2 on the workers stack: a sweep asked through nginx runs on the background
    worker (which holds background tasks and the media store) and deletes a file
    whose upload row was backdated 400 days; the file is gone through the front door."""
    workers.compose("up", "-d")
    workers.wait_healthy()
    admin = workers.register("synapse", "admin", "admin-password-1", admin=True)
    alice = workers.register("synapse", "alice", "alice-password-1", admin=False)
    mxc = alice.upload_media(b"an attachment older than R2's twelve months", "text/plain")
    media_id = mxc.rsplit("/", 1)[1]
    workers.sql(
        f"UPDATE local_media_repository SET created_ts = created_ts - {400 * DAY_MS} "
        f"WHERE media_id = '{media_id}'"
    )
    assert alice.download_media(mxc).status_code == 200

    token = _token_file(tmp_path_factory, str(admin.access_token))
    done = run_cli(
        "sweep", "--url", workers.base_url, "--token-file", token, "--json",
        "--rules", "attachments",
    )  # fmt: skip
    record = final_record(done)
    assert record["status"] == "completed", record
    assert record["instance"].startswith("background_worker"), record
    assert record["results"]["attachments"]["deleted"] >= 1, record
    assert alice.download_media(mxc).status_code == 404
    status, _ = admin.lux("GET", f"/sweeps/{record['sweep_id']}")
    assert status == 200
