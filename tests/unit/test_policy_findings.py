"""The module's own settings that check-config reports (R1, R2, R9, R10, R11, R12).

config.md "Beyond the notice" and "Exempt lists": valid settings, reported as findings.
"""

from pathlib import Path
from typing import Any

import pytest

from synapse_lux_privacy.config import parse_config
from synapse_lux_privacy.policy_findings import find_policy_findings


def _found(config: dict[str, Any], server_name: str | None = "localhost") -> list[str]:
    return [str(finding) for finding in find_policy_findings(parse_config(config), server_name)]


def test_r1_r2_r9_r11_r12_the_notice_periods_and_shorter_ones_give_no_finding() -> None:
    assert _found({}) == []
    short = {"retention": {"messages": "12M", "attachments": "6M"}, "logs": {"ip_retention": "1M"}}
    assert _found(short) == []


def test_r1_a_period_beyond_the_notice_names_the_notice_period() -> None:
    assert _found({"retention": {"messages": "10y"}}) == [
        "retention.messages is 10y; it should be at most 24M, the notice's period (at the latest"
        " 24 months after sending), unless this server's notice gives a longer one (R1)"
    ]


@pytest.mark.parametrize(
    ("config", "key", "notice"),
    [
        ({"retention": {"attachments": "13M"}}, "retention.attachments", "12M"),
        ({"retention": {"remote_media": "2y"}}, "retention.remote_media", "12M"),
        ({"logs": {"ip_retention": "12M"}}, "logs.ip_retention", "6M"),
        ({"sessions": {"inactive_logout_after": "1y"}}, "sessions.inactive_logout_after", "6M"),
        ({"accounts": {"inactive_delete_after": "2y"}}, "accounts.inactive_delete_after", "1y"),
        (
            {"retention": {"rules": [{"match": {"type": "m.reaction"}, "lifetime": "36M"}]}},
            "retention.rules[0].lifetime",
            "24M",
        ),
        (
            {"retention": {"rules": [{"match": {"msgtype": "m.video"}, "lifetime": "18M"}]}},
            "retention.rules[0].lifetime",
            "12M",
        ),
        (
            {"retention": {"rules": [{"match": {"media_type": "audio/*"}, "lifetime": "18M"}]}},
            "retention.rules[0].lifetime",
            "12M",
        ),
    ],
)
def test_r1_r2_r9_r11_r12_each_period_beyond_the_notice_is_reported(
    config: dict[str, Any], key: str, notice: str
) -> None:
    (finding,) = _found(config)
    assert finding.startswith(f"{key} is ")
    assert f"it should be at most {notice}, the notice's period" in finding


def test_r1_a_rule_within_the_notice_gives_no_finding() -> None:
    rules = [{"match": {"msgtype": "m.text"}, "lifetime": "24M"}]
    assert _found({"retention": {"rules": rules}}) == []


@pytest.mark.parametrize("pattern", ["re:.*", "re:@.*", "re:@.+:localhost", r"re:@[^:]*:.*"])
def test_r12_an_exempt_pattern_matching_every_user_is_reported(pattern: str) -> None:
    config = {"accounts": {"exempt": ["@admin:localhost", pattern]}}
    assert _found(config) == [
        f'accounts.exempt[1] is "{pattern}", which matches every user, so no account is ever'
        " deleted for inactivity; it should be exact user IDs, or a pattern that matches only"
        " the accounts to keep (R12)"
    ]


@pytest.mark.parametrize("pattern", ["re:@svc-.*:localhost", "re:@.*:other.example", "re:@a.*"])
def test_r12_a_narrower_exempt_pattern_gives_no_finding(pattern: str) -> None:
    assert _found({"accounts": {"exempt": [pattern]}}) == []


def test_r10_an_unreadable_or_empty_token_path_is_reported(tmp_path: Path) -> None:
    national = {"url": "https://dir.example.lu", "token_path": str(tmp_path / "missing")}
    (finding,) = _found({"directory": {"national": national}})
    assert finding.startswith("directory.national.token_path is ")
    assert "which cannot be read (No such file or directory)" in finding
    (tmp_path / "empty").write_text("\n")
    national["token_path"] = str(tmp_path / "empty")
    (finding,) = _found({"directory": {"national": national}})
    assert "which is empty" in finding
    (tmp_path / "token").write_text("secret\n")
    national["token_path"] = str(tmp_path / "token")
    assert _found({"directory": {"national": national}}) == []


def test_r1_r3_a_purge_window_is_reported_with_how_early_messages_may_go() -> None:
    """The default (0) says nothing; a window says how early messages may go."""
    assert _found({"retention": {"purge_window": 0}}) == []
    assert _found({"retention": {"purge_window": "1d"}}) == [
        "retention.purge_window is 1d, so messages may go up to 1d before their lifetime ends,"
        " with a purge that takes a due one; it should be 0, unless this server's notice"
        ' promises only a maximum ("at the latest") and its DPO agreed to deletion this early'
        " (R1, R3)"
    ]
