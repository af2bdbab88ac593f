"""The counts a sweep reports per rule, as the admin API returns them.

Every candidate is accounted for: ``candidates == deleted + held + errors + skipped``
for each rule (``RuleResult.balanced``). ``rule_errors`` counts failures of the rule
itself (its candidates could not be listed), which stop the rule for the sweep.
"""

from typing import Any

import attrs

# The statuses of a sweep, as ``GET /sweeps/{id}`` reports them.
RUNNING = "running"
COMPLETED = "completed"
COMPLETED_WITH_ERRORS = "completed_with_errors"
CANCELLED = "cancelled"
INTERRUPTED = "interrupted"


@attrs.define
class RuleResult:
    """Counts for one rule in one sweep."""

    candidates: int = 0
    deleted: int = 0
    held: int = 0
    errors: int = 0
    skipped: int = 0
    skipped_reasons: dict[str, int] = attrs.Factory(dict)
    rule_errors: int = 0
    bytes: int = 0
    enforced: bool = True
    # What ``synapse-lux-privacy estimate`` calibrates on (``sweep/cost_model.py``): the
    # rule's wall time in this sweep (pauses of the pace included), and per batch the
    # rooms its eligible items lie in, summed (for ``messages``: the purges, one per room
    # and batch), plus the rooms their deletion touches (``accounts``: the rooms parted).
    seconds: float = 0.0
    rooms: int = 0

    def skip(self, reason: str, count: int = 1) -> None:
        if count:
            self.skipped += count
            self.skipped_reasons[reason] = self.skipped_reasons.get(reason, 0) + count

    def balanced(self) -> bool:
        """The accounting invariant: no candidate left unexplained."""
        return self.candidates == self.deleted + self.held + self.errors + self.skipped

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.define
class SweepReport:
    sweep_id: str
    as_of: int
    dry_run: bool
    started_ts: int
    finished_ts: int | None = None
    status: str = RUNNING
    current_rule: str | None = None
    results: dict[str, RuleResult] = attrs.Factory(dict)
    # The settings that paced this sweep (as ``GET /sweep/settings`` gives them), so that
    # ``synapse-lux-privacy estimate`` knows what its recorded times were measured under.
    pace: dict[str, Any] | None = None
    # What the sweep did about the deleted text its deletions left in the database files
    # (``synapse_adapter/disk_residue.py``), or None when it deleted no events.
    disk_residue: dict[str, Any] | None = None

    @property
    def errors(self) -> int:
        return sum(r.errors + r.rule_errors for r in self.results.values())

    @property
    def processed(self) -> int:
        """Candidates looked at so far, over every rule."""
        return sum(r.candidates for r in self.results.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "sweep_id": self.sweep_id,
            "status": self.status,
            "as_of": self.as_of,
            "dry_run": self.dry_run,
            "started_ts": self.started_ts,
            "finished_ts": self.finished_ts,
            "current_rule": self.current_rule,
            "results": {name: r.to_json() for name, r in self.results.items()},
            "pace": self.pace,
            "disk_residue": self.disk_residue,
        }
