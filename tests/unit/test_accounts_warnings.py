"""The e-mail warnings before an R12 deletion: their table on SQLite (claimed once per
round of inactivity) and the message's layout (languages in order, dates, HTML escaped).

Time: explicit timestamps.
"""

from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_twisted

from synapse_lux_privacy.config import parse_config
from synapse_lux_privacy.features.accounts import warning_texts
from synapse_lux_privacy.features.accounts.activity_store import ActivityStore
from synapse_lux_privacy.features.accounts.schema import ACCOUNTS_MIGRATIONS
from synapse_lux_privacy.features.accounts.warning_store import (
    CLAIM_STALE_MS,
    SentWarning,
    WarningStore,
)
from synapse_lux_privacy.store.schema import MIGRATIONS
from tests.unit.sqlite_runner import SqliteRunner, migrated_runner

DAY = 86_400_000
LEAD = 30 * DAY


@pytest.fixture
def db(tmp_path: Path) -> SqliteRunner:
    return migrated_runner(tmp_path / "lux.db", {**MIGRATIONS, **ACCOUNTS_MIGRATIONS})


@pytest_twisted.ensureDeferred
async def test_r12_a_warning_is_claimed_once_per_round_of_inactivity(db: SqliteRunner) -> None:
    store = WarningStore(db)
    last_active = 1_000
    assert not await store.was_sent("@a:x", LEAD, last_active)
    assert await store.claim("@a:x", LEAD, last_active, 5_000, 9_000, 2)
    assert not await store.claim("@a:x", LEAD, last_active, 6_000, 9_000, 2)  # another worker
    await store.delivered("@a:x", LEAD, 5_000)
    assert await store.was_sent("@a:x", LEAD, last_active)
    assert not await store.was_sent("@a:x", 7 * DAY, last_active)
    # Active after the warning: a new round, claimed again.
    assert not await store.was_sent("@a:x", LEAD, 5_500)
    assert await store.claim("@a:x", LEAD, 5_500, 8_000, 99_000, 1)
    await store.delivered("@a:x", LEAD, 8_000)
    assert await store.sent("@a:x") == [SentWarning(LEAD, 8_000, 99_000, 1)]


@pytest_twisted.ensureDeferred
async def test_r12_r14_a_claim_never_delivered_is_not_reported_and_is_taken_over_later(
    db: SqliteRunner,
) -> None:
    """A pass that died between claim and send (issue 25): the claim is not a sent warning
    in the R14 report, blocks other passes while it may still be sending, and is taken
    over once ``CLAIM_STALE_MS`` old. Time: explicit timestamps."""
    store = WarningStore(db)
    assert await store.claim("@a:x", LEAD, 1_000, 5_000, 9_000, 1)
    assert await store.sent("@a:x") == []
    assert not await store.was_sent("@a:x", LEAD, 1_000)
    assert not await store.claim("@a:x", LEAD, 1_000, 5_000 + CLAIM_STALE_MS - 1, 9_000, 1)
    taken = 5_000 + CLAIM_STALE_MS + 1
    assert await store.claim("@a:x", LEAD, 1_000, taken, 9_000, 1)
    await store.delivered("@a:x", LEAD, taken)
    assert await store.sent("@a:x") == [SentWarning(LEAD, taken, 9_000, 1)]
    assert not await store.claim("@a:x", LEAD, 1_000, taken + 2 * CLAIM_STALE_MS, 9_000, 1)


@pytest_twisted.ensureDeferred
async def test_r12_a_failed_send_is_released_and_a_deleted_user_forgotten(
    db: SqliteRunner,
) -> None:
    store = WarningStore(db)
    assert await store.claim("@a:x", LEAD, 1_000, 5_000, 9_000, 1)
    await store.release("@a:x", LEAD, 5_000)
    assert await store.sent("@a:x") == []
    assert await store.claim("@a:x", LEAD, 1_000, 6_000, 9_000, 1)
    assert await store.claim("@a:x", 7 * DAY, 1_000, 7_000, 9_000, 1)
    await ActivityStore(db).forget_user("@a:x")
    assert await store.sent("@a:x") == []


def _ts(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)


def test_r12_warning_has_french_then_english_with_both_dates() -> None:
    texts = warning_texts.texts_for(parse_config(None).notify)
    message = warning_texts.compose(
        texts, "@marie:lux.test", _ts("2027-03-14"), _ts("2026-03-14"), "lux.test"
    )
    assert message.subject == (
        "Votre compte @marie:lux.test sera supprimé le 2027-03-14"
        " / Your account @marie:lux.test will be deleted on 2027-03-14"
    )
    french, english = message.text.split("\n\n----\n\n")
    assert "depuis le 2026-03-14" in french and "le 2027-03-14" in french
    assert "since 2026-03-14" in english and "on 2027-03-14" in english
    assert "n'importe quel appareil" in french and "from any device" in english
    assert message.html.count("<hr>") == 1 and "n&#x27;importe" in message.html


def test_r12_configured_texts_replace_or_add_a_language_in_the_given_order() -> None:
    notify = parse_config(
        {
            "notify": {
                "languages": ["de", "en"],
                "texts": {"de": {"subject": "{user_id}: {date}", "body": "<{last_active}>"}},
            }
        }
    ).notify
    message = warning_texts.compose(
        warning_texts.texts_for(notify), "@a:x", _ts("2027-01-02"), _ts("2026-01-02"), "x"
    )
    assert message.subject.startswith("@a:x: 2027-01-02 / Your account @a:x")
    assert message.text.startswith("<2026-01-02>\n")
    assert message.html.startswith("<html><body><p>&lt;2026-01-02&gt;</p><hr>")
