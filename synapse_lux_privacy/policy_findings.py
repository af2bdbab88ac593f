"""The module's own settings that are valid but worth a word (R1, R2, R9, R10, R11, R12).

config.md allows them and ``check-config`` and the start-up log report them:

- a period longer than the notice's for the same data ("Beyond the notice"): the
  notice says "at the latest" and this server would keep the data longer;
- an ``accounts.exempt`` pattern that matches every user of this server, so that no
  account is ever deleted for inactivity ("Exempt lists");
- a ``directory.national.token_path`` that cannot be read, so that no removal from
  the national directory can be delivered;
- ``dry_run: true``: the module then deletes nothing at all (R1-R12);
- a ``sweep_pace`` (or adaptive ``min_pace``) under ``MIN_PACE`` items per second,
  too slow for a day's due items, so that the backlog only grows (R1-R12);
- a ``directory.national.url`` holding a user name or password: the secret then sits
  in homeserver.yaml and in every log line that shows the URL (R10);
- a ``retention.purge_window`` above 0: messages then go up to that long before their
  lifetime ends, which the notice's "at the latest" allows but an exact period does
  not (R1, R3).
"""

from urllib.parse import urlsplit

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

# Items per second below which a sweep cannot keep up: 1/s clears 86,400 items a day,
# while a server of 1,000 users sending 100 messages a day has 100,000 messages
# falling due each day (R1), before media, sessions and IP rows. Below this pace the
# backlog grows on all but the smallest servers and the notice's periods are exceeded.
MIN_PACE = 1.0
_DAY_S = 86_400


def find_policy_findings(config: LuxPrivacyConfig, server_name: str | None) -> list[Finding]:
    """Every finding about the module's own configuration."""
    return [
        *_beyond_notice(config),
        *_exempt_everyone(config, server_name or "example.org"),
        *_unreadable_token(config),
        *_dry_run(config),
        *_too_slow(config),
        *_credentials_in_url(config),
        *_early_purges(config),
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


def _dry_run(config: LuxPrivacyConfig) -> list[Finding]:
    """R1-R12: a module in dry run counts what is due and deletes none of it."""
    if not config.dry_run:
        return []
    return [
        Finding(
            "dry_run",
            "true, so nothing is deleted: every sweep only counts what is due",
            "false once dry runs have shown what goes",
            "R1-R12",
        )
    ]


def _too_slow(config: LuxPrivacyConfig) -> list[Finding]:
    """R1-R12: a pace under MIN_PACE items per second cannot clear a day's due items."""
    paces = [("sweep_pace", config.sweep_pace)]
    if config.sweep_adaptive_pace.enabled:
        paces.append(("sweep_adaptive_pace.min_pace", config.sweep_adaptive_pace.min_pace))
    return [
        Finding(
            key,
            f"{pace:g} items per second, at most {pace * _DAY_S:,.0f} items a day, "
            "fewer than a day's due items on most servers, so the backlog grows",
            f"at least {MIN_PACE:g} ({MIN_PACE * _DAY_S:,.0f} items a day), or null for no limit",
            "R1-R12",
        )
        for key, pace in paces
        if pace is not None and pace < MIN_PACE
    ]


def _credentials_in_url(config: LuxPrivacyConfig) -> list[Finding]:
    """R10: the national directory's token belongs in ``token_path``, not in the URL."""
    national = config.directory.national
    if national is None:
        return []
    parts = urlsplit(national.url)
    if "@" not in parts.netloc:
        return []
    hidden = parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()
    return [
        Finding(
            "directory.national.url",
            f"{describe(hidden)}, with a user name or password in it (shown here as ***), "
            "which then sits in homeserver.yaml and in logs",
            "a URL without credentials; the token goes in the file named by token_path",
            "R10",
        )
    ]


def _early_purges(config: LuxPrivacyConfig) -> list[Finding]:
    """R1, R3: with a purge window, a purge takes messages before their time."""
    window = config.retention.purge_window_ms
    if window == 0:
        return []
    return [
        Finding(
            "retention.purge_window",
            f"{format_duration(window)}, so messages may go up to {format_duration(window)}"
            " before their lifetime ends, with a purge that takes a due one",
            '0, unless this server\'s notice promises only a maximum ("at the latest")'
            " and its DPO agreed to deletion this early",
            "R1, R3",
        )
    ]
