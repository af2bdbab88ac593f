"""Where a room's purge stops (R1, R13): a pure function over the room's oldest events.

Synapse's purge removes every non-state event of a room below a topological
point (depth), so a purge point is safe only if everything below it may go.
``plan_prefix`` walks the room's non-state events from the oldest and stops at
the first one that must stay: one that is not due yet, one sent by a user on
legal hold (R13), or one at the depth of the room's newest forward extremity
(Synapse keeps the room's latest events so that new ones can follow them).
A batch never removes more than ``cap`` events and never splits a depth. A room's
due prefix that does not fit in what other rooms left of a batch waits, whole, for
the next batch, where it has the whole batch: a room is purged once per sweep
unless its due prefix is longer than a whole batch (issue 22: a purge costs about
as much for 2 events as for 200). Only a depth wider than a whole batch (a fork of
concurrent senders) stops the purge, and what is due there is expunged instead.
"""

from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

import attrs


class Positioned(Protocol):
    @property
    def depth(self) -> int: ...


E = TypeVar("E", bound=Positioned)


@attrs.frozen
class PrefixPlan(Generic[E]):
    """The events to purge now, and the depth where this room's purge stops for good.

    ``floor`` None: the batch was full and the walk goes on after the last event of
    ``prefix`` (an empty ``prefix``: the room starts afresh in the next batch).
    Otherwise every non-state event at ``floor`` or deeper stays (what is due there
    is expunged instead).
    """

    prefix: tuple[E, ...]
    floor: int | None


def plan_prefix(
    events: Sequence[E],
    cap: int,
    extremity_depth: int,
    blocks: Callable[[E], bool],
    whole_batch: bool = True,
) -> PrefixPlan[E]:
    """Plan one batch from ``events``: the room's next non-state events, oldest first,
    at most ``cap + 1`` of them (one more than a batch, to see where the batch ends).
    ``whole_batch`` False: ``cap`` is only what other rooms left of the batch."""
    prefix: list[E] = []
    for event in events:
        if event.depth >= extremity_depth or blocks(event):
            return PrefixPlan(tuple(p for p in prefix if p.depth < event.depth), event.depth)
        if len(prefix) == cap:
            if not whole_batch:
                # Not the whole prefix: the room waits for a batch of its own rather than
                # being purged twice.
                return PrefixPlan((), None)
            kept = tuple(p for p in prefix if p.depth < event.depth)
            # More than a whole batch at one depth (a wide fork) cannot be purged in
            # bounds: the purge stops there and the rest is expunged instead.
            return PrefixPlan(kept, None if kept else event.depth)
        prefix.append(event)
    return PrefixPlan(tuple(prefix), extremity_depth)
