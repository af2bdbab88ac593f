"""The keys of issue 13 (storage_providers.delete_from, allow_untested_synapse) and
check-config's Synapse check. A newer Synapse is faked by replacing the version the
adapter reads (``synapse_adapter.synapse_version``)."""

from pathlib import Path

import pytest
import yaml
from synapse.module_api.errors import ConfigError

from synapse_lux_privacy import synapse_adapter
from synapse_lux_privacy.cli import main
from synapse_lux_privacy.config import parse_config
from synapse_lux_privacy.synapse_adapter import selfcheck

MODULE = "synapse_lux_privacy.LuxPrivacyModule"
NO_MAIL = {"notify": {"account_deletion": []}}  # no e-mail settings needed (R12 warnings)


def test_r2_storage_providers_default_to_auto_and_untested_synapse_to_refused() -> None:
    config = parse_config({})
    assert config.storage_providers.delete_from == "auto"
    assert config.allow_untested_synapse is False
    config = parse_config({"storage_providers": {"delete_from": "none"}})
    assert config.storage_providers.delete_from == "none"
    assert parse_config({**NO_MAIL, "allow_untested_synapse": True}).allow_untested_synapse


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"storage_providers": {"delete_from": "s3"}}, 'storage_providers.delete_from: "s3"'),
        ({"storage_providers": {"delete": "auto"}}, "storage_providers.delete: unknown key"),
        ({"allow_untested_synapse": "yes"}, 'allow_untested_synapse: "yes" is not true or false'),
    ],
)
def test_r2_bad_values_name_the_key(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as failure:
        parse_config(raw)
    assert message in str(failure.value)


def _homeserver(path: Path, config: object) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "server_name": "example.org",
                "modules": [{"module": MODULE, "config": config}],
                "push": {"include_content": False},
                # R5, R9, R10, R13: the settings check-config recommends, so that only the
                # self-check decides the exit status here.
                "user_ips_max_age": None,
                "redaction_retention_period": None,
                "require_auth_for_profile_requests": True,
                "limit_profile_requests_to_users_who_share_rooms": True,
            }
        )
    )
    return path


def test_check_config_refuses_a_newer_synapse_without_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(synapse_adapter, "synapse_version", lambda: "1.170.0")
    status = main(["check-config", str(_homeserver(tmp_path / "h.yaml", NO_MAIL))])
    err = capsys.readouterr().err
    assert status == 2
    assert "this is Synapse 1.170.0" in err and "allow_untested_synapse: true" in err


def test_check_config_runs_the_self_check_and_names_a_missing_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(synapse_adapter, "synapse_version", lambda: "1.170.0")
    path = _homeserver(tmp_path / "h.yaml", {**NO_MAIL, "allow_untested_synapse": True})
    assert main(["check-config", str(path)]) == 0
    capsys.readouterr()

    gone = selfcheck.PrivateCall("synapse.handlers.pagination.PaginationHandler.purge_room_v9")
    real = selfcheck.check_private_api
    monkeypatch.setattr(
        selfcheck, "check_private_api", lambda: real((*selfcheck.PRIVATE_API, gone))
    )
    assert main(["check-config", str(path)]) == 2
    assert f"{gone.path} is missing" in capsys.readouterr().err
