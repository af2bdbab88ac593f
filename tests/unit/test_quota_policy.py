"""The quota's pure decisions (R4): usage, limits, oldest-first eviction plans."""

import pytest

from synapse_lux_privacy.features.quota.policy import (
    EVENTS,
    MEDIA,
    Item,
    Position,
    effective_quota,
    human_size,
    largest_upload,
    merge_oldest_first,
    plan,
    used_bytes,
)


def media(item_id: str, ts: int, size: int) -> Item:
    return Item(MEDIA, item_id, None, ts, size)


def event(item_id: str, ts: int, freeable: int) -> Item:
    return Item(EVENTS, item_id, "!r:x", ts, freeable)


def never(item: Item) -> bool:
    return False


@pytest.mark.parametrize(
    ("counts", "expected"),
    [({"media", "events"}, 30), ({"media"}, 10), ({"events"}, 20)],
)
def test_r4_usage_counts_what_quota_counts_lists(counts: set[str], expected: int) -> None:
    assert used_bytes(counts, 10, 20) == expected


def test_r4_an_override_wins_over_the_default_and_none_means_no_quota() -> None:
    assert effective_quota(100, None) == 100
    assert effective_quota(100, 50) == 50
    assert effective_quota(None, 50) == 50
    assert effective_quota(None, None) is None


def test_r4_the_largest_upload_is_the_whole_quota_within_synapses_maximum() -> None:
    assert largest_upload(300, 1000) == 300
    assert largest_upload(5000, 1000) == 1000


def test_r4_media_and_events_are_merged_oldest_first_ties_uploads_first() -> None:
    m = [media("b", 10, 1), media("d", 30, 1)]
    e = [event("a", 5, 1), event("c", 10, 1)]
    merged, exhausted = merge_oldest_first(m, e, 10)
    assert [i.item_id for i in merged] == ["a", "b", "c", "d"]
    assert exhausted


def test_r4_a_merge_cut_at_the_limit_is_not_the_end() -> None:
    m = [media("m1", 1, 1), media("m2", 2, 1)]
    e = [event("e1", 3, 1)]
    merged, exhausted = merge_oldest_first(m, e, 2)
    assert [i.item_id for i in merged] == ["m1", "m2"]
    assert not exhausted
    # a full page means there may be more, even if the merge fits
    _, exhausted = merge_oldest_first(m, [], 2)
    assert not exhausted


def test_r4_plan_takes_the_oldest_until_enough_is_freed() -> None:
    items = [media("a", 1, 50), event("b", 2, 5), media("c", 3, 100), media("d", 4, 100)]
    chosen = plan(items, 54, never)
    assert [i.item_id for i in chosen.chosen] == ["a", "b"]
    assert chosen.freed == 55
    assert chosen.last == Position(2, 1, "b")


def test_r4_plan_with_nothing_to_free_chooses_nothing() -> None:
    chosen = plan([media("a", 1, 50)], 0, never)
    assert (chosen.chosen, chosen.last, chosen.freed) == ([], None, 0)


def test_r4_r7_kept_items_are_passed_over_for_the_next_oldest() -> None:
    items = [media("avatar", 1, 500), media("b", 2, 10), event("empty", 3, 0), media("c", 4, 10)]
    chosen = plan(items, 15, lambda i: i.item_id == "avatar")
    assert [i.item_id for i in chosen.chosen] == ["b", "c"]
    assert chosen.last == Position(4, 0, "c")


def test_r4_a_page_that_is_not_enough_is_read_to_its_end() -> None:
    items = [media("a", 1, 10), media("b", 2, 10)]
    chosen = plan(items, 1000, never)
    assert (len(chosen.chosen), chosen.freed, chosen.last) == (2, 20, Position(2, 0, "b"))


@pytest.mark.parametrize(
    ("size", "language", "text"),
    [
        (0, "en", "0 bytes"),
        (1023, "en", "1023 bytes"),
        (1536, "en", "1.5 KB"),
        (1536, "fr", "1,5 Ko"),
        (300 * 1024, "fr", "300 Ko"),
        (5 * 1024**3, "en", "5.0 GB"),
        (12 * 1024**2, "fr-LU", "12 Mo"),
        (2048, "de", "2.0 KB"),
    ],
)
def test_r4_sizes_are_written_for_people(size: int, language: str, text: str) -> None:
    assert human_size(size, language) == text
