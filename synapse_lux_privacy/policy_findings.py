"""The module's own settings that are valid but worth a word (R1, R2, R9, R10, R11, R12).

config.md allows them and ``check-config`` and the start-up log report them:

- a period longer than the notice's for the same data ("Beyond the notice"): the
  notice says "at the latest" and this server would keep the data longer;
- an ``accounts.exempt`` pattern that matches every user of this server, so that no
  account is ever deleted for inactivity ("Exempt lists");
- a ``directory.national.token_path`` that cannot be read, so that no removal from
  the national directory can be delivered.
"""

from synapse_lux_privacy.config import EXEMPT_PATTERN_PREFIX, LuxPrivacyConfig, RetentionRule
from synapse_lux_privacy.finding import Finding
from synapse_lux_privacy.units import MONTH_MS, YEAR_MS, describe, format_duration

# The notice's periods (luxchat-rules.md): the key, its rule and the notice's words.
_MESSAGES = (24 * MONTH_MS, "R1", "at the latest 24 months after sending")
_ATTACHMENTS = (12 * MONTH_MS, "R2", "at the latest 12 months after sending")
_REMOTE_MEDIA = (12 * MONTH_MS, "R2, R6", "at the latest 12 months after sending")
_IP_LOGS = (6 * MONTH_MS, "R9", "6 months after creation")
_SESSIONS = (6 * MONTH_MS, "R11", "6 months after the last activity")
_ACCOUNTS = (YEAR_MS, "R12", "1 year after the last activity")

# Attachment events in clear follow R2 (features/content/policy.py).
_ATTACHMENT_TYPES = frozenset({"m.sticker"})
_ATTACHMENT_MSGTYPES = frozenset({"m.image", "m.video", "m.audio", "m.file"})

# Local localparts of every shape Synapse registers: a pattern matching all of them
# matches every user of this server.
_PROBE_LOCALPARTS = ("a", "alice", "0", "z9", "x.y_z=w-v/u+t", "admin", "a" * 200)


def find_policy_findings(config: LuxPrivacyConfig, server_name: str | None) -> list[Finding]:
    """Every finding about the module's own configuration."""
    return [
        *_beyond_notice(config),
        *_exempt_everyone(config, server_name or "example.org"),
        *_unreadable_token(config),
    ]


def _beyond_notice(config: LuxPrivacyConfig) -> list[Finding]:
    """config.md "Beyond the notice": each period longer than the notice's for its data."""
    retention = config.retention
    periods = [
        ("retention.messages", retention.messages_ms, _MESSAGES),
        ("retention.attachments", retention.attachments_ms, _ATTACHMENTS),
        ("retention.remote_media", retention.remote_media_ms, _REMOTE_MEDIA),
        ("logs.ip_retention", config.logs.ip_retention_ms, _IP_LOGS),
        ("sessions.inactive_logout_after", config.sessions.inactive_logout_after_ms, _SESSIONS),
        ("accounts.inactive_delete_after", config.accounts.inactive_delete_after_ms, _ACCOUNTS),
    ]
    for index, rule in enumerate(retention.rules):
        for notice in _rule_notices(rule):
            periods.append((f"retention.rules[{index}].lifetime", rule.lifetime_ms, notice))
    return [
        Finding(
            key,
            format_duration(ms),
            f"at most {format_duration(notice_ms)}, the notice's period ({words}), "
            "unless this server's notice gives a longer one",
            rule_id,
        )
        for key, ms, (notice_ms, rule_id, words) in periods
        if ms > notice_ms
    ]


def _rule_notices(rule: RetentionRule) -> list[tuple[int, str, str]]:
    """The notice's periods for what a ``retention.rules`` entry matches."""
    match, notices = rule.match, []
    if match.media_type is not None:
        notices.append(_ATTACHMENTS)
    if match.type is not None or match.msgtype is not None:
        attachment = match.type in _ATTACHMENT_TYPES or match.msgtype in _ATTACHMENT_MSGTYPES
        notices.append(_ATTACHMENTS if attachment else _MESSAGES)
    return notices


def _exempt_everyone(config: LuxPrivacyConfig, server_name: str) -> list[Finding]:
    """R12: a ``re:`` entry matching every local user ID tried spares every account."""
    probes = [f"@{localpart}:{server_name}" for localpart in _PROBE_LOCALPARTS]
    return [
        Finding(
            f"accounts.exempt[{index}]",
            f"{describe(EXEMPT_PATTERN_PREFIX + pattern.pattern)}, which matches every user, "
            "so no account is ever deleted for inactivity",
            "exact user IDs, or a pattern that matches only the accounts to keep",
            "R12",
        )
        for index, pattern in config.accounts.patterns()
        if all(pattern.fullmatch(probe) for probe in probes)
    ]


def _unreadable_token(config: LuxPrivacyConfig) -> list[Finding]:
    """R10: without its token the module cannot deliver a removal to the national directory."""
    national = config.directory.national
    if national is None:
        return []
    try:
        with open(national.token_path, encoding="utf-8") as file:
            token = file.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        problem = f"which cannot be read ({reason})"
    else:
        if token:
            return []
        problem = "which is empty"
    return [
        Finding(
            "directory.national.token_path",
            f"{describe(national.token_path)}, {problem}",
            "a file the Synapse process can read, holding the national directory's token",
            "R10",
        )
    ]
