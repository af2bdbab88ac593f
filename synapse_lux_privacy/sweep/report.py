"""The counts a sweep reports per rule, as the admin API returns them."""

from typing import Any

import attrs


@attrs.define
class RuleResult:
    """Counts for one rule in one sweep."""

    candidates: int = 0
    deleted: int = 0
    held: int = 0
    errors: int = 0
    bytes: int = 0
    enforced: bool = True

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.define
class SweepReport:
    sweep_id: str
    as_of: int
    dry_run: bool
    started_ts: int
    finished_ts: int | None = None
    results: dict[str, RuleResult] = attrs.Factory(dict)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.results.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "sweep_id": self.sweep_id,
            "as_of": self.as_of,
            "dry_run": self.dry_run,
            "started_ts": self.started_ts,
            "finished_ts": self.finished_ts,
            "results": {name: r.to_json() for name, r in self.results.items()},
        }
