"""The rule interface every retention rule implements (R1-R12).

A rule finds, as of a given time, the items that are past their limit, a page
at a time, and deletes a batch of them through Synapse's own machinery. Rules
hold no state between calls: what is due is recomputed from the database each
time (a rule may remember in its own table what a finished pass judged, and then
look only at what changed since; the messages rule finds its next page while the
orchestrator deletes the last one, and uses it only if asked for that very page:
``features/content/lookahead.py``), so a sweep killed half-way is simply continued
by the next one.
"""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol, TypeVar

import attrs

from synapse_lux_privacy.store.holds import HoldSet

# The fixed order in which a sweep runs the rules, and the keys of its report.
RULE_NAMES: tuple[str, ...] = (
    "messages",  # R1, R3, R6
    "attachments",  # R2, R6
    "remote_media",  # R2, R6
    "redacted_content",  # R5
    "quota",  # R4
    "sessions",  # R11
    "accounts",  # R12, R7, R8
    "ip_logs",  # R9
    "directory",  # R10
)

# The rules whose deletions delete or rewrite Synapse's events (purges, expiry,
# censoring): after a real sweep in which one of them deleted something, the orchestrator
# clears what the deletions left on the disk (``synapse_adapter/disk_residue.py``; R1).
EVENT_TEXT_RULES: frozenset[str] = frozenset(
    {"messages", "attachments", "redacted_content", "quota"}
)

# The skip reason of the items of a batch left untried because the sweep was cancelled
# or lost its lease while the batch went item by item (the operator commands read it).
SWEEP_STOPPED = "sweep_stopped"
# The skip reason of the items of a batch that a room's purge did not reach: an older
# event that must stay (held, waiting out a retry backoff, failed earlier in the sweep,
# or the room's newest) lies below them, so the purge stopped short of them or did not
# run (R1, R13). They are tried again at a later sweep.
PURGE_BLOCKED = "purge_blocked"
# Skip reasons of items the rule did not try: a failure recorded for them stays.
UNTRIED = frozenset({SWEEP_STOPPED, PURGE_BLOCKED})


@attrs.frozen
class Candidate:
    """One item a rule would delete: an event, a media file, a device, an account...

    ``provider_objects``: the storage-provider objects and files deleted with it, set
    by a rule on the items it reports deleted (R2, R4, R12; counted in the audit).
    ``rooms``: rooms its deletion touches besides ``room_id`` (an account: the rooms it
    is parted from, R12), counted for ``synapse-lux-privacy estimate``'s cost model.
    """

    item_id: str
    user_id: str | None
    room_id: str | None
    size_bytes: int = 0
    provider_objects: int = 0
    rooms: int = 0


@attrs.frozen
class CandidatePage:
    """A page of candidates, and where the next page starts (None: no more)."""

    items: Sequence[Candidate]
    next_cursor: str | None


@attrs.frozen
class DeleteOutcome:
    """What ``Rule.delete`` did with the items it was given.

    ``deleted``: the items really deleted. ``skipped``: item ID -> why the rule chose
    not to delete it this time (``avatar_in_use``, ``active_again``, ...). ``failed``:
    item ID -> the class name of the error that stopped its deletion (rules that
    delete a batch at once and isolate failures themselves report them here). An item
    in none of the three was already gone; the orchestrator counts it as skipped with
    the reason ``already_gone``.
    """

    deleted: Sequence[Candidate] = ()
    skipped: Mapping[str, str] = attrs.Factory(dict)
    failed: Mapping[str, str] = attrs.Factory(dict)


T = TypeVar("T")


class Step(Protocol):
    """Runs one step of a batch's deletion (``items`` items: a room's purge, the
    batch's expunges or file deletions), paced."""

    def __call__(self, items: int, work: Callable[[], Awaitable[T]]) -> Awaitable[T]: ...


async def unpaced(items: int, work: Callable[[], Awaitable[T]]) -> T:
    """A step with no rest after it."""
    return await work()


@attrs.frozen
class SweepContext:
    """What every rule is told about the sweep it runs in. ``batch_size``: the most
    items of the next batch (the adaptive pace may make it smaller than
    ``sweep_batch_size``); ``whole_room_size``: the most a batch's first room may take
    beyond it, so that the pace's smaller batches do not split a room's purge in two (0:
    none). ``step``: how a rule that deletes a batch in several heavy steps (a purge
    per room, the expunges, the file deletions) runs each one, so the sweep's pace
    rests between them (``pacer.py``); not part of the context's identity.
    ``look_ahead``: whether a rule may find its next page while this one is deleted;
    not under the adaptive pace (issue 22: its rests leave the time to find it, a
    finding beside a step adds to what users' requests meet, and a page found ahead
    with the last batch's size is not the one asked for while the batches grow)."""

    as_of_ms: int
    dry_run: bool
    batch_size: int
    whole_room_size: int = 0
    step: Step = attrs.field(default=unpaced, eq=False)
    look_ahead: bool = True


class Rule(Protocol):
    """A retention rule. ``name`` is one of RULE_NAMES.

    By default the orchestrator passes ``delete`` one item at a time, so that one
    item that cannot be deleted never stops the others. A rule whose deletion only
    makes sense for a whole batch (a purge of a room's history) sets the class
    attribute ``isolates_failures = True``: it then gets the whole batch and must
    report each item that failed in ``DeleteOutcome.failed`` instead of raising.

    A rule may also define ``async def pass_completed(self, ctx)``: the orchestrator
    calls it when a real pass of the rule ran to its end, after its last batch (the
    messages and attachments rules then remember what they judged:
    ``features/content/scan_marks.py``).
    """

    name: str

    async def find_candidates(
        self, ctx: SweepContext, holds: HoldSet, cursor: str | None
    ) -> CandidatePage:
        """Return up to ``ctx.batch_size`` items due as of ``ctx.as_of_ms``, after ``cursor``.

        A rule may leave held items out itself (cheaper in SQL); the orchestrator
        checks every candidate against the holds again before deleting.
        """

    async def delete(
        self, ctx: SweepContext, items: Sequence[Candidate]
    ) -> Sequence[Candidate] | DeleteOutcome:
        """Delete these items; return those actually deleted, or a ``DeleteOutcome``
        that also says why some were skipped."""
