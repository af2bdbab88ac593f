"""Synapse's own settings that contradict the policy (R1, R2, R5, R9, R11, R12, R15).

The module enforces its limits by itself, but a native setting that keeps data
longer, advertises a longer policy or copies data where no limit applies
contradicts the notice. These checks run at start-up (one warning each) and in
``check-config`` (non-zero exit).

Synapse keys are read with Synapse's own duration syntax: a bare int is
milliseconds, ``m`` is minutes and there is no ``M``.
"""

import logging
import logging.handlers
import os
import pydoc
import re
from collections.abc import Mapping
from typing import Any

import attrs
import yaml

from synapse_lux_privacy.config import LuxPrivacyConfig
from synapse_lux_privacy.synapse_adapter.config_files import synapse_duration_ms
from synapse_lux_privacy.units import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    SECOND_MS,
    WEEK_MS,
    describe,
    format_duration,
)

_SYNAPSE_SYNTAX = "a Synapse duration (milliseconds, or s, m = minutes, h, d, w, y; no M)"

# TimedRotatingFileHandler's "when" (upper-cased, as the handler does).
_WHEN_MS = {"S": SECOND_MS, "M": MINUTE_MS, "H": HOUR_MS, "D": DAY_MS, "MIDNIGHT": DAY_MS}
_WEEKDAY = re.compile(r"W[0-6]")


@attrs.frozen
class Finding:
    """One native setting at odds with the policy, with the rule it contradicts."""

    key: str
    value: str
    expected: str
    rule: str

    def __str__(self) -> str:
        return f"{self.key} is {self.value}; it should be {self.expected} ({self.rule})"


def find_contradictions(
    homeserver: Mapping[str, Any], config: LuxPrivacyConfig, config_dir: str | None
) -> list[Finding]:
    """Every contradiction between ``homeserver.yaml`` (as parsed) and the policy."""
    findings = [
        *_native_retention(homeserver.get("retention"), config.retention.messages_ms),
        *_media_retention(homeserver.get("media_retention"), config),
        _with_default(
            homeserver,
            "redaction_retention_period",
            "7d",
            "redacted content is kept for ever",
            (config.retention.redacted_content_ms, "retention.redacted_content", "R5"),
        ),
        _with_default(
            homeserver,
            "user_ips_max_age",
            "28d",
            "IP addresses are kept for ever",
            (config.logs.ip_retention_ms, "logs.ip_retention", "R9"),
        ),
        *_log_config(homeserver, config_dir, config.logs.ip_retention_ms),
        _stale_devices(homeserver.get("delete_stale_devices_after"), config),
        _push_content(homeserver),
        _warning_mailer(homeserver, config),
    ]
    return [finding for finding in findings if finding is not None]


def _at_most(limit_ms: int, limit_key: str) -> str:
    synapse_syntax = format_duration(limit_ms, months=False)
    return f"at most {synapse_syntax} ({limit_key} is {format_duration(limit_ms)})"


def _too_long(
    key: str, raw: object, limit_ms: int, limit_key: str, rule: str, note: str = ""
) -> Finding | None:
    """A finding when the Synapse duration ``raw`` is invalid or longer than ``limit_ms``."""
    expected = _at_most(limit_ms, limit_key) + note
    if not (type(raw) is int or isinstance(raw, str)):
        return Finding(key, describe(raw), f"{_SYNAPSE_SYNTAX} of {expected}", rule)
    try:
        ms = synapse_duration_ms(raw)
    except (TypeError, ValueError, IndexError):
        return Finding(key, describe(raw), f"{_SYNAPSE_SYNTAX} of {expected}", rule)
    if ms <= limit_ms:
        return None
    shown = str(raw)
    if shown != format_duration(ms, months=False):
        shown += f" ({format_duration(ms, months=False)})"
    return Finding(key, shown, expected, rule)


def _with_default(
    homeserver: Mapping[str, Any],
    key: str,
    synapse_default: str,
    null_means: str,
    limit: tuple[int, str, str],
) -> Finding | None:
    """A key Synapse sets to ``synapse_default`` when absent and reads as "for ever" if null."""
    limit_ms, limit_key, rule = limit
    if homeserver.get(key, synapse_default) is None:
        return Finding(key, f"null ({null_means})", _at_most(limit_ms, limit_key), rule)
    finding = _too_long(key, homeserver.get(key, synapse_default), limit_ms, limit_key, rule)
    if finding is not None and key not in homeserver:
        return attrs.evolve(finding, value=f"absent (Synapse default {synapse_default})")
    return finding


def _stale_devices(raw: object, config: LuxPrivacyConfig) -> Finding | None:
    """R11: Synapse reads a false-ish value as "never"; the module then deletes devices itself."""
    if not raw:
        return None
    limit_ms = config.sessions.inactive_logout_after_ms
    return _too_long(
        "delete_stale_devices_after", raw, limit_ms, "sessions.inactive_logout_after", "R11"
    )


def _native_retention(section: object, messages_ms: int) -> list[Finding | None]:
    """R1: Synapse's room retention policies must not advertise more than retention.messages."""
    if not isinstance(section, Mapping) or not section.get("enabled"):
        return []
    checks: list[Finding | None] = []
    if section.get("allowed_lifetime_max") is None:
        checks.append(
            Finding(
                "retention.allowed_lifetime_max",
                "absent, so rooms may ask to keep messages for ever",
                _at_most(messages_ms, "retention.messages"),
                "R1",
            )
        )
    else:
        checks.append(
            _too_long(
                "retention.allowed_lifetime_max",
                section["allowed_lifetime_max"],
                messages_ms,
                "retention.messages",
                "R1",
            )
        )
    policy = section.get("default_policy")
    if isinstance(policy, Mapping) and policy.get("max_lifetime") is not None:
        checks.append(
            _too_long(
                "retention.default_policy.max_lifetime",
                policy["max_lifetime"],
                messages_ms,
                "retention.messages",
                "R1",
            )
        )
    return checks


def _media_retention(section: object, config: LuxPrivacyConfig) -> list[Finding | None]:
    """R2: Synapse's media lifetimes (counted from last access) against ours (from upload)."""
    if not isinstance(section, Mapping):
        return []
    note = "; Synapse counts it from the last access, the module from the upload"
    limits = (
        ("local_media_lifetime", config.retention.attachments_ms, "retention.attachments"),
        ("remote_media_lifetime", config.retention.remote_media_ms, "retention.remote_media"),
    )
    return [
        _too_long(f"media_retention.{key}", section[key], limit_ms, limit_key, "R2", note)
        for key, limit_ms, limit_key in limits
        if section.get(key) is not None
    ]


def _push_content(homeserver: Mapping[str, Any]) -> Finding | None:
    """R15: unless told not to, Synapse puts each message's content in its push notifications.

    The gateway (Sygnal) passes it on to Apple's and Google's push services: copies
    outside the server, which the notice says are not kept. Read as Synapse's
    ``PushConfig`` reads it: ``include_content`` defaults to true and is taken by
    truthiness; the deprecated ``email.redact_content``, when set, replaces it; with
    ``push.enabled`` false no notification is sent at all.
    """
    push = homeserver.get("push") or {}
    expected = (
        "false, so that message content is not sent to the push gateway and on to Apple and Google"
    )
    if not isinstance(push, Mapping):
        return Finding("push", describe(push), f"a mapping with include_content: {expected}", "R15")
    if not push.get("enabled", True):
        return None
    email = homeserver.get("email") or {}
    if isinstance(email, Mapping) and email.get("redact_content") is not None:
        redact = email["redact_content"]
        if redact:
            return None
        shown = f"{describe(redact)} (deprecated; Synapse reads it instead of push.include_content)"
        return Finding(
            "email.redact_content", shown, f"absent, and push.include_content {expected}", "R15"
        )
    if "include_content" not in push:
        return Finding("push.include_content", "absent (Synapse default true)", expected, "R15")
    include = push["include_content"]
    if not include:
        return None
    shown = "true" if include is True else f"{describe(include)}, which Synapse reads as true"
    return Finding("push.include_content", shown, expected, "R15")


def _warning_mailer(homeserver: Mapping[str, Any], config: LuxPrivacyConfig) -> Finding | None:
    """R12: the e-mail warnings before a deletion need Synapse's mailer (``email.notif_from``).

    Without it the module sends none: users lose their account without a word.
    """
    if not config.notify.account_deletion_ms:
        return None
    email = homeserver.get("email")
    if isinstance(email, Mapping) and email.get("notif_from"):
        return None
    return Finding(
        "email.notif_from",
        "absent (no e-mail can be sent)",
        "set, with Synapse's SMTP settings, so that users are warned before their account"
        " is deleted (notify.account_deletion; set it to [] to do without the warnings)",
        "R12",
    )


def _log_config(
    homeserver: Mapping[str, Any], config_dir: str | None, limit_ms: int
) -> list[Finding]:
    """R9: log files hold client IP addresses; no handler may keep them past logs.ip_retention."""
    key = _log_config_key(homeserver)
    raw = homeserver.get(key)
    if raw is None:
        return []
    if not isinstance(raw, str) or not raw:
        return [Finding(key, describe(raw), "the path of a logging config file", "R9")]
    path = os.path.join(config_dir or os.getcwd(), raw)
    unreadable = "a readable YAML logging config, so that its handlers can be checked"
    try:
        with open(path, encoding="utf-8") as file:
            loaded = yaml.safe_load(file)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        reason = " ".join(str(e).split())
        return [Finding(key, f"{path} ({reason})", unreadable, "R9")]
    handlers = loaded.get("handlers", {}) if isinstance(loaded, Mapping) else None
    if not isinstance(handlers, Mapping):
        return [Finding(key, f"{path} (no handlers mapping)", unreadable, "R9")]
    findings = (
        _handler(f"handlers.{name} in {path}", handler, limit_ms)
        for name, handler in handlers.items()
    )
    return [finding for finding in findings if finding is not None]


def _log_config_key(homeserver: Mapping[str, Any]) -> str:
    """The key Synapse takes its logging config from in this process.

    A worker (``worker_app`` set; ``synapse.app.homeserver`` means the main process,
    as in Synapse's ``WorkerConfig``) runs ``synapse.app.generic_worker``, which sets
    up logging from ``worker_log_config`` and ignores ``log_config``; the main process
    reads ``log_config`` (``synapse.config.logger.setup_logging``).
    """
    worker_app = homeserver.get("worker_app")
    is_worker = bool(worker_app) and worker_app != "synapse.app.homeserver"
    return "worker_log_config" if is_worker else "log_config"


def _handler(key: str, handler: object, limit_ms: int) -> Finding | None:
    """A finding for a file handler that keeps lines longer than ``limit_ms``, or for ever."""
    expected = f"a handler keeping logs {_at_most(limit_ms, 'logs.ip_retention')}"
    unknown = "an importable handler class, so that its retention can be checked"
    if not isinstance(handler, Mapping):
        return Finding(key, describe(handler), unknown, "R9")
    class_name = handler.get("class", handler.get("()"))
    if not isinstance(class_name, str):
        return Finding(key, "a handler without a class", unknown, "R9")
    try:
        handler_class = pydoc.locate(class_name)
    except pydoc.ErrorDuringImport:
        handler_class = None
    if not isinstance(handler_class, type):
        return Finding(key, class_name, unknown, "R9")
    if issubclass(handler_class, logging.handlers.TimedRotatingFileHandler):
        return _timed_rotation(key, class_name, handler, limit_ms, expected)
    if issubclass(handler_class, logging.FileHandler):
        return Finding(key, f"{class_name}, which never deletes old lines", expected, "R9")
    return None


def _timed_rotation(
    key: str, class_name: str, handler: Mapping[str, Any], limit_ms: int, expected: str
) -> Finding | None:
    """The oldest line kept is (backupCount + 1) periods old: the backups plus the current file."""
    when, interval = handler.get("when", "h"), handler.get("interval", 1)
    backups = handler.get("backupCount", 0)
    if not (isinstance(when, str) and type(interval) is int and type(backups) is int):
        return Finding(key, f"{class_name} with unreadable rotation settings", expected, "R9")
    unit_ms = WEEK_MS if _WEEKDAY.fullmatch(when.upper()) else _WHEN_MS.get(when.upper())
    if unit_ms is None or interval < 1 or backups < 0:
        return Finding(key, f"{class_name} with unreadable rotation settings", expected, "R9")
    if backups == 0:
        return Finding(
            key, f"{class_name} with backupCount 0, which keeps every file", expected, "R9"
        )
    kept_ms = (backups + 1) * interval * unit_ms
    if kept_ms <= limit_ms:
        return None
    settings = f"when: {when}, interval: {interval}, backupCount: {backups}"
    return Finding(
        key,
        f"{class_name} keeping up to {format_duration(kept_ms, months=False)} ({settings})",
        expected,
        "R9",
    )
