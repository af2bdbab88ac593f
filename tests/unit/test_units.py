"""Durations and sizes (R1, R2, R4, R9, R11, R12 periods and the R4 quota)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from synapse.config import ConfigError

from synapse_lux_privacy.units import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    MONTH_MS,
    SECOND_MS,
    WEEK_MS,
    YEAR_MS,
    describe,
    dotted,
    format_duration,
    parse_duration,
    parse_size,
)

PATH = ("retention", "messages")


def test_constants_in_milliseconds() -> None:
    assert (SECOND_MS, MINUTE_MS, HOUR_MS) == (1_000, 60_000, 3_600_000)
    assert (DAY_MS, WEEK_MS) == (86_400_000, 604_800_000)
    assert MONTH_MS == 30 * 86_400_000
    assert YEAR_MS == 365 * 86_400_000


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("90s", 90_000),
        ("5m", 300_000),
        ("1h", 3_600_000),
        ("7d", 604_800_000),
        ("2w", 1_209_600_000),
        ("24M", 24 * 30 * 86_400_000),
        ("1y", 365 * 86_400_000),
        ("0d", 0),
        ("007d", 7 * 86_400_000),
        (1500, 1500),
        (0, 0),
    ],
)
def test_r1_parse_duration_suffixes_and_milliseconds(value: object, expected: int) -> None:
    assert parse_duration(value, PATH) == expected


def test_r1_lowercase_m_is_minutes_and_capital_m_is_months() -> None:
    assert parse_duration("24m", PATH) == 24 * 60_000
    assert parse_duration("24M", PATH) == 24 * 30 * DAY_MS


@pytest.mark.parametrize(
    "value",
    [True, False, None, 1.5, "1.5d", "", "d", "24", "24x", " 24M", "24 M", "24MM", "-1d",
     "\u0661d", "24D", "1e3s", [], {}, "24Y"],
)  # fmt: skip
def test_parse_duration_rejects_with_key_path_and_allowed_syntax(value: object) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_duration(value, PATH)
    assert caught.value.path == PATH
    assert caught.value.msg.startswith("retention.messages: ")
    assert f"{describe(value)} is not a duration" in caught.value.msg
    assert "M (months of 30 days)" in caught.value.msg


def test_parse_duration_message_exactly() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_duration("24x", PATH)
    assert caught.value.msg == (
        'retention.messages: "24x" is not a duration; use a number followed by s, m (minutes), '
        "h, d, w, M (months of 30 days) or y (365 days), e.g. 24M"
    )


def test_parse_duration_rejects_negative_int() -> None:
    with pytest.raises(ConfigError, match=r"^retention.messages: -1 is negative") as caught:
        parse_duration(-1, PATH)
    assert caught.value.path == PATH


@pytest.mark.parametrize("value", ["101y", "9" * 30 + "d", "9" * 5000 + "s", 101 * YEAR_MS])
def test_parse_duration_rejects_beyond_100_years(value: object) -> None:
    with pytest.raises(ConfigError, match="too long; use at most 100y"):
        parse_duration(value, PATH)


def test_parse_duration_accepts_exactly_100_years() -> None:
    assert parse_duration("100y", PATH) == 100 * YEAR_MS


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, 0), (1024, 1024), ("1024", 1024), ("1K", 1024), ("512M", 512 * 1024**2),
     ("5G", 5 * 1024**3), ("2T", 2 * 1024**4), ("1024T", 1024**5)],
)  # fmt: skip
def test_r4_parse_size_powers_of_1024(value: object, expected: int) -> None:
    assert parse_size(value, ("quota", "default_bytes")) == expected


@pytest.mark.parametrize("value", [True, 1.0, "5g", "5GB", "5 G", "G", "", "-1", None, "5P"])
def test_r4_parse_size_rejects_with_key_path(value: object) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_size(value, ("quota", "default_bytes"))
    assert caught.value.path == ("quota", "default_bytes")
    assert caught.value.msg == (
        f"quota.default_bytes: {describe(value)} is not a size; use a number of bytes, "
        "optionally followed by K, M, G or T (powers of 1024), e.g. 5G"
    )


@pytest.mark.parametrize(("value", "problem"), [(-1, "is negative"), ("1025T", "too large")])
def test_r4_parse_size_rejects_negative_and_huge(value: object, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_size(value, ("quota", "default_bytes"))


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (24 * MONTH_MS, "24M"),
        (6 * MONTH_MS, "6M"),
        (YEAR_MS, "1y"),
        (2 * YEAR_MS, "2y"),
        (7 * DAY_MS, "7d"),
        (14 * DAY_MS, "14d"),
        (HOUR_MS, "1h"),
        (90 * SECOND_MS, "90s"),
        (2 * MINUTE_MS, "2m"),
        (1500, "1500ms"),
        (0, "0s"),
    ],
)
def test_format_duration_largest_exact_unit(ms: int, text: str) -> None:
    assert format_duration(ms) == text


def test_format_duration_without_months_is_synapse_syntax() -> None:
    assert format_duration(24 * MONTH_MS, months=False) == "720d"
    assert format_duration(YEAR_MS, months=False) == "1y"


@given(st.integers(min_value=0, max_value=100 * 365 * 86_400).map(lambda s: s * 1000))
def test_format_duration_round_trips_through_parse_duration(ms: int) -> None:
    assert parse_duration(format_duration(ms), PATH) == ms


def test_dotted_paths_render_list_indexes() -> None:
    assert dotted(("retention", "rules", "0", "lifetime")) == "retention.rules[0].lifetime"
    assert dotted(("accounts", "exempt", "2")) == "accounts.exempt[2]"
    assert dotted(()) == "config"


def test_dotted_paths_quote_keys_that_are_not_plain_names() -> None:
    assert dotted(("retention", "my key")) == 'retention."my key"'
    assert dotted(("\n",)) == '"\\n"'
    assert dotted(("",)) == '""'
    assert dotted(("\u0661",)) == '"\u0661"'


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "null"), (True, "true"), (False, "false"), ("24x", '"24x"'), (1.5, "1.5"),
     (3, "3"), ({}, "a mapping"), ([], "a list"), ("a\nb", '"a\\nb"'), ("a\rb", '"a\\rb"'),
     ("x" * 50, '"' + "x" * 37 + '..."')],
)  # fmt: skip
def test_describe_renders_yaml_like_on_one_line(value: object, text: str) -> None:
    assert describe(value) == text


def test_a_huge_integer_is_described_by_its_size_not_its_digits() -> None:
    """A hex or decimal integer beyond the interpreter's 4,300-digit limit is named by its
    size, so a config error about it is one line (check-config never traces back)."""
    value = int("f" * 4000, 16)
    assert describe(value) == "a whole number of about 4817 digits"
    assert describe(2**64) == repr(2**64)
