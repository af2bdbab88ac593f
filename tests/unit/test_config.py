"""parse_config: Luxchat defaults (R1-R12), key-by-key validation and the short-period guard."""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from synapse.config import ConfigError

from synapse_lux_privacy.config import (
    AccountsConfig,
    AdaptivePaceConfig,
    ExportsConfig,
    LuxPrivacyConfig,
    NationalDirectoryConfig,
    RetentionMatch,
    parse_config,
)
from synapse_lux_privacy.units import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    MONTH_MS,
    SECOND_MS,
    YEAR_MS,
    dotted,
)

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = parse_config(None)


def _error(raw: object) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)  # type: ignore[arg-type]
    return caught.value


# --- defaults, key by key -------------------------------------------------------------


def test_absent_empty_and_null_config_are_all_defaults() -> None:
    assert parse_config({}) == DEFAULTS
    assert parse_config({"retention": None, "quota": None, "directory": None}) == DEFAULTS


def test_dry_run_default_is_false() -> None:
    assert DEFAULTS.dry_run is False


def test_sweep_interval_default_is_1_hour() -> None:
    assert DEFAULTS.sweep_interval_ms == HOUR_MS


def test_allow_future_sweeps_default_is_false() -> None:
    assert DEFAULTS.allow_future_sweeps is False


def test_allow_short_periods_default_is_false() -> None:
    assert DEFAULTS.allow_short_periods is False


def test_sweep_batch_size_default_is_500() -> None:
    assert DEFAULTS.sweep_batch_size == 500


def test_r1_r12_sweep_pace_is_unlimited_by_default_and_takes_a_rate() -> None:
    assert DEFAULTS.sweep_pace is None
    assert parse_config({"sweep_pace": 50}).sweep_pace == 50.0
    assert parse_config({"sweep_pace": 0.5}).sweep_pace == 0.5


def test_r1_r12_sweep_adaptive_pace_is_on_by_default_and_bounded() -> None:
    """Issue 22: the shipped configuration paces the sweep, resting eight times a purge's time
    after it (benchmarks/README.md, "Invisible by default")."""
    assert DEFAULTS.sweep_adaptive_pace == AdaptivePaceConfig(True, 1.5, 10.0, 8.0)
    raw = {"sweep_adaptive_pace": {"enabled": False, "max_slowdown": 2, "min_pace": 0.5, "rest": 0}}
    assert parse_config(raw).sweep_adaptive_pace == AdaptivePaceConfig(False, 2.0, 0.5, 0.0)
    assert (
        parse_config({"sweep_adaptive_pace": None}).sweep_adaptive_pace
        == DEFAULTS.sweep_adaptive_pace
    )
    # A sweep_pace below the default min_pace stays valid: the default follows it.
    assert parse_config({"sweep_pace": 4}).sweep_adaptive_pace.min_pace == 4.0


@pytest.mark.parametrize("rest", [-1, 100.5, True, "2", None])
def test_r1_r12_a_rest_out_of_bounds_is_an_error_naming_the_key(rest: object) -> None:
    with pytest.raises(ConfigError, match=r"sweep_adaptive_pace\.rest"):
        parse_config({"sweep_adaptive_pace": {"rest": rest}})


def test_r1_messages_default_is_24_months() -> None:
    assert DEFAULTS.retention.messages_ms == 24 * 30 * DAY_MS


def test_r2_attachments_default_is_12_months() -> None:
    assert DEFAULTS.retention.attachments_ms == 12 * 30 * DAY_MS


def test_r6_remote_media_default_is_12_months() -> None:
    assert DEFAULTS.retention.remote_media_ms == 12 * 30 * DAY_MS


def test_r5_redacted_content_default_is_7_days() -> None:
    assert DEFAULTS.retention.redacted_content_ms == 7 * DAY_MS


def test_r1_rules_default_is_empty() -> None:
    assert DEFAULTS.retention.rules == ()


def test_r1_purge_window_default_is_zero_nothing_goes_before_its_time() -> None:
    assert DEFAULTS.retention.purge_window_ms == 0


def test_r1_purge_window_takes_a_duration_under_half_the_shortest_event_lifetime() -> None:
    config = parse_config({"retention": {"purge_window": "1d"}})
    assert config.retention.purge_window_ms == DAY_MS
    short = {"allow_short_periods": True, "retention": {"messages": "10d", "purge_window": "4d"}}
    assert parse_config(short).retention.purge_window_ms == 4 * DAY_MS


def test_r4_quota_is_off_by_default() -> None:
    assert DEFAULTS.quota.default_bytes is None


def test_r4_quota_counts_default_is_media_and_events() -> None:
    assert DEFAULTS.quota.counts == frozenset({"media", "events"})


def test_r4_quota_eviction_interval_default_is_30_seconds() -> None:
    assert DEFAULTS.quota.eviction_interval_ms == 30 * SECOND_MS


def test_r4_quota_notice_texts_default_to_the_built_in_ones() -> None:
    assert DEFAULTS.quota.notice_texts is None


def test_r11_inactive_logout_default_is_6_months() -> None:
    assert DEFAULTS.sessions.inactive_logout_after_ms == 6 * 30 * DAY_MS


def test_r12_inactive_delete_default_is_1_year() -> None:
    assert DEFAULTS.accounts.inactive_delete_after_ms == 365 * DAY_MS


def test_r12_exempt_default_is_empty() -> None:
    assert DEFAULTS.accounts.exempt == ()
    assert not DEFAULTS.accounts.is_exempt("@admin:example.org")


def test_r12_deletion_warnings_default_30_and_7_days_in_french_then_english() -> None:
    assert DEFAULTS.notify.account_deletion_ms == (30 * DAY_MS, 7 * DAY_MS)
    assert DEFAULTS.notify.languages == ("fr", "en")
    assert DEFAULTS.notify.texts == ()


def test_r12_deletion_warnings_are_ordered_longest_first_and_texts_configurable() -> None:
    config = parse_config(
        {
            "notify": {
                "account_deletion": ["1d", "2w"],
                "languages": ["de", "fr"],
                "texts": {"de": {"subject": "Konto {user_id}", "body": "Am {date}."}},
            }
        }
    )
    assert config.notify.account_deletion_ms == (14 * DAY_MS, DAY_MS)
    assert config.notify.languages == ("de", "fr")
    assert config.notify.texts == (("de", "Konto {user_id}", "Am {date}."),)
    off = parse_config({"notify": {"account_deletion": [], "languages": []}})
    assert off.notify.account_deletion_ms == ()


def test_r9_ip_retention_default_is_6_months() -> None:
    assert DEFAULTS.logs.ip_retention_ms == 6 * 30 * DAY_MS


def test_r10_require_consent_default_is_true() -> None:
    assert DEFAULTS.directory.require_consent is True


def test_r10_national_directory_default_is_absent() -> None:
    assert DEFAULTS.directory.national is None


def test_r10_national_removal_deadline_default_is_24_hours() -> None:
    config = parse_config({"directory": {"national": {"url": "https://d.lu", "token_path": "/t"}}})
    assert config.directory.national == NationalDirectoryConfig("https://d.lu", "/t", 24 * HOUR_MS)


# --- the contract example and the shipped snippet -------------------------------------


def _module_config(text: str) -> Any:
    (entry,) = yaml.safe_load(text)["modules"]
    assert entry["module"] == "synapse_lux_privacy.LuxPrivacyModule"
    return entry["config"]


def test_r1_to_r12_contract_example_parses() -> None:
    spec = Path("/work/shared/spec/config.md")
    if not spec.exists():
        pytest.skip("shared spec not available")
    block = spec.read_text().split("```yaml\n", 1)[1].split("```", 1)[0]
    config = parse_config(_module_config(block))
    assert config.quota.default_bytes == 5 * 1024**3
    assert config.accounts.is_exempt("@admin:example.org")
    assert config.directory.national == NationalDirectoryConfig(
        "https://directory.example.lu/api/v1", "/run/secrets/national_directory_token", DAY_MS
    )
    rules = config.retention.rules
    assert [r.lifetime_ms for r in rules] == [6 * MONTH_MS, 12 * MONTH_MS, 12 * MONTH_MS]
    assert rules[0].match == RetentionMatch(type="m.room.message", msgtype="m.video")
    assert rules[2].match == RetentionMatch(media_type="audio/*")
    assert config.audit.certificates_to == ()
    assert config.exports == ExportsConfig(None, 7 * DAY_MS)


def test_shipped_snippet_is_the_luxchat_defaults() -> None:
    snippet = (ROOT / "config" / "homeserver-snippet.yaml").read_text()
    assert parse_config(_module_config(snippet)) == DEFAULTS


def _all_keys() -> list[str]:
    return [
        "dry_run", "sweep_interval", "allow_future_sweeps", "allow_short_periods",
        "sweep_batch_size", "sweep_pace", "sweep_adaptive_pace", "enabled", "max_slowdown",
        "min_pace", "retention", "messages", "attachments", "remote_media",
        "redacted_content", "rules", "purge_window", "match", "lifetime", "msgtype", "media_type",
        "quota",
        "default_bytes", "counts", "eviction_interval", "notice_texts", "sessions",
        "inactive_logout_after", "accounts",
        "inactive_delete_after", "exempt", "logs", "ip_retention", "directory",
        "require_consent", "national", "url", "token_path", "removal_deadline", "notify",
        "account_deletion", "languages", "texts", "subject", "body", "certificates_to",
        "exports",
    ]  # fmt: skip


@pytest.mark.parametrize("document", ["config/homeserver-snippet.yaml", "docs/configuration.md"])
def test_every_key_is_documented(document: str) -> None:
    text = (ROOT / document).read_text()
    assert [key for key in _all_keys() if f"{key}:" not in text and f"`{key}`" not in text] == []


# --- errors, key by key ---------------------------------------------------------------

ERRORS = [
    # (raw config, key path, text the one-line message must contain)
    ([1], (), "config: a list is not a mapping"),
    ({"dryrun": True}, ("dryrun",), "unknown key; allowed keys: dry_run, sweep_interval"),
    ({"dry_run": "yes"}, ("dry_run",), 'dry_run: "yes" is not true or false'),
    ({"dry_run": 1}, ("dry_run",), "dry_run: 1 is not true or false"),
    ({"allow_future_sweeps": "no"}, ("allow_future_sweeps",), "is not true or false"),
    ({"allow_short_periods": None}, ("allow_short_periods",), "null is not true or false"),
    ({"sweep_interval": 1.5}, ("sweep_interval",), "sweep_interval: 1.5 is not a duration"),
    ({"sweep_interval": "30s"}, ("sweep_interval",), '"30s" is too short; use at least 1m'),
    ({"sweep_interval": 0}, ("sweep_interval",), "0 is too short"),
    ({"sweep_batch_size": "500"}, ("sweep_batch_size",), "is not a whole number from 1 to 10000"),
    ({"sweep_batch_size": True}, ("sweep_batch_size",), "true is not a whole number"),
    ({"sweep_batch_size": 0}, ("sweep_batch_size",), "0 is not a whole number from 1 to 10000"),
    ({"sweep_batch_size": 10001}, ("sweep_batch_size",), "10001 is not a whole number"),
    ({"sweep_pace": "fast"}, ("sweep_pace",), '"fast" is not a number of items per second'),
    ({"sweep_pace": 0}, ("sweep_pace",), "0 is not a number of items per second above 0"),
    ({"sweep_pace": True}, ("sweep_pace",), "true is not a number of items per second"),
    ({"sweep_adaptive_pace": True}, ("sweep_adaptive_pace",), "true is not a mapping"),
    ({"sweep_adaptive_pace": {"on": True}}, ("sweep_adaptive_pace", "on"), "allowed keys: enabled"),
    ({"sweep_adaptive_pace": {"enabled": 1}}, ("sweep_adaptive_pace", "enabled"), "1 is not true"),
    ({"sweep_adaptive_pace": {"max_slowdown": 1}}, ("sweep_adaptive_pace", "max_slowdown"),
     "1 is not a number above 1 and at most 100"),
    ({"sweep_adaptive_pace": {"max_slowdown": "2x"}}, ("sweep_adaptive_pace", "max_slowdown"),
     '"2x" is not a number above 1'),
    ({"sweep_adaptive_pace": {"min_pace": 0}}, ("sweep_adaptive_pace", "min_pace"),
     "0 is not a number of items per second above 0"),
    ({"sweep_adaptive_pace": {"min_pace": False}}, ("sweep_adaptive_pace", "min_pace"),
     "false is not a number"),
    ({"sweep_pace": 5, "sweep_adaptive_pace": {"min_pace": 10}},
     ("sweep_adaptive_pace", "min_pace"), "10 is above sweep_pace (5); use at most sweep_pace"),
    ({"retention": "24M"}, ("retention",), 'retention: "24M" is not a mapping; expected keys'),
    ({"retention": {"message": "24M"}}, ("retention", "message"), "allowed keys: messages"),
    ({"retention": {"messages": True}}, ("retention", "messages"), "true is not a duration"),
    ({"retention": {"messages": "24x"}}, ("retention", "messages"), '"24x" is not a duration'),
    ({"retention": {"attachments": []}}, ("retention", "attachments"), "a list is not a duration"),
    ({"retention": {"attachments": "-1M"}}, ("retention", "attachments"), "is not a duration"),
    ({"retention": {"remote_media": 1.0}}, ("retention", "remote_media"), "is not a duration"),
    ({"retention": {"remote_media": "1 y"}}, ("retention", "remote_media"), "is not a duration"),
    ({"retention": {"redacted_content": None}}, ("retention", "redacted_content"), "null is not"),
    ({"retention": {"redacted_content": "7days"}}, ("retention", "redacted_content"), "not a"),
    ({"retention": {"rules": {}}}, ("retention", "rules"), "a mapping is not a list of rules"),
    ({"retention": {"rules": ["x"]}}, ("retention", "rules", "0"), 'rules[0]: "x" is not a map'),
    (
        {"retention": {"rules": [{"lifetime": "1y"}]}},
        ("retention", "rules", "0"),
        "retention.rules[0]: missing key match; required keys: match, lifetime",
    ),
    (
        {"retention": {"rules": [{"match": {"type": "m.sticker"}}]}},
        ("retention", "rules", "0"),
        "missing key lifetime",
    ),
    (
        {"retention": {"rules": [{"match": {"type": "x"}, "lifetime": "1y", "why": 1}]}},
        ("retention", "rules", "0", "why"),
        "unknown key; allowed keys: match, lifetime",
    ),
    (
        {"retention": {"rules": [{"match": "m.sticker", "lifetime": "1y"}]}},
        ("retention", "rules", "0", "match"),
        "is not a mapping; expected keys: type, msgtype, media_type",
    ),
    (
        {"retention": {"rules": [{"match": {}, "lifetime": "1y"}]}},
        ("retention", "rules", "0", "match"),
        "needs at least one of type, msgtype, media_type",
    ),
    (
        {"retention": {"rules": [{"match": {"sender": "@a:b"}, "lifetime": "1y"}]}},
        ("retention", "rules", "0", "match", "sender"),
        "unknown key",
    ),
    (
        {"retention": {"rules": [{"match": {"type": 5}, "lifetime": "1y"}]}},
        ("retention", "rules", "0", "match", "type"),
        "5 is not a non-empty string",
    ),
    (
        {"retention": {"rules": [{"match": {"msgtype": ""}, "lifetime": "1y"}]}},
        ("retention", "rules", "0", "match", "msgtype"),
        '"" is not a non-empty string',
    ),
    (
        {"retention": {"rules": [{"match": {"media_type": ["audio/*"]}, "lifetime": "1y"}]}},
        ("retention", "rules", "0", "match", "media_type"),
        "a list is not a non-empty string",
    ),
    (
        {"retention": {"rules": [{"match": {"type": "x"}, "lifetime": "1yr"}]}},
        ("retention", "rules", "0", "lifetime"),
        'retention.rules[0].lifetime: "1yr" is not a duration',
    ),
    ({"quota": 5}, ("quota",), "quota: 5 is not a mapping; expected keys: default_bytes, counts"),
    ({"quota": {"bytes": "5G"}}, ("quota", "bytes"), "allowed keys: default_bytes, counts"),
    ({"quota": {"default_bytes": True}}, ("quota", "default_bytes"), "true is not a size"),
    ({"quota": {"default_bytes": "5GB"}}, ("quota", "default_bytes"), '"5GB" is not a size'),
    ({"quota": {"default_bytes": 0}}, ("quota", "default_bytes"), "or null for no quota"),
    ({"quota": {"default_bytes": "0G"}}, ("quota", "default_bytes"), '"0G" is zero'),
    ({"quota": {"counts": "media"}}, ("quota", "counts"), '"media" is not a list'),
    ({"quota": {"counts": [1]}}, ("quota", "counts", "0"), "1 is not a non-empty string"),
    ({"quota": {"counts": ["files"]}}, ("quota", "counts", "0"), "not one of media, events"),
    ({"quota": {"counts": []}}, ("quota", "counts"), "quota.counts: [] is empty"),
    ({"quota": {"eviction_interval": 500}}, ("quota", "eviction_interval"), "between 1s and 1h"),
    ({"quota": {"eviction_interval": "2h"}}, ("quota", "eviction_interval"), "between 1s and 1h"),
    ({"quota": {"eviction_interval": "30 s"}}, ("quota", "eviction_interval"), "not a duration"),
    ({"quota": {"notice_texts": "hello"}}, ("quota", "notice_texts"), "is not a mapping"),
    ({"quota": {"notice_texts": {"french": "x"}}}, ("quota", "notice_texts", "french"), "tag"),
    ({"quota": {"notice_texts": {"fr": ""}}}, ("quota", "notice_texts", "fr"), "non-empty"),
    (
        {"quota": {"notice_texts": {"en": "{size} removed"}}},
        ("quota", "notice_texts", "en"),
        "it may only use {count}, {removed}, {quota}",
    ),
    ({"quota": {"notice_texts": {"en": "{count"}}}, ("quota", "notice_texts", "en"), "not a valid"),
    ({"quota": {"notice_texts": {"en": "{quota:d}"}}}, ("quota", "notice_texts", "en"), "valid"),
    ({"sessions": []}, ("sessions",), "is not a mapping; expected keys: inactive_logout_after"),
    ({"sessions": {"logout_after": "6M"}}, ("sessions", "logout_after"), "unknown key"),
    (
        {"sessions": {"inactive_logout_after": "6 months"}},
        ("sessions", "inactive_logout_after"),
        "is not a duration",
    ),
    (
        {"sessions": {"inactive_logout_after": False}},
        ("sessions", "inactive_logout_after"),
        "false is not a duration",
    ),
    ({"accounts": "x"}, ("accounts",), "expected keys: inactive_delete_after, exempt"),
    ({"accounts": {"exempts": []}}, ("accounts", "exempts"), "unknown key"),
    (
        {"accounts": {"inactive_delete_after": "1Y"}},
        ("accounts", "inactive_delete_after"),
        '"1Y" is not a duration',
    ),
    ({"accounts": {"exempt": "@a:b.c"}}, ("accounts", "exempt"), '"@a:b.c" is not a list'),
    ({"accounts": {"exempt": [None]}}, ("accounts", "exempt", "0"), "null is not a non-empty"),
    (
        {"accounts": {"exempt": ["@ok:example.org", "re:@bad(:example.org"]}},
        ("accounts", "exempt", "1"),
        'accounts.exempt[1]: "re:@bad(:example.org" is not a valid regular expression',
    ),
    ({"accounts": {"exempt": ["re:a{99999999999}"]}}, ("accounts", "exempt", "0"), "not a valid"),
    ({"retention": {"purge_window": "5w"}}, ("retention", "purge_window"),
     '"5w" is longer than 30 days; use at most 30d'),
    ({"retention": {"purge_window": -1}}, ("retention", "purge_window"), "-1 is negative"),
    ({"retention": {"purge_window": "a day"}}, ("retention", "purge_window"), "is not a duration"),
    ({"retention": {"messages": "10d", "purge_window": "5d"}}, ("retention", "purge_window"),
     '"5d" is not under half the shortest message lifetime (10 days)'),
    ({"retention": {"rules": [{"match": {"type": "m.sticker"}, "lifetime": "20d"}],
                    "purge_window": "10d"}},
     ("retention", "purge_window"), "not under half the shortest message lifetime (20 days)"),
    ({"logs": "6M"}, ("logs",), "expected keys: ip_retention"),
    ({"logs": {"ip": "6M"}}, ("logs", "ip"), "unknown key; allowed keys: ip_retention"),
    ({"logs": {"ip_retention": 1e9}}, ("logs", "ip_retention"), "is not a duration"),
    ({"directory": True}, ("directory",), "expected keys: require_consent, national"),
    ({"directory": {"consent": True}}, ("directory", "consent"), "unknown key"),
    (
        {"directory": {"require_consent": "true"}},
        ("directory", "require_consent"),
        '"true" is not true or false',
    ),
    ({"directory": {"national": "https://d.lu"}}, ("directory", "national"), "is not a mapping"),
    (
        {"directory": {"national": {"token_path": "/t"}}},
        ("directory", "national"),
        "directory.national: missing key url; required keys: url, token_path",
    ),
    (
        {"directory": {"national": {"url": "https://d.lu"}}},
        ("directory", "national"),
        "missing key token_path",
    ),
    (
        {"directory": {"national": {"url": "https://d.lu", "token_path": "/t", "token": "x"}}},
        ("directory", "national", "token"),
        "allowed keys: url, token_path, removal_deadline",
    ),
    (
        {"directory": {"national": {"url": "ftp://d.lu", "token_path": "/t"}}},
        ("directory", "national", "url"),
        'directory.national.url: "ftp://d.lu" is not an http:// or https:// URL',
    ),
    (
        {"directory": {"national": {"url": "https://", "token_path": "/t"}}},
        ("directory", "national", "url"),
        "is not an http:// or https:// URL",
    ),
    (
        {"directory": {"national": {"url": "http://[::1", "token_path": "/t"}}},
        ("directory", "national", "url"),
        "is not an http:// or https:// URL",
    ),
    (
        {"directory": {"national": {"url": 42, "token_path": "/t"}}},
        ("directory", "national", "url"),
        "42 is not an http",
    ),
    (
        {"directory": {"national": {"url": "https://d.lu", "token_path": ""}}},
        ("directory", "national", "token_path"),
        'directory.national.token_path: "" is not a non-empty string',
    ),
    (
        {
            "directory": {
                "national": {"url": "https://d.lu", "token_path": "/t", "removal_deadline": "24"}
            }
        },
        ("directory", "national", "removal_deadline"),
        '"24" is not a duration',
    ),
    (
        {
            "directory": {
                "national": {"url": "https://d.lu", "token_path": "/t", "removal_deadline": "0h"}
            }
        },
        ("directory", "national", "removal_deadline"),
        '"0h" is zero',
    ),
    ({"notify": {"account_deletion": "30d"}}, ("notify", "account_deletion"), "not a list"),
    ({"notify": {"account_deletion": ["30d", "0d"]}}, ("notify", "account_deletion", "1"),
     '"0d" is zero or listed twice'),
    ({"notify": {"account_deletion": ["7d", "1w"]}}, ("notify", "account_deletion", "1"),
     "listed twice"),
    ({"notify": {"languages": ["de"]}}, ("notify", "languages", "0"),
     '"de" has no text: built-in texts exist for fr, en; others need notify.texts.de'),
    ({"notify": {"languages": []}}, ("notify", "languages"), "[] is empty"),
    ({"notify": {"texts": {"de": {"subject": "x"}}}}, ("notify", "texts", "de"),
     "missing key body"),
    ({"notify": {"texts": {"de": {"subject": "{when}", "body": "b"}}}},
     ("notify", "texts", "de", "subject"), "it may only use {user_id}, {date}"),
    ({"notify": {"texts": {"d e": {"subject": "s", "body": "b"}}}}, ("notify", "texts", "d e"),
     "is not a language tag"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "path", "text"), ERRORS)
def test_every_invalid_key_stops_with_its_path_and_value(
    raw: object, path: tuple[str, ...], text: str
) -> None:
    error = _error(raw)
    assert error.path == path
    assert text in error.msg
    assert "\n" not in error.msg


def test_error_message_starts_with_the_dotted_key_path() -> None:
    error = _error({"retention": {"rules": [{"match": {"type": "x"}, "lifetime": "1yr"}]}})
    assert error.msg.startswith("retention.rules[0].lifetime: ")


# --- short-period guard (R1, R2, R5, R6, R9, R11, R12) ----------------------------------

PERIODS = [
    ("retention", "messages"),
    ("retention", "attachments"),
    ("retention", "remote_media"),
    ("retention", "redacted_content"),
    ("sessions", "inactive_logout_after"),
    ("accounts", "inactive_delete_after"),
    ("logs", "ip_retention"),
]


def test_r1_24m_suggests_24M() -> None:
    error = _error({"retention": {"messages": "24m"}})
    assert error.path == ("retention", "messages")
    assert error.msg == (
        "retention.messages: 24m is 24 minutes; did you mean 24M (24 months)? "
        "Periods under one day need allow_short_periods: true."
    )


def test_r9_1m_suggests_1M_in_the_singular() -> None:
    assert _error({"logs": {"ip_retention": "1m"}}).msg == (
        "logs.ip_retention: 1m is 1 minute; did you mean 1M (1 month)? "
        "Periods under one day need allow_short_periods: true."
    )


@pytest.mark.parametrize(("section", "key"), PERIODS)
def test_r1_r2_r5_r6_r9_r11_r12_periods_under_one_day_are_errors(section: str, key: str) -> None:
    error = _error({section: {key: "23h"}})
    assert error.path == (section, key)
    assert error.msg == (
        f"{section}.{key}: 23h is 23 hours, less than one day; "
        "periods under one day need allow_short_periods: true."
    )


@pytest.mark.parametrize(("section", "key"), PERIODS)
def test_r1_r2_r5_r6_r9_r11_r12_periods_of_one_day_are_allowed(section: str, key: str) -> None:
    config = parse_config({section: {key: "1d"}})
    assert config != DEFAULTS


def test_r1_bare_number_is_milliseconds_and_says_so() -> None:
    assert _error({"retention": {"messages": 24}}).msg == (
        "retention.messages: 24 is 24 milliseconds (a bare number is milliseconds), "
        "less than one day; periods under one day need allow_short_periods: true."
    )


def test_r1_rule_lifetime_under_one_day_is_an_error() -> None:
    error = _error({"retention": {"rules": [{"match": {"type": "x"}, "lifetime": "6m"}]}})
    assert error.path == ("retention", "rules", "0", "lifetime")
    assert "6m is 6 minutes; did you mean 6M (6 months)?" in error.msg


@pytest.mark.parametrize(("section", "key"), PERIODS)
def test_r1_r2_r5_r6_r9_r11_r12_allow_short_periods_accepts_minutes(section: str, key: str) -> None:
    config = parse_config({"allow_short_periods": True, section: {key: "24m"}})
    assert 24 * MINUTE_MS in _periods(config)


def _periods(config: LuxPrivacyConfig) -> list[int]:
    return [
        config.retention.messages_ms,
        config.retention.attachments_ms,
        config.retention.remote_media_ms,
        config.retention.redacted_content_ms,
        config.sessions.inactive_logout_after_ms,
        config.accounts.inactive_delete_after_ms,
        config.logs.ip_retention_ms,
    ]


def test_r1_allow_short_periods_works_whatever_the_key_order() -> None:
    raw = {"retention": {"messages": "24m"}, "allow_short_periods": True}
    assert list(raw) == ["retention", "allow_short_periods"]
    assert parse_config(raw).retention.messages_ms == 24 * MINUTE_MS
    rules = {"rules": [{"match": {"type": "x"}, "lifetime": "5m"}]}
    assert parse_config({"retention": rules, "allow_short_periods": True}).retention.rules[
        0
    ].lifetime_ms == (5 * MINUTE_MS)


@pytest.mark.parametrize("zero", [0, "0s", "0d", "0M"])
@pytest.mark.parametrize(("section", "key"), PERIODS)
def test_r1_r2_r5_r6_r9_r11_r12_zero_is_never_allowed(section: str, key: str, zero: object) -> None:
    error = _error({"allow_short_periods": True, section: {key: zero}})
    assert error.path == (section, key)
    assert "is zero; use a period longer than zero" in error.msg


def test_sweep_interval_minimum_is_one_minute() -> None:
    assert parse_config({"sweep_interval": "1m"}).sweep_interval_ms == MINUTE_MS
    assert parse_config({"sweep_interval": 60_000}).sweep_interval_ms == MINUTE_MS
    assert _error({"sweep_interval": 59_999}).path == ("sweep_interval",)


def test_sweep_interval_minimum_is_one_second_with_allow_short_periods() -> None:
    config = parse_config({"sweep_interval": "1s", "allow_short_periods": True})
    assert config.sweep_interval_ms == SECOND_MS
    error = _error({"sweep_interval": 999, "allow_short_periods": True})
    assert error.msg == "sweep_interval: 999 is too short; use at least 1s"


def test_sweep_batch_size_bounds_are_accepted() -> None:
    assert parse_config({"sweep_batch_size": 1}).sweep_batch_size == 1
    assert parse_config({"sweep_batch_size": 10000}).sweep_batch_size == 10000


def test_booleans_are_read() -> None:
    config = parse_config(
        {"dry_run": True, "allow_future_sweeps": True, "directory": {"require_consent": False}}
    )
    assert (config.dry_run, config.allow_future_sweeps) == (True, True)
    assert config.directory.require_consent is False


# --- R4 quota ---------------------------------------------------------------------------


def test_r4_quota_size_and_counts() -> None:
    config = parse_config({"quota": {"default_bytes": "512M", "counts": ["events"]}})
    assert config.quota.default_bytes == 512 * 1024**2
    assert config.quota.counts == frozenset({"events"})


def test_r4_quota_eviction_interval_and_notice_texts() -> None:
    quota = parse_config(
        {"quota": {"eviction_interval": "2s", "notice_texts": {"lb": "{count}", "en": "x"}}}
    ).quota
    assert quota.eviction_interval_ms == 2 * SECOND_MS
    assert quota.notice_texts == (("lb", "{count}"), ("en", "x"))
    assert parse_config({"quota": {"notice_texts": {}}}).quota.notice_texts == ()


def test_r4_quota_null_is_no_quota() -> None:
    assert parse_config({"quota": {"default_bytes": None}}).quota.default_bytes is None


# --- R1/R2 rules ------------------------------------------------------------------------

RULES = {
    "retention": {
        "messages": "24M",
        "attachments": "12M",
        "rules": [
            {"match": {"type": "m.room.message", "msgtype": "m.video"}, "lifetime": "6M"},
            {"match": {"type": "m.sticker"}, "lifetime": "3M"},
            {"match": {"media_type": "audio/*"}, "lifetime": "2M"},
            {"match": {"msgtype": "m.audio"}, "lifetime": "1M"},
            {"match": {"type": "m.room.message"}, "lifetime": "18M"},
        ],
    }
}


@pytest.mark.parametrize(
    ("event_type", "msgtype", "months"),
    [
        ("m.room.message", "m.video", 6),
        ("m.sticker", None, 3),
        ("m.room.message", "m.audio", 1),
        ("m.room.message", "m.text", 18),
        ("m.room.message", None, 18),
        ("m.room.encrypted", None, 24),
        ("m.reaction", None, 24),
    ],
)
def test_r1_event_lifetime_first_matching_rule_else_messages(
    event_type: str, msgtype: str | None, months: int
) -> None:
    retention = parse_config(RULES).retention
    assert retention.event_lifetime_ms(event_type, msgtype) == months * MONTH_MS


@pytest.mark.parametrize(
    ("media_type", "months"),
    [("audio/ogg", 2), ("AUDIO/MP4", 2), ("video/mp4", 12), ("image/png", 12), ("audio", 12)],
)
def test_r2_media_lifetime_by_content_type_glob_else_attachments(
    media_type: str, months: int
) -> None:
    assert parse_config(RULES).retention.media_lifetime_ms(media_type) == months * MONTH_MS


def test_r2_media_only_match_never_matches_events() -> None:
    match = RetentionMatch(media_type="*")
    assert not match.matches_event("m.room.message", "m.audio")
    assert match.matches_media("audio/ogg")


def test_r1_event_only_match_never_matches_media() -> None:
    match = RetentionMatch(type="m.room.message", msgtype="m.audio")
    assert not match.matches_media("audio/ogg")
    assert match.matches_event("m.room.message", "m.audio")
    assert not match.matches_event("m.room.message", None)
    assert not match.matches_event("m.sticker", "m.audio")


def test_r1_r2_combined_match_applies_to_events_and_media_separately() -> None:
    match = RetentionMatch(type="m.room.message", media_type="video/*")
    assert match.matches_event("m.room.message", "m.text")
    assert match.matches_media("video/webm")
    assert not match.matches_media("image/png")


# --- R12 exemptions ---------------------------------------------------------------------


def test_r12_plain_user_id_is_compared_exactly() -> None:
    accounts = parse_config({"accounts": {"exempt": ["@admin:example.org"]}}).accounts
    assert accounts.is_exempt("@admin:example.org")
    assert not accounts.is_exempt("@adminXexample.org")
    assert not accounts.is_exempt("@admin:exampleXorg")
    assert not accounts.is_exempt("@admin:example.org.evil")
    assert not accounts.is_exempt("@ADMIN:example.org")


def test_r12_plain_user_id_with_port_is_compared_exactly() -> None:
    accounts = AccountsConfig(YEAR_MS, ("@bot:localhost:8448",))
    assert accounts.is_exempt("@bot:localhost:8448")
    assert not accounts.is_exempt("@bot:localhost:8449")


def test_r12_re_entries_are_full_match_regexes() -> None:
    accounts = parse_config({"accounts": {"exempt": [r"re:@bot-\d+:example\.org"]}}).accounts
    assert accounts.is_exempt("@bot-12:example.org")
    assert not accounts.is_exempt("@bot-12:example.org.evil")
    assert not accounts.is_exempt("@xbot-12:example.org")
    assert not accounts.is_exempt("@bot-x:example.org")


def test_r12_plus_in_a_user_id_is_compared_exactly() -> None:
    accounts = AccountsConfig(YEAR_MS, ("@a+b:example.org",))
    assert accounts.is_exempt("@a+b:example.org")
    assert not accounts.is_exempt("@aaab:example.org")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("admin", '"admin" is neither a user ID nor re:<pattern>'),
        ("@admin", '"@admin" is neither a user ID nor re:<pattern>'),
        ("admin:localhost", '"admin:localhost" is neither a user ID nor re:<pattern>'),
        ("@admin:", '"@admin:" is neither a user ID nor re:<pattern>'),
        ("@:localhost", '"@:localhost" is neither a user ID nor re:<pattern>'),
        ("@a b:localhost", '"@a b:localhost" is neither a user ID nor re:<pattern>'),
        (
            "@Admin:localhost",
            '"@Admin:localhost" is neither a user ID nor re:<pattern>: Synapse registers'
            ' lower-case localparts only; did you mean "@admin:localhost"?',
        ),
        (
            "@svc-.*:localhost",
            '"@svc-.*:localhost" is neither a user ID nor re:<pattern>;'
            " for a regular expression write re:@svc-.*:localhost",
        ),
        (".*", '".*" is neither a user ID nor re:<pattern>'),
        ("@" + "a" * 250 + ":x.lu", "is neither a user ID nor re:<pattern>: longer than 255"),
        ("re:", '"re:" has an empty pattern'),
    ],
)
def test_r12_exempt_entry_that_can_never_match_is_a_config_error(entry: str, message: str) -> None:
    """config.md "Exempt lists": an entry is a user ID that can exist, or re:<pattern>."""
    with pytest.raises(ConfigError) as raised:
        parse_config({"accounts": {"exempt": ["@ok:localhost", entry]}})
    assert raised.value.path == ("accounts", "exempt", "1")
    assert raised.value.msg.startswith("accounts.exempt[1]: ")
    assert message in raised.value.msg


@pytest.mark.parametrize(
    "entry",
    ["@admin:localhost", "@a.b_c=d-e/f+g:example.org", "@bot:localhost:8448", "@u:[::1]:8448",
     "@u:192.168.0.1", "@0:x"],
)  # fmt: skip
def test_r12_exempt_user_ids_synapse_can_register_are_accepted(entry: str) -> None:
    assert parse_config({"accounts": {"exempt": [entry]}}).accounts.is_exempt(entry)


def test_r12_exempt_lists_mix_exact_and_regex() -> None:
    accounts = AccountsConfig(YEAR_MS, ("@admin:example.org", "re:@svc-.*:example.org"))
    assert accounts.is_exempt("@admin:example.org")
    assert accounts.is_exempt("@svc-mail:example.org")
    assert not accounts.is_exempt("@alice:example.org")


def test_r12_accounts_config_compares_and_hashes_by_public_fields() -> None:
    first = parse_config({"accounts": {"exempt": ["@a:b.c", "re:@x.*:b.c"]}})
    second = parse_config({"accounts": {"exempt": ["@a:b.c", "re:@x.*:b.c"]}})
    assert first == second
    assert hash(first) == hash(second)
    assert "_patterns" not in repr(first.accounts)


# --- robustness -------------------------------------------------------------------------

_KEYS = st.sampled_from([*_all_keys(), "type", "x", "0"]) | st.text(max_size=8) | st.integers()
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=True)
    | st.sampled_from(["24M", "24m", "1d", "5G", "0", "m.room.message", "audio/*", "(", "[",
                       "https://x.lu", "media", "events", "@a:b.c", "a{99999999999}"])
    | st.text(max_size=12)
)  # fmt: skip
_YAML = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(_YAML)
def test_any_yaml_shaped_input_gives_a_config_or_a_config_error(raw: object) -> None:
    try:
        result = parse_config(raw)  # type: ignore[arg-type]
    except ConfigError as e:
        assert isinstance(e.path, tuple)
        assert all(isinstance(part, str) for part in e.path)
        assert e.msg.startswith(dotted(e.path) + ": ")
        assert "\n" not in e.msg
    else:
        assert isinstance(result, LuxPrivacyConfig)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "retention": st.dictionaries(
                st.sampled_from(["messages", "attachments", "rules"]), _YAML, max_size=3
            ),
            "accounts": st.fixed_dictionaries({"exempt": st.lists(st.text(max_size=6))}),
            "directory": st.fixed_dictionaries({"national": st.dictionaries(_KEYS, _YAML)}),
        },
    )
)
def test_near_valid_input_gives_a_config_or_a_config_error(raw: dict[str, Any]) -> None:
    try:
        parse_config(raw)
    except ConfigError as e:
        assert isinstance(e.path, tuple)
        assert e.msg.startswith(dotted(e.path) + ": ")


def test_r14_exports_and_certificate_addresses_parse() -> None:
    config = parse_config(
        {
            "audit": {"certificates_to": ["dpo@example.lu"]},
            "exports": {"directory": "/var/lib/exports", "retention": "30d"},
        }
    )
    assert config.audit.certificates_to == ("dpo@example.lu",)
    assert config.exports == ExportsConfig("/var/lib/exports", 30 * DAY_MS)


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"audit": {"certificates_to": ["not-an-address"]}}, "audit.certificates_to[0]"),
        ({"audit": {"certificates_to": "dpo@example.lu"}}, "audit.certificates_to"),
        ({"exports": {"directory": "relative/dir"}}, "exports.directory"),
        ({"exports": {"retention": "0d"}}, "exports.retention"),
        ({"exports": {"format": "tar"}}, "exports.format"),
    ],
)
def test_r14_bad_exports_or_certificate_keys_are_named(raw: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(path)):
        parse_config(raw)
