"""Pure R10 decisions: how consent changes and what the national directory must be told.

No I/O here, so the rules are unit-tested on their own:
- until the provider sets it, a user has no consent (privacy by default);
- the time recorded is when consent was given or withdrawn, not when it was re-sent;
- giving consent always queues an upsert (re-sending consent repairs a drifted entry);
- withdrawing queues a removal only for a user who may be listed (consent was given, or
  a change is still pending), so the service never learns of users who never consented.
"""

from typing import Literal

import attrs

Action = Literal["put", "delete"]


@attrs.frozen
class Consent:
    """A user's directory consent (R10); ``updated_ts`` None: never set."""

    consent: bool
    updated_ts: int | None

    def to_json(self) -> dict[str, bool | int | None]:
        return {"consent": self.consent, "updated_ts": self.updated_ts}


NO_CONSENT = Consent(consent=False, updated_ts=None)


def next_consent(previous: Consent, requested: bool, now_ms: int) -> Consent:
    """The consent after a request; the time moves only when the answer changes."""
    if previous.updated_ts is not None and previous.consent == requested:
        return previous
    return Consent(consent=requested, updated_ts=now_ms)


def sync_action(previous: Consent, requested: bool, has_pending: bool) -> Action | None:
    """What to queue for the national directory after a consent request, if anything."""
    if requested:
        return "put"
    if previous.consent or has_pending:
        return "delete"
    return None
