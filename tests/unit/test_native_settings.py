"""Synapse's own settings checked against the policy (R1, R2, R5, R9, R11, R15)."""

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from synapse_lux_privacy.config import parse_config
from synapse_lux_privacy.native_settings import Finding, find_contradictions

DEFAULTS = parse_config(None)

# Synapse's generated log config (synapse/config/logger.py), abridged.
SYNAPSE_LOG_CONFIG = {
    "version": 1,
    "handlers": {
        "file": {
            "class": "logging.handlers.TimedRotatingFileHandler",
            "filename": "/var/log/synapse/homeserver.log",
            "when": "midnight",
            "backupCount": 3,
        },
        "buffer": {
            "class": "synapse.logging.handlers.PeriodicallyFlushingMemoryHandler",
            "target": "file",
            "capacity": 10,
        },
        "console": {"class": "logging.StreamHandler"},
    },
    "root": {"level": "INFO", "handlers": ["buffer"]},
}

COMPLIANT = {
    "server_name": "example.org",
    "user_ips_max_age": "180d",
    "redaction_retention_period": "7d",
    "retention": {
        "enabled": True,
        "allowed_lifetime_max": "720d",
        "default_policy": {"max_lifetime": "1y"},
    },
    "delete_stale_devices_after": "90d",
    "media_retention": {"local_media_lifetime": "360d", "remote_media_lifetime": "30d"},
    "log_config": "log.yaml",
    "push": {"include_content": False},
    "email": {"smtp_host": "mail.example.org", "notif_from": "Luxchat <noreply@example.org>"},
}

# R15, R12: what every test below adds to its homeserver.yaml unless it sets ``push`` or
# ``email`` itself, so that each test sees only the findings of the settings it is about.
NO_PUSH_CONTENT = {
    "push": {"include_content": False},
    "email": {"notif_from": "noreply@example.org"},
}


def _write_log_config(directory: Path, handlers: dict[str, Any], name: str = "log.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump({"version": 1, "handlers": handlers}))
    return path


def _contradictions(
    homeserver: dict[str, Any], config_dir: str | None = None, config: Any = None
) -> list[Finding]:
    """The findings for ``homeserver`` plus NO_PUSH_CONTENT (unless it sets ``push``)."""
    return find_contradictions({**NO_PUSH_CONTENT, **homeserver}, parse_config(config), config_dir)


def _find(homeserver: dict[str, Any], config_dir: Path | None = None, **config: Any) -> list[str]:
    found = _contradictions(homeserver, str(config_dir) if config_dir else None, config)
    return [str(finding) for finding in found]


def test_r1_r2_r5_r9_r11_r15_compliant_homeserver_has_no_findings(tmp_path: Path) -> None:
    (tmp_path / "log.yaml").write_text(yaml.safe_dump(SYNAPSE_LOG_CONFIG))
    assert find_contradictions(COMPLIANT, DEFAULTS, str(tmp_path)) == []


def test_r5_r9_r12_r15_of_synapse_defaults_push_content_and_mailer_contradict() -> None:
    """Synapse's default user_ips_max_age (28d) and redaction_retention_period (7d) are
    within the policy; its default push.include_content (true) is not (R15), and without
    an e-mail sender no warning goes out before an R12 deletion."""
    assert [finding.key for finding in find_contradictions({}, DEFAULTS, None)] == [
        "push.include_content",
        "email.notif_from",
    ]
    assert _contradictions({}) == []


def test_finding_renders_on_one_line() -> None:
    finding = Finding("user_ips_max_age", "1y", "at most 180d", "R9")
    assert str(finding) == "user_ips_max_age is 1y; it should be at most 180d (R9)"


# --- R9 user_ips_max_age ----------------------------------------------------------------


def test_r9_user_ips_kept_for_ever() -> None:
    assert _find({"user_ips_max_age": None}) == [
        "user_ips_max_age is null (IP addresses are kept for ever); "
        "it should be at most 180d (logs.ip_retention is 6M) (R9)"
    ]


def test_r9_user_ips_longer_than_ip_retention() -> None:
    assert _find({"user_ips_max_age": "1y"}) == [
        "user_ips_max_age is 1y; it should be at most 180d (logs.ip_retention is 6M) (R9)"
    ]


def test_r9_user_ips_in_milliseconds_and_minutes_use_synapse_semantics() -> None:
    assert _find({"user_ips_max_age": 181 * 86_400_000}) == [
        "user_ips_max_age is 15638400000 (181d); "
        "it should be at most 180d (logs.ip_retention is 6M) (R9)"
    ]
    assert _find({"user_ips_max_age": "259200m"}) == []  # 180 days in minutes
    assert _find({"user_ips_max_age": "259201m"}) != []


def test_r9_user_ips_with_our_month_suffix_is_not_synapse_syntax() -> None:
    (finding,) = _contradictions({"user_ips_max_age": "6M"})
    assert (finding.key, finding.value, finding.rule) == ("user_ips_max_age", '"6M"', "R9")
    assert finding.expected.startswith("a Synapse duration")
    assert "no M" in finding.expected


def test_r9_user_ips_absent_means_synapse_default_28_days() -> None:
    assert _find({}, logs={"ip_retention": "14d"}) == [
        "user_ips_max_age is absent (Synapse default 28d); "
        "it should be at most 14d (logs.ip_retention is 14d) (R9)"
    ]


@pytest.mark.parametrize("value", [True, [], "", "28x"])
def test_r9_user_ips_unreadable_value_is_reported(value: object) -> None:
    (finding,) = _contradictions({"user_ips_max_age": value})
    assert finding.key == "user_ips_max_age"
    assert finding.expected.startswith("a Synapse duration")


# --- R1 native retention ----------------------------------------------------------------


def test_r1_retention_enabled_without_allowed_lifetime_max() -> None:
    assert _find({"retention": {"enabled": True}}) == [
        "retention.allowed_lifetime_max is absent, so rooms may ask to keep messages for ever; "
        "it should be at most 720d (retention.messages is 24M) (R1)"
    ]


def test_r1_allowed_lifetime_max_longer_than_messages() -> None:
    homeserver = {"retention": {"enabled": True, "allowed_lifetime_max": "3y"}}
    assert _find(homeserver) == [
        "retention.allowed_lifetime_max is 3y; "
        "it should be at most 720d (retention.messages is 24M) (R1)"
    ]


def test_r1_allowed_lifetime_max_follows_configured_messages() -> None:
    homeserver = {"retention": {"enabled": True, "allowed_lifetime_max": "1y"}}
    assert _find(homeserver) == []
    assert _find(homeserver, retention={"messages": "6M"}) == [
        "retention.allowed_lifetime_max is 1y; "
        "it should be at most 180d (retention.messages is 6M) (R1)"
    ]


def test_r1_default_policy_max_lifetime_longer_than_messages() -> None:
    homeserver = {
        "retention": {
            "enabled": True,
            "allowed_lifetime_max": "1y",
            "default_policy": {"max_lifetime": "1000d"},
        }
    }
    assert _find(homeserver) == [
        "retention.default_policy.max_lifetime is 1000d; "
        "it should be at most 720d (retention.messages is 24M) (R1)"
    ]


def test_r1_disabled_native_retention_is_not_checked() -> None:
    homeserver = {"retention": {"enabled": False, "default_policy": {"max_lifetime": "9y"}}}
    assert _find(homeserver) == []
    assert _find({"retention": {"default_policy": {"max_lifetime": "9y"}}}) == []


# --- R5 redaction_retention_period ------------------------------------------------------


def test_r5_redacted_content_kept_for_ever() -> None:
    assert _find({"redaction_retention_period": None}) == [
        "redaction_retention_period is null (redacted content is kept for ever); "
        "it should be at most 7d (retention.redacted_content is 7d) (R5)"
    ]


def test_r5_redaction_retention_longer_than_redacted_content() -> None:
    assert _find({"redaction_retention_period": "30d"}) == [
        "redaction_retention_period is 30d; "
        "it should be at most 7d (retention.redacted_content is 7d) (R5)"
    ]


def test_r5_redaction_retention_absent_means_synapse_default_7_days() -> None:
    assert _find({}, retention={"redacted_content": "2d"}) == [
        "redaction_retention_period is absent (Synapse default 7d); "
        "it should be at most 2d (retention.redacted_content is 2d) (R5)"
    ]


# --- R11 delete_stale_devices_after -----------------------------------------------------


def test_r11_stale_devices_kept_longer_than_logout() -> None:
    assert _find({"delete_stale_devices_after": "1y"}) == [
        "delete_stale_devices_after is 1y; "
        "it should be at most 180d (sessions.inactive_logout_after is 6M) (R11)"
    ]


@pytest.mark.parametrize("value", [None, "", "180d", "90d"])
def test_r11_stale_devices_off_or_shorter_is_fine(value: object) -> None:
    assert _find({"delete_stale_devices_after": value}) == []


# --- R2 media_retention -----------------------------------------------------------------


def test_r2_local_media_lifetime_longer_than_attachments() -> None:
    assert _find({"media_retention": {"local_media_lifetime": "400d"}}) == [
        "media_retention.local_media_lifetime is 400d; it should be at most 360d "
        "(retention.attachments is 12M); Synapse counts it from the last access, "
        "the module from the upload (R2)"
    ]


def test_r2_remote_media_lifetime_longer_than_remote_media() -> None:
    (finding,) = _contradictions({"media_retention": {"remote_media_lifetime": "2y"}})
    assert (finding.key, finding.value, finding.rule) == (
        "media_retention.remote_media_lifetime",
        "2y",
        "R2",
    )
    assert finding.expected.startswith("at most 360d (retention.remote_media is 12M)")


def test_r2_media_lifetimes_within_limits_are_fine() -> None:
    media = {"local_media_lifetime": "90d", "remote_media_lifetime": None}
    assert _find({"media_retention": media}) == []


# --- R9 log_config ----------------------------------------------------------------------


def test_r9_unreadable_log_config_could_not_be_checked(tmp_path: Path) -> None:
    (finding,) = _contradictions({"log_config": "missing.yaml"}, str(tmp_path))
    assert finding.key == "log_config"
    assert finding.value.startswith(f"{tmp_path / 'missing.yaml'} (")
    assert "No such file" in finding.value
    assert finding.expected.startswith("a readable YAML logging config")
    assert finding.rule == "R9"


@pytest.mark.parametrize("text", ["version: [1\n", "- just\n- a list\n", "handlers: 3\n"])
def test_r9_invalid_log_config_could_not_be_checked(tmp_path: Path, text: str) -> None:
    (tmp_path / "log.yaml").write_text(text)
    (finding,) = _contradictions({"log_config": "log.yaml"}, str(tmp_path))
    assert (finding.key, finding.rule) == ("log_config", "R9")
    assert "\n" not in str(finding)


def test_r9_log_config_absolute_path_ignores_config_dir(tmp_path: Path) -> None:
    path = _write_log_config(tmp_path, {"f": {"class": "logging.FileHandler", "filename": "x"}})
    (finding,) = _contradictions({"log_config": str(path)}, "/nonexistent")
    assert finding.key == f"handlers.f in {path}"


@pytest.mark.parametrize(
    "handler_class",
    ["logging.FileHandler", "logging.handlers.WatchedFileHandler",
     "logging.handlers.RotatingFileHandler"],
)  # fmt: skip
def test_r9_file_handlers_without_age_bound(tmp_path: Path, handler_class: str) -> None:
    _write_log_config(tmp_path, {"file": {"class": handler_class, "filename": "x.log"}})
    assert _find({"log_config": "log.yaml"}, tmp_path) == [
        f"handlers.file in {tmp_path / 'log.yaml'} is {handler_class}, which never deletes "
        "old lines; it should be a handler keeping logs at most 180d "
        "(logs.ip_retention is 6M) (R9)"
    ]


def test_r9_timed_rotation_keeping_longer_than_ip_retention(tmp_path: Path) -> None:
    handler = {"class": "logging.handlers.TimedRotatingFileHandler", "filename": "x",
               "when": "D", "interval": 1, "backupCount": 180}  # fmt: skip
    _write_log_config(tmp_path, {"file": handler})
    assert _find({"log_config": "log.yaml"}, tmp_path) == [
        f"handlers.file in {tmp_path / 'log.yaml'} is logging.handlers.TimedRotatingFileHandler "
        "keeping up to 181d (when: D, interval: 1, backupCount: 180); it should be a handler "
        "keeping logs at most 180d (logs.ip_retention is 6M) (R9)"
    ]


@pytest.mark.parametrize(
    ("rotation", "kept_days"),
    [
        ({"when": "midnight", "backupCount": 179}, 180),
        ({"when": "W0", "backupCount": 25}, 182),
        ({"when": "w6", "backupCount": 24}, 175),
        ({"when": "H", "interval": 24, "backupCount": 181}, 182),
        ({"when": "h", "interval": 24, "backupCount": 179}, 180),
        ({"when": "S", "interval": 86400, "backupCount": 180}, 181),
        ({"when": "M", "interval": 1440, "backupCount": 9}, 10),
        ({"interval": 1, "backupCount": 4000}, 167),  # when defaults to "h"
    ],
)
def test_r9_timed_rotation_age_is_backups_plus_current_file(
    tmp_path: Path, rotation: dict[str, Any], kept_days: int
) -> None:
    handler = {"class": "logging.handlers.TimedRotatingFileHandler", "filename": "x", **rotation}
    _write_log_config(tmp_path, {"file": handler})
    found = _find({"log_config": "log.yaml"}, tmp_path)
    if kept_days <= 180:
        assert found == []
    else:
        assert len(found) == 1
        assert f"keeping up to {kept_days}d" in found[0]


def test_r9_timed_rotation_without_backup_count_keeps_every_file(tmp_path: Path) -> None:
    handler = {"class": "logging.handlers.TimedRotatingFileHandler", "filename": "x"}
    _write_log_config(tmp_path, {"file": handler})
    (finding,) = _find({"log_config": "log.yaml"}, tmp_path)
    assert "with backupCount 0, which keeps every file" in finding


@pytest.mark.parametrize(
    "rotation",
    [{"when": "fortnight"}, {"when": "W7"}, {"when": 3}, {"interval": "1"},
     {"interval": 0}, {"backupCount": -1}, {"backupCount": "3"}],
)  # fmt: skip
def test_r9_timed_rotation_unreadable_settings(tmp_path: Path, rotation: dict[str, Any]) -> None:
    handler = {"class": "logging.handlers.TimedRotatingFileHandler", "backupCount": 3, **rotation}
    _write_log_config(tmp_path, {"file": handler})
    (finding,) = _find({"log_config": "log.yaml"}, tmp_path)
    assert "with unreadable rotation settings" in finding


def test_r9_unimportable_handler_could_not_be_checked(tmp_path: Path) -> None:
    _write_log_config(tmp_path, {"journal": {"class": "no_such_package.JournalHandler"}})
    assert _find({"log_config": "log.yaml"}, tmp_path) == [
        f"handlers.journal in {tmp_path / 'log.yaml'} is no_such_package.JournalHandler; "
        "it should be an importable handler class, so that its retention can be checked (R9)"
    ]


def test_r9_factory_handlers_are_resolved_like_classes(tmp_path: Path) -> None:
    _write_log_config(
        tmp_path,
        {
            "file": {"()": "logging.FileHandler", "filename": "x"},
            "out": {"()": "logging.StreamHandler"},
            "odd": {"()": "os.path.join"},
        },
    )
    found = _find({"log_config": "log.yaml"}, tmp_path)
    assert len(found) == 2
    assert "handlers.file in" in found[0]
    assert "which never deletes old lines" in found[0]
    assert found[1].startswith("handlers.odd in")
    assert "is os.path.join; it should be an importable handler class" in found[1]


def test_r9_handler_without_class(tmp_path: Path) -> None:
    _write_log_config(tmp_path, {"a": {"level": "INFO"}, "b": "logging.FileHandler"})
    found = _find({"log_config": "log.yaml"}, tmp_path)
    assert [line.split(" is ", 1)[1].split(";")[0] for line in found] == [
        "a handler without a class",
        '"logging.FileHandler"',
    ]


def test_r9_log_config_that_is_not_a_path(tmp_path: Path) -> None:
    assert _find({"log_config": 5}, tmp_path) == [
        "log_config is 5; it should be the path of a logging config file (R9)"
    ]


def test_r9_log_config_findings_follow_configured_ip_retention(tmp_path: Path) -> None:
    (tmp_path / "log.yaml").write_text(yaml.safe_dump(SYNAPSE_LOG_CONFIG))
    homeserver = {"log_config": "log.yaml", "user_ips_max_age": "1d"}
    assert _find(homeserver, tmp_path, logs={"ip_retention": "4d"}) == []
    (finding,) = _find(homeserver, tmp_path, logs={"ip_retention": "3d"})
    assert "keeping up to 4d (when: midnight, interval: 1, backupCount: 3)" in finding
    assert finding.endswith("at most 3d (logs.ip_retention is 3d) (R9)")


# --- R9 worker_log_config --------------------------------------------------------------


def test_r9_a_worker_is_checked_on_worker_log_config_not_log_config(tmp_path: Path) -> None:
    """A generic worker logs through worker_log_config (Synapse ignores log_config there)."""
    (tmp_path / "main.yaml").write_text(yaml.safe_dump(SYNAPSE_LOG_CONFIG))
    _write_log_config(tmp_path, {"file": {"class": "logging.FileHandler"}}, "worker.yaml")
    main = {"log_config": "main.yaml", "worker_log_config": "worker.yaml"}
    worker = {**main, "worker_app": "synapse.app.generic_worker", "worker_name": "w1"}
    assert _find(main, tmp_path) == []
    assert _find(worker, tmp_path) == [
        f"handlers.file in {tmp_path / 'worker.yaml'} is logging.FileHandler, which never "
        "deletes old lines; it should be a handler keeping logs at most 180d "
        "(logs.ip_retention is 6M) (R9)"
    ]


def test_r9_a_worker_without_worker_log_config_logs_to_the_console(tmp_path: Path) -> None:
    _write_log_config(tmp_path, {"file": {"class": "logging.FileHandler"}})
    worker = {"log_config": "log.yaml", "worker_app": "synapse.app.generic_worker"}
    assert _find(worker, tmp_path) == []


def test_r9_worker_app_homeserver_is_the_main_process(tmp_path: Path) -> None:
    """Synapse's WorkerConfig reads worker_app: synapse.app.homeserver as no worker."""
    _write_log_config(tmp_path, {"file": {"class": "logging.FileHandler"}})
    main = {"log_config": "log.yaml", "worker_app": "synapse.app.homeserver"}
    (finding,) = _contradictions(main, str(tmp_path))
    assert finding.key == f"handlers.file in {tmp_path / 'log.yaml'}"


def test_r9_worker_log_config_errors_name_worker_log_config(tmp_path: Path) -> None:
    worker = {"worker_app": "synapse.app.generic_worker"}
    assert _find({**worker, "worker_log_config": 5}) == [
        "worker_log_config is 5; it should be the path of a logging config file (R9)"
    ]
    (finding,) = _contradictions({**worker, "worker_log_config": "missing.yaml"}, str(tmp_path))
    assert (finding.key, finding.rule) == ("worker_log_config", "R9")
    assert finding.value.startswith(f"{tmp_path / 'missing.yaml'} (")


# --- R15 push.include_content -----------------------------------------------------------

R15_EXPECTED = (
    "it should be false, so that message content is not sent to the push gateway "
    "and on to Apple and Google (R15)"
)


def test_r15_push_content_absent_means_synapse_default_true() -> None:
    mailer = {"email": {"notif_from": "noreply@example.org"}}
    assert [str(finding) for finding in find_contradictions(mailer, DEFAULTS, None)] == [
        f"push.include_content is absent (Synapse default true); {R15_EXPECTED}"
    ]
    assert _find({"push": None}) == _find({"push": {}}) == _find({"push": {"enabled": True}})
    assert _find({"push": {}}) == [
        f"push.include_content is absent (Synapse default true); {R15_EXPECTED}"
    ]


def test_r15_push_content_true_is_reported() -> None:
    assert _find({"push": {"include_content": True}}) == [
        f"push.include_content is true; {R15_EXPECTED}"
    ]


@pytest.mark.parametrize(("value", "shown"), [("false", '"false"'), ("no", '"no"'), (1, "1")])
def test_r15_push_content_is_read_by_truthiness_like_synapse(value: object, shown: str) -> None:
    """Synapse's HttpPusher tests the value's truthiness: the string "false" sends content."""
    assert _find({"push": {"include_content": value}}) == [
        f"push.include_content is {shown}, which Synapse reads as true; {R15_EXPECTED}"
    ]


@pytest.mark.parametrize(
    "push", [{"include_content": False}, {"include_content": None}, {"include_content": 0},
             {"enabled": False}, {"enabled": False, "include_content": True}],
)  # fmt: skip
def test_r15_push_content_off_or_push_disabled_is_fine(push: dict[str, Any]) -> None:
    """With push.enabled false Synapse computes no notification, so it sends no content."""
    assert _find({"push": push}) == []


def test_r15_deprecated_email_redact_content_replaces_push_include_content() -> None:
    """Synapse's PushConfig: a set email.redact_content wins over push.include_content."""
    sender = {"notif_from": "noreply@example.org"}
    redact = {**sender, "redact_content": True}
    assert _find({"push": {"include_content": True}, "email": redact}) == []
    assert _find({"push": {}, "email": redact}) == []
    assert _find({"email": {**sender, "redact_content": None}}) == []
    assert _find({"email": {**sender, "redact_content": False}}) == [
        "email.redact_content is false (deprecated; Synapse reads it instead of "
        "push.include_content); it should be absent, and push.include_content false, so that "
        "message content is not sent to the push gateway and on to Apple and Google (R15)"
    ]


def test_r15_push_that_is_not_a_mapping() -> None:
    assert _find({"push": "off"}) == [
        'push is "off"; it should be a mapping with include_content: false, so that message '
        "content is not sent to the push gateway and on to Apple and Google (R15)"
    ]


def test_r1_r2_r5_r9_r11_r12_r15_every_contradiction_is_reported_together(tmp_path: Path) -> None:
    _write_log_config(tmp_path, {"file": {"class": "logging.FileHandler", "filename": "x"}})
    homeserver = {
        "retention": {"enabled": True},
        "media_retention": {"local_media_lifetime": "1y"},
        "redaction_retention_period": None,
        "user_ips_max_age": None,
        "log_config": "log.yaml",
        "delete_stale_devices_after": "1y",
        "push": {"include_content": True},
    }
    found = find_contradictions(homeserver, DEFAULTS, str(tmp_path))
    assert [finding.rule for finding in found] == [
        "R1", "R2", "R5", "R9", "R9", "R11", "R15", "R12"
    ]  # fmt: skip


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
    | st.sampled_from(["1y", "6M", "28d", "0", "1000m"]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(
        st.sampled_from(["enabled", "allowed_lifetime_max", "default_policy", "max_lifetime",
                         "local_media_lifetime", "remote_media_lifetime", "include_content",
                         "redact_content"]),
        inner,
        max_size=4,
    ),
    max_leaves=12,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["user_ips_max_age", "redaction_retention_period", "retention",
                         "media_retention", "delete_stale_devices_after", "push", "email",
                         "worker_app", "other"]),
        _VALUES,
    )
)  # fmt: skip
def test_r1_r2_r5_r9_r11_r12_r15_any_yaml_shaped_homeserver_gives_findings(
    homeserver: Any,
) -> None:
    found = find_contradictions(homeserver, DEFAULTS, None)
    assert all(finding.rule in {"R1", "R2", "R5", "R9", "R11", "R12", "R15"} for finding in found)
    assert all("\n" not in str(finding) for finding in found)


def test_r12_deletion_warnings_without_a_mail_sender_are_reported() -> None:
    """notify.account_deletion needs Synapse's mailer: email.notif_from, else no warning."""
    expected = (
        "email.notif_from is absent (no e-mail can be sent); it should be set, with"
        " Synapse's SMTP settings, so that users are warned before their account is deleted"
        " (notify.account_deletion; set it to [] to do without the warnings) (R12)"
    )
    assert _find({"email": None}) == _find({"email": {"smtp_host": "mx"}}) == [expected]
    assert _find({"email": None}, notify={"account_deletion": []}) == []
    assert _find({"email": {"notif_from": "Luxchat <noreply@example.org>"}}) == []
