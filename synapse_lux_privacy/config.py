"""The module's configuration: the ``config:`` block of its ``modules:`` entry.

``parse_config`` turns the raw YAML into frozen attrs classes with the Luxchat
defaults (R1-R12) filled in. Every invalid value, and every unknown key, raises
``ConfigError`` with the key path and a one-line message, so that Synapse stops
at start-up instead of silently falling back to a default.
"""

import re
from collections.abc import Mapping
from fnmatch import fnmatchcase
from string import Formatter
from typing import Any
from urllib.parse import urlsplit

import attrs

from synapse_lux_privacy.regex_safety import backtracks_catastrophically
from synapse_lux_privacy.units import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    MONTH_MS,
    SECOND_MS,
    YEAR_MS,
    config_error,
    describe,
    parse_duration,
    parse_size,
)

Path = tuple[str, ...]

QUOTA_COUNTS = ("media", "events")
# The placeholders a quota.notice_texts template may use (R4): a number of items, and
# two sizes already written out ("1.5 MB").
QUOTA_NOTICE_FIELDS = ("count", "removed", "quota")

# A user ID Synapse can register: a lower-case localpart of the characters Synapse
# allows (``synapse.types.mxid_localpart_allowed_characters``) and a server name
# (DNS name, IPv4 or bracketed IPv6 literal, optional port), 255 characters at most.
_USER_ID = re.compile(
    r"@[a-z0-9._=\-/+]+:(?:[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)
_USER_ID_MAX_LENGTH = 255
# Any user ID, whatever its case: an entry of this shape is meant as one.
_ANY_CASE_USER_ID = re.compile(_USER_ID.pattern, re.IGNORECASE)
EXEMPT_PATTERN_PREFIX = "re:"

_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]+)*")

_UNIT_WORDS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week",
               "M": "month", "y": "year"}  # fmt: skip


@attrs.frozen
class RetentionMatch:
    """What a retention rule applies to: events by type/msgtype, media by content type."""

    type: str | None = None
    msgtype: str | None = None
    media_type: str | None = None  # a glob such as "audio/*"

    @property
    def names_events(self) -> bool:
        """Whether the match names an event type or msgtype (else it matches no event)."""
        return self.type is not None or self.msgtype is not None

    def matches_event(self, event_type: str, msgtype: str | None) -> bool:
        """Whether an event matches; a match naming only ``media_type`` matches no event."""
        if not self.names_events:
            return False
        return self.type in (None, event_type) and self.msgtype in (None, msgtype)

    def matches_media(self, media_type: str) -> bool:
        """Whether a media file matches; a match without ``media_type`` matches no media."""
        if self.media_type is None:
            return False
        return fnmatchcase(media_type.lower(), self.media_type.lower())


@attrs.frozen
class RetentionRule:
    """One entry of ``retention.rules`` (R1, R2): what it matches and how long that is kept."""

    match: RetentionMatch
    lifetime_ms: int


@attrs.frozen
class RetentionConfig:
    """R1 (messages), R2 (attachments), R5 (redacted content), R6 (remote media)."""

    messages_ms: int
    attachments_ms: int
    remote_media_ms: int
    redacted_content_ms: int
    rules: tuple[RetentionRule, ...]
    # A purge that takes something due also takes what falls due within this window
    # (R1 "at the latest"; 0: nothing goes before its time). ``_purge_window``.
    purge_window_ms: int = 0

    def event_lifetime_ms(self, event_type: str, msgtype: str | None) -> int:
        """The first matching rule's lifetime, else ``messages`` (R1)."""
        for rule in self.rules:
            if rule.match.matches_event(event_type, msgtype):
                return rule.lifetime_ms
        return self.messages_ms

    def shortest_event_lifetime_ms(self) -> int:
        """The shortest lifetime an event's row may have (R1, R3): ``messages`` or a rule
        that matches events."""
        return min([self.messages_ms, *(r.lifetime_ms for r in self.rules if r.match.names_events)])

    def media_lifetime_ms(self, media_type: str) -> int:
        """The first matching rule's lifetime, else ``attachments`` (R2)."""
        for rule in self.rules:
            if rule.match.matches_media(media_type):
                return rule.lifetime_ms
        return self.attachments_ms


@attrs.frozen
class QuotaConfig:
    """R4: per-user storage quota; ``default_bytes`` None means no quota.

    ``notice_texts``: (language, template) pairs of the eviction notice; None: the
    built-in French and English texts; empty: no notice.
    """

    default_bytes: int | None
    counts: frozenset[str]
    eviction_interval_ms: int = 30 * SECOND_MS
    notice_texts: tuple[tuple[str, str], ...] | None = None


@attrs.frozen
class SessionsConfig:
    """R11: devices inactive this long are deleted."""

    inactive_logout_after_ms: int


@attrs.frozen
class AccountsConfig:
    """R12: accounts inactive this long are deactivated and erased, unless exempt.

    An ``exempt`` entry is an exact user ID or ``re:`` and a regular expression
    that must match the whole user ID (config.md "Exempt lists"); any other entry
    is a configuration error naming it.
    """

    inactive_delete_after_ms: int
    exempt: tuple[str, ...]
    _exact: frozenset[str] = attrs.field(init=False, eq=False, repr=False)
    _patterns: tuple[re.Pattern[str], ...] = attrs.field(init=False, eq=False, repr=False)

    @_exact.default
    def _user_ids(self) -> frozenset[str]:
        exact = set()
        for index, entry in enumerate(self.exempt):
            if not entry.startswith(EXEMPT_PATTERN_PREFIX):
                _check_user_id(entry, ("accounts", "exempt", str(index)))
                exact.add(entry)
        return frozenset(exact)

    @_patterns.default
    def _compile_patterns(self) -> tuple[re.Pattern[str], ...]:
        patterns = []
        for index, entry in enumerate(self.exempt):
            if entry.startswith(EXEMPT_PATTERN_PREFIX):
                path = ("accounts", "exempt", str(index))
                patterns.append(_exempt_pattern(entry[len(EXEMPT_PATTERN_PREFIX) :], path))
        return tuple(patterns)

    def patterns(self) -> tuple[tuple[int, re.Pattern[str]], ...]:
        """The ``re:`` entries, compiled, with their positions in ``exempt``."""
        indexes = [i for i, e in enumerate(self.exempt) if e.startswith(EXEMPT_PATTERN_PREFIX)]
        return tuple(zip(indexes, self._patterns, strict=True))

    def is_exempt(self, user_id: str) -> bool:
        """Exact comparison for user IDs, ``re.fullmatch`` for the ``re:`` entries."""
        return user_id in self._exact or any(p.fullmatch(user_id) for p in self._patterns)


def _check_user_id(entry: str, path: Path) -> None:
    """R12: an exact ``exempt`` entry must be a user ID that Synapse can register."""
    neither = f"{describe(entry)} is neither a user ID nor re:<pattern>"
    if len(entry) > _USER_ID_MAX_LENGTH:
        raise config_error(path, f"{neither}: longer than {_USER_ID_MAX_LENGTH} characters")
    if _USER_ID.fullmatch(entry):
        return
    localpart = entry[1:].split(":", 1)[0]
    if _ANY_CASE_USER_ID.fullmatch(entry) and localpart != localpart.lower():
        lower = "@" + localpart.lower() + entry[1 + len(localpart) :]
        raise config_error(
            path,
            f"{neither}: Synapse registers lower-case localparts only; "
            f"did you mean {describe(lower)}?",
        )
    try:
        re.compile(entry)
    except (re.error, OverflowError, RecursionError):
        raise config_error(path, neither) from None
    if entry.startswith("@") and ":" in entry:
        raise config_error(path, f"{neither}; for a regular expression write re:{entry}")
    raise config_error(path, neither)


def _exempt_pattern(pattern: str, path: Path) -> re.Pattern[str]:
    """R12: the regular expression of a ``re:`` entry, matched against whole user IDs."""
    if not pattern:
        raise config_error(path, f"{describe(EXEMPT_PATTERN_PREFIX)} has an empty pattern")
    try:
        compiled = re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as e:
        raise config_error(
            path,
            f"{describe(EXEMPT_PATTERN_PREFIX + pattern)} is not a valid regular expression ({e})",
        ) from None
    if backtracks_catastrophically(pattern):
        raise config_error(
            path,
            f"{describe(EXEMPT_PATTERN_PREFIX + pattern)} repeats a group that itself varies "
            "in length or has alternatives, e.g. (a+)+ or (a|aa)+: matching it can take "
            "exponential time and hang the sweep; write it without the nested repetition",
        )
    return compiled


@attrs.frozen
class LogsConfig:
    """R9: client IP addresses and user agents are kept this long."""

    ip_retention_ms: int


@attrs.frozen
class AuditConfig:
    """Accountability records (audit rows, failure rows, sweep records) are kept this long.

    They name users and rooms, so they are personal data too and go after ``retention``.
    ``certificates_to``: e-mail addresses that receive each signed deletion certificate
    (R14; the DPO's copy, kept outside the server).
    """

    retention_ms: int
    certificates_to: tuple[str, ...] = ()


@attrs.frozen
class ExportsConfig:
    """R14 (GDPR art. 15): data-subject access exports.

    ``directory``: where archives are written (None: under Synapse's
    ``media_store_path``); ``retention_ms``: an archive is deleted this long after it
    was made.
    """

    directory: str | None = None
    retention_ms: int = 7 * DAY_MS


@attrs.frozen
class NationalDirectoryConfig:
    """R10: the shared national directory kept in step with consent."""

    url: str
    token_path: str
    removal_deadline_ms: int


@attrs.frozen
class DirectoryConfig:
    """R10: user directory searches return only consenting users."""

    require_consent: bool
    national: NationalDirectoryConfig | None


STORAGE_PROVIDER_DELETION = ("auto", "none")


@attrs.frozen
class StorageProvidersConfig:
    """R2, R4, R7, R12: whether media copies in storage providers are deleted too.

    ``auto``: from every provider the module knows how to delete from (file-based,
    synapse-s3-storage-provider); ``none``: from the local media store only.
    """

    delete_from: str = "auto"


@attrs.frozen
class NotifyConfig:
    """Warnings to users before their data goes (beyond the notice; R12).

    ``account_deletion_ms``: lead times before an R12 deletion, longest first (empty:
    no warnings). ``languages``: the order of the texts in one message. ``texts``:
    (language, subject, body) triples configured in ``notify.texts``; the built-in
    French and English texts serve every language not listed there.
    """

    account_deletion_ms: tuple[int, ...]
    languages: tuple[str, ...]
    texts: tuple[tuple[str, str, str], ...] = ()


@attrs.frozen
class AdaptivePaceConfig:
    """``sweep_adaptive_pace`` (R1-R12 deletions beside live traffic): whether the sweep
    adapts its batches and pauses to the server's load (``sweep/pace.py``).

    ``max_slowdown``: the median probe of the database while a batch is deleted, as a
    multiple of the idle one, above which the sweep backs off. ``min_pace``: items per
    second the pauses never take the sweep below (it bounds the backlog time). ``rest``:
    seconds of pause after each deleting step (a room's purge, a batch's expunges or file
    deletions), and after what each batch does besides its steps (finding it, the
    audit), per second they took (issue 22: a user's request that meets a purge on a
    2-core machine is slowed whatever the batch; resting keeps most requests from
    meeting one).
    """

    enabled: bool = True
    max_slowdown: float = 1.5
    min_pace: float = 10.0
    rest: float = 8.0


@attrs.frozen
class LuxPrivacyConfig:
    """The whole ``config:`` block, defaults filled in."""

    dry_run: bool
    sweep_interval_ms: int
    allow_future_sweeps: bool
    allow_short_periods: bool
    sweep_batch_size: int
    retention: RetentionConfig
    quota: QuotaConfig
    sessions: SessionsConfig
    accounts: AccountsConfig
    logs: LogsConfig
    directory: DirectoryConfig
    audit: AuditConfig = AuditConfig(24 * MONTH_MS)
    exports: ExportsConfig = ExportsConfig()
    notify: NotifyConfig = NotifyConfig((30 * DAY_MS, 7 * DAY_MS), ("fr", "en"))
    storage_providers: StorageProvidersConfig = StorageProvidersConfig()
    allow_untested_synapse: bool = False
    sweep_pace: float | None = None  # items deleted per second at most; None: no limit
    sweep_adaptive_pace: AdaptivePaceConfig = AdaptivePaceConfig()


class _Section:
    """One mapping of the raw configuration, checked for unknown keys and read key by key."""

    def __init__(self, raw: object, path: Path, allowed: tuple[str, ...]) -> None:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise config_error(
                path, f"{describe(raw)} is not a mapping; expected keys: {', '.join(allowed)}"
            )
        for key in raw:
            if key not in allowed:
                raise config_error(
                    (*path, str(key)), f"unknown key; allowed keys: {', '.join(allowed)}"
                )
        self._raw = raw
        self.path = path

    def has(self, key: str) -> bool:
        return key in self._raw

    def value(self, key: str, default: object = None) -> object:
        return self._raw.get(key, default)

    def require(self, *keys: str) -> None:
        for key in keys:
            if key not in self._raw:
                raise config_error(
                    self.path, f"missing key {key}; required keys: {', '.join(keys)}"
                )

    def string(self, key: str) -> str:
        return _string(self._raw.get(key), (*self.path, key))

    def section(self, key: str, allowed: tuple[str, ...]) -> "_Section":
        return _Section(self._raw.get(key), (*self.path, key), allowed)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._raw.get(key, default)
        if not isinstance(value, bool):
            raise config_error((*self.path, key), f"{describe(value)} is not true or false")
        return value

    def string_list(self, key: str) -> list[tuple[Path, str]]:
        """A list of non-empty strings, each with its own key path."""
        value = self._raw.get(key, [])
        path = (*self.path, key)
        if not isinstance(value, list):
            raise config_error(path, f"{describe(value)} is not a list")
        items = [((*path, str(index)), item) for index, item in enumerate(value)]
        return [(item_path, _string(item, item_path)) for item_path, item in items]


def _string(value: object, path: Path) -> str:
    if not isinstance(value, str) or not value:
        raise config_error(path, f"{describe(value)} is not a non-empty string")
    return value


def _in_words(raw: object, ms: int) -> str:
    """``24m`` -> ``24 minutes``; an int (milliseconds) says so."""
    if isinstance(raw, str):
        count, unit = int(raw[:-1]), _UNIT_WORDS[raw[-1]]
        return f"{count} {unit}" + ("" if count == 1 else "s")
    return f"{ms} milliseconds (a bare number is milliseconds)"


def _period(section: _Section, key: str, default_ms: int, allow_short: bool) -> int:
    """A retention, logout or deletion period: never zero, under one day only if allowed."""
    raw = section.value(key, default_ms)
    path = (*section.path, key)
    ms = parse_duration(raw, path)
    if ms == 0:
        raise config_error(path, f"{describe(raw)} is zero; use a period longer than zero")
    if ms >= DAY_MS or allow_short:
        return ms
    shown, words = str(raw), _in_words(raw, ms)
    if isinstance(raw, str) and raw.endswith("m"):
        months = raw[:-1] + "M"
        raise config_error(
            path,
            f"{shown} is {words}; did you mean {months} ({_in_words(months, ms)})? "
            "Periods under one day need allow_short_periods: true.",
        )
    raise config_error(
        path,
        f"{shown} is {words}, less than one day; "
        "periods under one day need allow_short_periods: true.",
    )


def _sweep_interval(section: _Section, allow_short: bool) -> int:
    """At least one minute, or one second with ``allow_short_periods``."""
    raw = section.value("sweep_interval", HOUR_MS)
    path = (*section.path, "sweep_interval")
    ms = parse_duration(raw, path)
    if ms >= MINUTE_MS or (allow_short and ms >= SECOND_MS):
        return ms
    allowed = "at least 1s" if allow_short else "at least 1m (1s with allow_short_periods: true)"
    raise config_error(path, f"{describe(raw)} is too short; use {allowed}")


def _match(raw: object, path: Path) -> RetentionMatch:
    keys = ("type", "msgtype", "media_type")
    section = _Section(raw, path, keys)
    fields = {key: section.string(key) for key in keys if section.has(key)}
    if not fields:
        raise config_error(path, "needs at least one of type, msgtype, media_type")
    return RetentionMatch(**fields)


def _rules(section: _Section, allow_short: bool) -> tuple[RetentionRule, ...]:
    raw = section.value("rules", [])
    path = (*section.path, "rules")
    if not isinstance(raw, list):
        raise config_error(path, f"{describe(raw)} is not a list of rules")
    rules = []
    for index, item in enumerate(raw):
        rule = _Section(item, (*path, str(index)), ("match", "lifetime"))
        rule.require("match", "lifetime")
        match = _match(rule.value("match"), (*rule.path, "match"))
        rules.append(RetentionRule(match, _period(rule, "lifetime", 0, allow_short)))
    return tuple(rules)


def _retention(section: _Section, allow_short: bool) -> RetentionConfig:
    retention = RetentionConfig(
        messages_ms=_period(section, "messages", 24 * MONTH_MS, allow_short),
        attachments_ms=_period(section, "attachments", 12 * MONTH_MS, allow_short),
        remote_media_ms=_period(section, "remote_media", 12 * MONTH_MS, allow_short),
        redacted_content_ms=_period(section, "redacted_content", 7 * DAY_MS, allow_short),
        rules=_rules(section, allow_short),
    )
    window = _purge_window(section, retention.shortest_event_lifetime_ms())
    return attrs.evolve(retention, purge_window_ms=window)


def _purge_window(section: _Section, shortest_row_ms: int) -> int:
    """R1, R3 "at the latest": from 0 (the default: nothing goes before its time) to
    30 days, and under half the shortest lifetime an event's row may have, so that a
    typo (``1M`` for ``1m``) cannot take a month, nor the window most of a lifetime."""
    raw = section.value("purge_window", 0)
    path = (*section.path, "purge_window")
    ms = parse_duration(raw, path)
    if ms > 30 * DAY_MS:
        raise config_error(path, f"{describe(raw)} is longer than 30 days; use at most 30d")
    if ms > 0 and 2 * ms >= shortest_row_ms:
        raise config_error(
            path,
            f"{describe(raw)} is not under half the shortest message lifetime"
            f" ({shortest_row_ms // DAY_MS} days); use a shorter window",
        )
    return ms


def _quota(section: _Section) -> QuotaConfig:
    default_bytes = None
    raw_bytes = section.value("default_bytes")
    if raw_bytes is not None:
        default_bytes = parse_size(raw_bytes, (*section.path, "default_bytes"))
        if default_bytes == 0:
            raise config_error(
                (*section.path, "default_bytes"),
                f"{describe(raw_bytes)} is zero; use a size above zero, or null for no quota",
            )
    counts = set(QUOTA_COUNTS)
    if section.has("counts"):
        counts = set()
        for path, item in section.string_list("counts"):
            if item not in QUOTA_COUNTS:
                raise config_error(
                    path, f"{describe(item)} is not one of {', '.join(QUOTA_COUNTS)}"
                )
            counts.add(item)
        if not counts:
            raise config_error(
                (*section.path, "counts"),
                f"[] is empty; list one or both of {', '.join(QUOTA_COUNTS)}",
            )
    return QuotaConfig(
        default_bytes, frozenset(counts), _eviction_interval(section), _notice_texts(section)
    )


def _eviction_interval(section: _Section) -> int:
    """From one second to one hour: how soon a user over quota is brought back under it."""
    raw = section.value("eviction_interval", 30 * SECOND_MS)
    path = (*section.path, "eviction_interval")
    ms = parse_duration(raw, path)
    if not SECOND_MS <= ms <= HOUR_MS:
        raise config_error(path, f"{describe(raw)} is not between 1s and 1h")
    return ms


def _notice_texts(section: _Section) -> tuple[tuple[str, str], ...] | None:
    """Language -> template; every template must format with QUOTA_NOTICE_FIELDS only."""
    raw = section.value("notice_texts")
    if raw is None:
        return None
    texts_path = (*section.path, "notice_texts")
    if not isinstance(raw, Mapping):
        raise config_error(
            texts_path, f"{describe(raw)} is not a mapping of language to text, or null"
        )
    pairs = []
    for language in raw:
        path = (*texts_path, str(language))
        if not isinstance(language, str) or not _LANGUAGE.fullmatch(language):
            raise config_error(
                path, f"{describe(language)} is not a language tag such as fr, en or de-LU"
            )
        template = _template(raw[language], path, QUOTA_NOTICE_FIELDS)
        pairs.append((language, template))
    return tuple(pairs)


# The placeholders a notify.texts template may use (R12): the account, the deletion
# date, the date of the last activity (both YYYY-MM-DD, UTC) and the server's name.
NOTIFY_FIELDS = ("user_id", "date", "last_active", "server_name")
# The languages that have built-in warning texts.
NOTIFY_BUILT_IN_LANGUAGES = ("fr", "en")


def _notify(section: _Section) -> NotifyConfig:
    leads_path = (*section.path, "account_deletion")
    raw_leads = section.value("account_deletion", ["30d", "7d"])
    if not isinstance(raw_leads, list):
        raise config_error(leads_path, f"{describe(raw_leads)} is not a list of durations")
    leads: list[int] = []
    for index, raw in enumerate(raw_leads):
        path = (*leads_path, str(index))
        ms = parse_duration(raw, path)
        if ms == 0 or ms in leads:
            raise config_error(path, f"{describe(raw)} is zero or listed twice")
        leads.append(ms)
    texts = _notify_texts(section)
    configured = {language for language, _, _ in texts}
    languages: list[str] = []
    raw_languages = section.value("languages", list(NOTIFY_BUILT_IN_LANGUAGES))
    if raw_languages == [] and leads:
        raise config_error((*section.path, "languages"), "[] is empty; list at least one language")
    for path, language in section.string_list("languages"):
        if language not in configured and language not in NOTIFY_BUILT_IN_LANGUAGES:
            raise config_error(
                path,
                f"{describe(language)} has no text: built-in texts exist for "
                f"{', '.join(NOTIFY_BUILT_IN_LANGUAGES)}; others need notify.texts.{language}",
            )
        languages.append(language)
    if not section.has("languages"):
        languages = list(NOTIFY_BUILT_IN_LANGUAGES)
    return NotifyConfig(tuple(sorted(leads, reverse=True)), tuple(languages), texts)


def _notify_texts(section: _Section) -> tuple[tuple[str, str, str], ...]:
    """Language -> {subject, body}; each template may use NOTIFY_FIELDS only."""
    raw = section.value("texts")
    if raw is None:
        return ()
    texts_path = (*section.path, "texts")
    if not isinstance(raw, Mapping):
        raise config_error(
            texts_path, f"{describe(raw)} is not a mapping of language to subject and body"
        )
    triples = []
    for language in raw:
        if not isinstance(language, str) or not _LANGUAGE.fullmatch(language):
            raise config_error(
                (*texts_path, str(language)),
                f"{describe(language)} is not a language tag such as fr, en or de-LU",
            )
        text = _Section(raw[language], (*texts_path, language), ("subject", "body"))
        text.require("subject", "body")
        pair = []
        for key in ("subject", "body"):
            pair.append(_template(text.value(key), (*text.path, key), NOTIFY_FIELDS))
        triples.append((language, pair[0], pair[1]))
    return tuple(triples)


def _template(raw: object, path: Path, fields: tuple[str, ...]) -> str:
    """A message template (R4 notice, R12 warning): literal text and plain ``{name}``
    placeholders among ``fields``, nothing else. A format spec (``{count:,>999999999}``
    would build a gigabyte), a conversion (``{quota!r}``), an attribute or index
    (``{date.year}``) or a positional ``{}`` is refused, so that every text formats the
    same, small, at any time."""
    template = _string(raw, path)
    allowed = ", ".join("{" + f + "}" for f in fields)
    try:
        parts = list(Formatter().parse(template))
    except ValueError as e:
        raise config_error(
            path, f"{describe(template)} is not a valid text ({e}); it may only use {allowed}"
        ) from None
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        if spec or conversion or name not in fields:
            shown = "{" + name + (f"!{conversion}" if conversion else "")
            shown += (f":{spec}" if spec else "") + "}"
            raise config_error(
                path,
                f"{describe(template)} is not a valid text ({describe(shown)} is not allowed); "
                f"it may only use {allowed}, "
                "without format specs or conversions (write {{ and }} for braces)",
            )
    return template


def _national(section: _Section) -> NationalDirectoryConfig | None:
    if section.value("national") is None:
        return None
    national = section.section("national", ("url", "token_path", "removal_deadline"))
    national.require("url", "token_path")
    url = national.value("url")
    if not isinstance(url, str) or not _is_http_url(url):
        raise config_error(
            (*national.path, "url"), f"{describe(url)} is not an http:// or https:// URL"
        )
    token_path = national.string("token_path")
    deadline_path = (*national.path, "removal_deadline")
    raw_deadline = national.value("removal_deadline", 24 * HOUR_MS)
    deadline = parse_duration(raw_deadline, deadline_path)
    if deadline == 0:
        raise config_error(
            deadline_path, f"{describe(raw_deadline)} is zero; use a deadline longer than zero"
        )
    return NationalDirectoryConfig(url, token_path, deadline)


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _batch_size(section: _Section) -> int:
    value = section.value("sweep_batch_size", 500)
    if type(value) is not int or not 1 <= value <= 10000:
        raise config_error(
            (*section.path, "sweep_batch_size"),
            f"{describe(value)} is not a whole number from 1 to 10000",
        )
    return value


def _storage_providers(section: _Section) -> StorageProvidersConfig:
    value = section.value("delete_from", "auto")
    if value not in STORAGE_PROVIDER_DELETION:
        raise config_error(
            (*section.path, "delete_from"),
            f"{describe(value)} is not one of {', '.join(STORAGE_PROVIDER_DELETION)}",
        )
    return StorageProvidersConfig(str(value))


def _email_list(section: _Section) -> tuple[str, ...]:
    """``certificates_to``: e-mail addresses, each ``local@domain``."""
    addresses = []
    for path, address in section.string_list("certificates_to"):
        local, at, domain = address.partition("@")
        if not (local and at and "." in domain) or any(c.isspace() for c in address):
            raise config_error(path, f"{describe(address)} is not an e-mail address")
        addresses.append(address)
    return tuple(addresses)


def _exports(section: _Section, allow_short: bool) -> ExportsConfig:
    directory = section.value("directory")
    if directory is not None:
        directory = section.string("directory")
        if not directory.startswith("/"):
            raise config_error(
                (*section.path, "directory"), f"{describe(directory)} is not an absolute path"
            )
    return ExportsConfig(directory, _period(section, "retention", 7 * DAY_MS, allow_short))


def _pace(section: _Section) -> float | None:
    value = section.value("sweep_pace", None)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value <= 1e6:
        raise config_error(
            (*section.path, "sweep_pace"),
            f"{describe(value)} is not a number of items per second above 0 (or null)",
        )
    return float(value)


def _adaptive_pace(section: _Section, pace: float | None) -> AdaptivePaceConfig:
    default = AdaptivePaceConfig()
    slowdown = _number(section, "max_slowdown", default.max_slowdown, 1, 100)
    if slowdown is None:
        raise config_error(
            (*section.path, "max_slowdown"),
            f"{describe(section.value('max_slowdown'))} is not a number above 1 and at most 100",
        )
    # The default never exceeds sweep_pace: a configuration valid before this key stays so.
    fallback = default.min_pace if pace is None else min(default.min_pace, pace)
    min_pace = _number(section, "min_pace", fallback, 0, 1e6)
    if min_pace is None:
        raise config_error(
            (*section.path, "min_pace"),
            f"{describe(section.value('min_pace'))} is not a number of items per second above 0",
        )
    if pace is not None and min_pace > pace:
        raise config_error(
            (*section.path, "min_pace"),
            f"{min_pace:g} is above sweep_pace ({pace:g}); use at most sweep_pace",
        )
    rest = section.value("rest", default.rest)
    if not isinstance(rest, int | float) or isinstance(rest, bool) or not 0 <= rest <= 100:
        raise config_error(
            (*section.path, "rest"),
            f"{describe(rest)} is not a number from 0 to 100"
            " (seconds of rest per second of a deleting step)",
        )
    return AdaptivePaceConfig(
        section.boolean("enabled", default.enabled), slowdown, min_pace, float(rest)
    )


def _number(section: _Section, key: str, default: float, above: float, most: float) -> float | None:
    """The number at ``key`` if it is above ``above`` and at most ``most``; else None."""
    value = section.value(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return float(value) if above < value <= most else None


def parse_config(raw: Mapping[str, Any] | None) -> LuxPrivacyConfig:
    """Build the configuration from the raw ``config:`` block; raise ConfigError if invalid."""
    top = _Section(
        raw,
        (),
        ("dry_run", "sweep_interval", "allow_future_sweeps", "allow_short_periods",
         "sweep_batch_size", "sweep_pace", "sweep_adaptive_pace", "retention", "quota",
         "sessions", "accounts", "logs", "directory", "audit", "exports", "notify",
         "storage_providers", "allow_untested_synapse"),
    )  # fmt: skip
    allow_short = top.boolean("allow_short_periods", False)
    retention = top.section(
        "retention",
        ("messages", "attachments", "remote_media", "redacted_content", "rules", "purge_window"),
    )
    sessions = top.section("sessions", ("inactive_logout_after",))
    accounts = top.section("accounts", ("inactive_delete_after", "exempt"))
    logs = top.section("logs", ("ip_retention",))
    directory = top.section("directory", ("require_consent", "national"))
    audit = top.section("audit", ("retention", "certificates_to"))
    pace = _pace(top)
    return LuxPrivacyConfig(
        dry_run=top.boolean("dry_run", False),
        sweep_interval_ms=_sweep_interval(top, allow_short),
        allow_future_sweeps=top.boolean("allow_future_sweeps", False),
        allow_short_periods=allow_short,
        sweep_batch_size=_batch_size(top),
        retention=_retention(retention, allow_short),
        quota=_quota(
            top.section("quota", ("default_bytes", "counts", "eviction_interval", "notice_texts"))
        ),
        sessions=SessionsConfig(
            _period(sessions, "inactive_logout_after", 6 * MONTH_MS, allow_short)
        ),
        accounts=AccountsConfig(
            _period(accounts, "inactive_delete_after", YEAR_MS, allow_short),
            tuple(item for _, item in accounts.string_list("exempt")),
        ),
        logs=LogsConfig(_period(logs, "ip_retention", 6 * MONTH_MS, allow_short)),
        directory=DirectoryConfig(
            require_consent=directory.boolean("require_consent", True),
            national=_national(directory),
        ),
        audit=AuditConfig(
            _period(audit, "retention", 24 * MONTH_MS, allow_short), _email_list(audit)
        ),
        exports=_exports(top.section("exports", ("directory", "retention")), allow_short),
        notify=_notify(top.section("notify", ("account_deletion", "languages", "texts"))),
        storage_providers=_storage_providers(top.section("storage_providers", ("delete_from",))),
        allow_untested_synapse=top.boolean("allow_untested_synapse", False),
        sweep_pace=pace,
        sweep_adaptive_pace=_adaptive_pace(
            top.section("sweep_adaptive_pace", ("enabled", "max_slowdown", "min_pace", "rest")),
            pace,
        ),
    )
