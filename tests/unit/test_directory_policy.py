"""R10 decisions as pure functions: consent transitions, what to queue, retries, HTTP outcomes.

Time: every "now" is a fixed number passed in; nothing reads a clock.
"""

import pytest

from synapse_lux_privacy.features.directory.delivery import (
    RETRY_BASE_MS,
    RETRY_MAX_MS,
    retry_delay_ms,
)
from synapse_lux_privacy.features.directory.national_client import Outcome, classify
from synapse_lux_privacy.features.directory.policy import (
    NO_CONSENT,
    Action,
    Consent,
    next_consent,
    sync_action,
)

NOW = 1_800_000_000_000
GIVEN = Consent(True, NOW - 1000)
WITHDRAWN = Consent(False, NOW - 1000)


def test_r10_no_consent_until_set() -> None:
    assert NO_CONSENT == Consent(False, None)
    assert NO_CONSENT.to_json() == {"consent": False, "updated_ts": None}


@pytest.mark.parametrize(
    ("previous", "requested", "expected"),
    [
        (NO_CONSENT, True, Consent(True, NOW)),
        (NO_CONSENT, False, Consent(False, NOW)),  # an explicit "no" is recorded with its time
        (GIVEN, True, GIVEN),  # sent again: the time it was given stays
        (GIVEN, False, Consent(False, NOW)),
        (WITHDRAWN, False, WITHDRAWN),
        (WITHDRAWN, True, Consent(True, NOW)),
    ],
)
def test_r10_consent_time_moves_only_when_the_answer_changes(
    previous: Consent, requested: bool, expected: Consent
) -> None:
    assert next_consent(previous, requested, NOW) == expected


@pytest.mark.parametrize(
    ("previous", "requested", "pending", "expected"),
    [
        (NO_CONSENT, True, False, "put"),
        (GIVEN, True, False, "put"),  # re-sent consent repairs the national entry
        (GIVEN, False, False, "delete"),
        (WITHDRAWN, False, True, "delete"),  # a change still waiting may list the user
        (WITHDRAWN, False, False, None),  # already withdrawn and removed
        (NO_CONSENT, False, False, None),  # never consented: the service never hears of them
    ],
)
def test_r10_what_the_national_directory_is_told(
    previous: Consent, requested: bool, pending: bool, expected: str | None
) -> None:
    assert sync_action(previous, requested, pending) == expected


def test_r10_retries_back_off_exponentially_up_to_a_cap() -> None:
    delays = [retry_delay_ms(n) for n in range(1, 10)]
    assert delays[:4] == [RETRY_BASE_MS, 2 * RETRY_BASE_MS, 4 * RETRY_BASE_MS, 8 * RETRY_BASE_MS]
    assert delays == sorted(delays) and delays[-1] == RETRY_MAX_MS
    assert retry_delay_ms(10_000) == RETRY_MAX_MS  # no overflow after days of failures


@pytest.mark.parametrize(
    ("action", "status", "outcome"),
    [
        ("put", 200, Outcome.DELIVERED),
        ("put", 201, Outcome.DELIVERED),
        ("delete", 204, Outcome.DELIVERED),
        ("delete", 404, Outcome.DELIVERED),  # nothing to remove: the removal holds
        ("put", 404, Outcome.RETRY),
        ("put", 400, Outcome.REJECTED),
        ("put", 422, Outcome.REJECTED),
        ("delete", 400, Outcome.RETRY),  # a removal is never given up
        ("put", 401, Outcome.RETRY),
        ("delete", 403, Outcome.RETRY),
        ("put", 429, Outcome.RETRY),
        ("delete", 500, Outcome.RETRY),
        ("put", 503, Outcome.RETRY),
    ],
)
def test_r10_http_status_outcomes(action: Action, status: int, outcome: Outcome) -> None:
    assert classify(action, status) is outcome
