"""``synapse-lux-privacy check-config``: exit 0 compliant, 1 findings (R1-R15), 2 unusable."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from synapse_lux_privacy.cli import main

MODULE = "synapse_lux_privacy.LuxPrivacyModule"
REPO_ROOT = Path(__file__).resolve().parents[2]
OK = f"OK: the {MODULE} config is valid and no Synapse setting contradicts it.\n"


def _homeserver(path: Path, config: object = None, **settings: object) -> Path:
    """A homeserver.yaml with push.include_content false (R15) and a mail sender (R12)
    unless ``settings`` say."""
    document = {
        "server_name": "example.org",
        "modules": [{"module": "other.Module"}, {"module": MODULE, "config": config}],
        "push": {"include_content": False},
        "email": {"notif_from": "noreply@example.org"},
        **settings,
    }
    path.write_text(yaml.safe_dump(document))
    return path


def _run(capsys: pytest.CaptureFixture[str], *paths: Path) -> tuple[int, str, str]:
    status = main(["check-config", *map(str, paths)])
    out, err = capsys.readouterr()
    return status, out, err


def test_compliant_config_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run(capsys, _homeserver(tmp_path / "homeserver.yaml"))
    assert (status, err) == (0, "")
    assert out == OK


def test_r9_r5_findings_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _homeserver(
        tmp_path / "homeserver.yaml", user_ips_max_age="1y", redaction_retention_period=None
    )
    status, out, _ = _run(capsys, path)
    assert status == 1
    assert out.splitlines() == [
        "redaction_retention_period is null (redacted content is kept for ever); "
        "it should be at most 7d (retention.redacted_content is 7d) (R5)",
        "user_ips_max_age is 1y; it should be at most 180d (logs.ip_retention is 6M) (R9)",
        "2 Synapse setting(s) contradict the privacy policy.",
    ]


def test_r15_synapse_default_push_content_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _run(capsys, _homeserver(tmp_path / "homeserver.yaml", push=None))
    assert status == 1
    assert out.splitlines() == [
        "push.include_content is absent (Synapse default true); it should be false, so that "
        "message content is not sent to the push gateway and on to Apple and Google (R15)",
        "1 Synapse setting(s) contradict the privacy policy.",
    ]


@pytest.mark.parametrize("worker_file", [None, "client_worker.yaml", "background_worker.yaml"])
def test_r9_r15_shipped_sample_configs_are_compliant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], worker_file: str | None
) -> None:
    """docker/homeserver.yaml with config/workers/ (as docker-compose.workers.yml passes
    them), for the main process and each worker; then, to show the log config was read,
    the same with a log config that keeps lines for ever."""
    files = [REPO_ROOT / "docker" / "homeserver.yaml"]
    files.append(REPO_ROOT / "config" / "workers" / "homeserver-workers.yaml")
    if worker_file is not None:
        files.append(REPO_ROOT / "config" / "workers" / worker_file)
    copies = [tmp_path / source.name for source in files]
    for source, copy in zip(files, copies, strict=True):
        copy.write_text(source.read_text().replace("/data/", f"{tmp_path}/"))
    shutil.copy(REPO_ROOT / "docker" / "log.config", tmp_path / "log.config")
    status, out, _ = _run(capsys, *copies)
    assert (status, out) == (0, OK)
    (tmp_path / "log.config").write_text(
        yaml.safe_dump({"version": 1, "handlers": {"f": {"class": "logging.FileHandler"}}})
    )
    status, out, _ = _run(capsys, *copies)
    assert status == 1
    assert out.startswith(f"handlers.f in {tmp_path / 'log.config'} is logging.FileHandler")


def test_r9_log_config_is_found_beside_the_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "log.yaml").write_text(
        yaml.safe_dump({"version": 1, "handlers": {"f": {"class": "logging.FileHandler"}}})
    )
    path = _homeserver(tmp_path / "homeserver.yaml", log_config="log.yaml")
    status, out, _ = _run(capsys, path)
    assert status == 1
    assert out.startswith(f"handlers.f in {tmp_path / 'log.yaml'} is logging.FileHandler")


def test_r1_config_error_exits_2_with_key_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _homeserver(tmp_path / "homeserver.yaml", {"retention": {"messages": "24m"}})
    status, out, err = _run(capsys, path)
    assert (status, out) == (2, "")
    assert err == (
        "error in modules[1].config: retention.messages: 24m is 24 minutes; did you mean 24M "
        "(24 months)? Periods under one day need allow_short_periods: true.\n"
    )


def test_unknown_key_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _homeserver(tmp_path / "homeserver.yaml", {"retention": {"mesages": "24M"}})
    status, _, err = _run(capsys, path)
    assert status == 2
    assert "retention.mesages: unknown key; allowed keys: messages," in err


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = _run(capsys, tmp_path / "absent.yaml")
    assert status == 2
    assert err == f"error: cannot read {tmp_path / 'absent.yaml'}: No such file or directory\n"


def test_invalid_yaml_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "homeserver.yaml"
    path.write_text("modules: [\n")
    status, _, err = _run(capsys, path)
    assert status == 2
    assert err.startswith(f"error: {path} is not valid YAML: ")
    assert err.count("\n") == 1


def test_non_mapping_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "homeserver.yaml"
    path.write_text("- a\n- list\n")
    status, _, err = _run(capsys, path)
    assert status == 2
    assert err == f"error: {path} is not a mapping of settings\n"


@pytest.mark.parametrize(
    "document",
    [{"server_name": "x"}, {"modules": None}, {"modules": [{"module": "other.Module"}, "junk"]}],
)
def test_module_not_listed_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], document: object
) -> None:
    path = tmp_path / "homeserver.yaml"
    path.write_text(yaml.safe_dump(document))
    status, _, err = _run(capsys, path)
    assert status == 2
    assert err == f"error: {MODULE} is not listed under modules:\n"


def test_module_listed_twice_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "homeserver.yaml"
    path.write_text(yaml.safe_dump({"modules": [{"module": MODULE}, {"module": MODULE}]}))
    status, _, err = _run(capsys, path)
    assert status == 2
    assert err == f"error: {MODULE} is listed 2 times under modules:\n"


def test_r9_later_files_replace_top_level_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _homeserver(tmp_path / "a.yaml", user_ips_max_age=None)
    second = tmp_path / "b.yaml"
    second.write_text("user_ips_max_age: 90d\n")
    assert _run(capsys, first, second)[0] == 0
    assert _run(capsys, second, first)[0] == 1


def test_r9_directories_are_read_like_synapse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main_file = _homeserver(tmp_path / "homeserver.yaml")
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    (conf_d / "10-ips.yaml").write_text("user_ips_max_age: 1y\n")
    (conf_d / "20-empty.yaml").write_text("")
    (conf_d / "notes.txt").write_text("user_ips_max_age: null\n")
    status, out, err = _run(capsys, main_file, conf_d)
    assert status == 1
    assert out.splitlines()[0].startswith("user_ips_max_age is 1y;")
    assert "notes.txt" in err


def test_empty_directory_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = _run(capsys, tmp_path)
    assert status == 2
    assert err == "error: no *.yaml configuration file found\n"


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["check-config"])
    assert caught.value.code == 2
    assert "PATH" in capsys.readouterr().err


def test_python_dash_m_runs_check_config(tmp_path: Path) -> None:
    path = _homeserver(tmp_path / "homeserver.yaml", user_ips_max_age=None)
    result = subprocess.run(
        [sys.executable, "-m", "synapse_lux_privacy", "check-config", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout.startswith("user_ips_max_age is null")
