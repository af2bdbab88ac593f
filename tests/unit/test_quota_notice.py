"""The eviction notice's text (R4): French and English by default, configurable."""

from synapse_lux_privacy.config import parse_config
from synapse_lux_privacy.features.quota.notice import DEFAULT_TEXTS, compose


def test_r4_the_default_notice_is_in_french_then_english() -> None:
    body = compose(DEFAULT_TEXTS, 3, 150 * 1024, 5 * 1024**3)
    french, english = body.split("\n\n")
    assert "3 message(s) et fichier(s) attaché(s), soit 150 Ko" in french
    assert "(5,0 Go)" in french
    assert "3 message(s) and attachment(s), 150 KB in total" in english
    assert "(5.0 GB)" in english


def test_r4_configured_texts_are_used_in_their_order() -> None:
    texts = parse_config(
        {"quota": {"notice_texts": {"en": "{count} gone ({removed} of {quota})", "de": "weg"}}}
    ).quota.notice_texts
    assert texts is not None
    assert compose(texts, 2, 2048, None) == "2 gone (2.0 KB of -)\n\nweg"
