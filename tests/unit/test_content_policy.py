"""Lifetimes of content by type (R1, R2, R5, R6): pure functions of the configuration.

Time: every check passes explicit timestamps and an explicit "as of"; no clock.
"""

import pytest

from synapse_lux_privacy.config import parse_config
from synapse_lux_privacy.features.content.policy import (
    ContentPolicy,
    due,
    is_attachment,
    sent_before,
)
from synapse_lux_privacy.units import DAY_MS, MONTH_MS

T0 = 1_700_000_000_000


def policy(**retention: object) -> ContentPolicy:
    return ContentPolicy(parse_config({"retention": retention}).retention)


RULES = [
    {"match": {"type": "m.room.message", "msgtype": "m.video"}, "lifetime": "6M"},
    {"match": {"type": "m.room.message"}, "lifetime": "36M"},
    {"match": {"type": "m.sticker"}, "lifetime": "3M"},
    {"match": {"media_type": "audio/*"}, "lifetime": "2M"},
    {"match": {"media_type": "*"}, "lifetime": "18M"},
]


def test_r1_r2_defaults_are_24_months_for_events_and_12_for_files() -> None:
    p = policy()
    assert p.row_lifetime("m.room.message", "m.text") == 24 * MONTH_MS
    assert p.row_lifetime("m.room.encrypted", None) == 24 * MONTH_MS
    assert p.attachment_lifetime("m.room.message", "m.image") == 12 * MONTH_MS
    assert p.local_media_lifetime("image/png") == 12 * MONTH_MS
    assert p.remote_media_lifetime("image/png") == 12 * MONTH_MS
    assert p.shortest_row_lifetime() == 24 * MONTH_MS


@pytest.mark.parametrize(
    ("event_type", "msgtype", "expected"),
    [
        ("m.room.message", "m.image", True),
        ("m.room.message", "m.video", True),
        ("m.room.message", "m.audio", True),
        ("m.room.message", "m.file", True),
        ("m.sticker", None, True),
        ("m.room.message", "m.text", False),
        ("m.room.message", None, False),
        ("m.room.encrypted", None, False),  # the server cannot see inside (R2)
    ],
)
def test_r2_attachments_are_recognised_only_in_clear(
    event_type: str, msgtype: str | None, expected: bool
) -> None:
    assert is_attachment(event_type, msgtype) is expected


def test_per_type_rules_first_match_wins_shorter_or_longer() -> None:
    p = policy(rules=RULES)
    assert p.row_lifetime("m.room.message", "m.video") == 6 * MONTH_MS
    assert p.row_lifetime("m.room.message", "m.text") == 36 * MONTH_MS
    assert p.row_lifetime("m.room.encrypted", None) == 24 * MONTH_MS
    assert p.attachment_lifetime("m.sticker", None) == 3 * MONTH_MS
    # An m.image matches the second rule (type only): 36 months, not the 12-month default.
    assert p.attachment_lifetime("m.room.message", "m.image") == 36 * MONTH_MS
    assert p.local_media_lifetime("audio/ogg") == 2 * MONTH_MS
    assert p.local_media_lifetime("image/png") == 18 * MONTH_MS
    assert p.remote_media_lifetime("AUDIO/OGG") == 2 * MONTH_MS
    assert p.shortest_row_lifetime() == 3 * MONTH_MS
    assert p.shortest_attachment_lifetime() == 3 * MONTH_MS
    assert p.shortest_local_media_lifetime() == 2 * MONTH_MS


def test_a_media_rule_without_a_match_falls_back_to_remote_media_for_remote_copies() -> None:
    p = policy(remote_media="2M", attachments="5M")
    assert p.remote_media_lifetime("image/png") == 2 * MONTH_MS
    assert p.local_media_lifetime("image/png") == 5 * MONTH_MS
    assert p.shortest_remote_media_lifetime() == 2 * MONTH_MS


def test_due_is_kept_a_day_before_the_limit_and_gone_a_day_after() -> None:
    lifetime = 24 * MONTH_MS
    assert not due(T0, lifetime, T0 + lifetime - DAY_MS)
    assert due(T0, lifetime, T0 + lifetime)
    assert due(T0, lifetime, T0 + lifetime + DAY_MS)
    # The SQL bound agrees with due() on both sides of the limit.
    for as_of in (T0 + lifetime - 1, T0 + lifetime, T0 + lifetime + 1):
        assert (T0 < sent_before(as_of, lifetime)) is due(T0, lifetime, as_of)


def test_r2_an_attachment_is_the_attachments_rule_s_only_until_its_row_is_due() -> None:
    p = policy()
    image = ("m.room.message", "m.image")
    assert not p.attachment_due(*image, T0, T0 + 12 * MONTH_MS - DAY_MS)
    assert p.attachment_due(*image, T0, T0 + 12 * MONTH_MS + DAY_MS)
    # At 24 months the row is due: the messages rule (which runs first) takes it.
    assert not p.attachment_due(*image, T0, T0 + 24 * MONTH_MS + DAY_MS)
    assert not p.attachment_due("m.room.message", "m.text", T0, T0 + 13 * MONTH_MS)


def test_r14_next_deletion_is_the_first_loss_content_or_row() -> None:
    p = policy()
    assert p.next_event_deletion("m.room.message", "m.text", T0) == T0 + 24 * MONTH_MS
    assert p.next_event_deletion("m.room.message", "m.file", T0) == T0 + 12 * MONTH_MS
    assert p.next_event_deletion("m.room.encrypted", None, T0) == T0 + 24 * MONTH_MS
