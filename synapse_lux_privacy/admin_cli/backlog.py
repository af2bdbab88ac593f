"""The admin API's records as the cost model's inputs (pure functions; R1-R12 sweeps).

``synapse-lux-privacy estimate`` reads a dry run's record (``work``: what each rule would
delete, the purges, the dry run's time per rule) and the server's recorded real sweeps
(``history``: what each rule dealt with, in what time, under which pace), both as
``GET /sweeps`` gives them; ``sweep/cost_model.py`` turns them into a time.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from synapse_lux_privacy.sweep.cost_model import Pace, RecordedRule, RuleWork
from synapse_lux_privacy.sweep.orchestrator import DRY_RUN
from synapse_lux_privacy.sweep.report import CANCELLED, COMPLETED, COMPLETED_WITH_ERRORS

# Sweeps whose times measure the rules: ended by themselves, or stopped when asked.
_MEASURED = {COMPLETED, COMPLETED_WITH_ERRORS, CANCELLED}


def _int(result: Mapping[str, Any], key: str) -> int:
    value = result.get(key)
    return int(value) if isinstance(value, int | float) else 0


def _seconds(result: Mapping[str, Any]) -> float:
    value = result.get("seconds")
    return float(value) if isinstance(value, int | float) else 0.0


def work(dry_run: Mapping[str, Any], rules: Sequence[str], batch_size: int) -> list[RuleWork]:
    """Each rule's work from a dry run's record: the items it would delete (those the dry
    run skipped as ``dry_run``: neither held, R13, nor waiting for a retry), the rooms."""
    results = dry_run.get("results") or {}
    out = []
    for rule in rules:
        result = results.get(rule) or {}
        reasons = result.get("skipped_reasons") or {}
        out.append(
            RuleWork(
                rule,
                items=int(reasons.get(DRY_RUN, 0)),
                rooms=_int(result, "rooms"),
                dry_run_s=_seconds(result),
                batch_size=batch_size,
            )
        )
    return out


def tried(result: Mapping[str, Any]) -> int:
    """Items a real sweep tried to delete: deleted or failed (those its stop left untried,
    ``sweep_stopped``, and the held ones are not part of its time's work)."""
    return _int(result, "deleted") + _int(result, "errors")


def history(records: Iterable[Mapping[str, Any]]) -> list[RecordedRule]:
    """The rules of the recorded real sweeps that measured something: a time and items
    tried (records written before the module stored per-rule times are left out)."""
    out = []
    for record in records:
        if record.get("dry_run") or record.get("status") not in _MEASURED:
            continue
        settings = record.get("pace")
        pace = Pace.from_json(settings) if isinstance(settings, Mapping) else None
        for rule, result in (record.get("results") or {}).items():
            if not isinstance(result, Mapping) or "seconds" not in result:
                continue
            items, seconds = tried(result), _seconds(result)
            if items > 0 and seconds > 0:
                out.append(RecordedRule(rule, items, _int(result, "rooms"), seconds, pace))
    return out
