"""The admin API's answers, checked before the commands use them (R1-R12 sweeps, R14
reports): a proxy's HTML, a JSON value of the wrong type or a status this command does
not know becomes one ``BadAnswer`` sentence naming the field, never a traceback later
in a view, and never a wait for a status that will not come.
"""

import math
from collections.abc import Mapping
from typing import Any, NoReturn

from synapse_lux_privacy.admin_cli import sweep_view
from synapse_lux_privacy.admin_cli.client import BadAnswer
from synapse_lux_privacy.admin_cli.errors import one_line

RUNNING = "running"
STATUSES = (RUNNING, *sweep_view.FINAL_STATUSES)

# Whole numbers the API sends (counts, bytes, milliseconds) fit a signed 64-bit column.
_MAX_INT = 2**63

_COUNT_FIELDS = (*sweep_view.COUNTS, "bytes")


def json_object(value: Any, what: str, kind: str) -> dict[str, Any]:
    """``value`` if it is a JSON object; BadAnswer naming what was expected otherwise."""
    if not isinstance(value, dict):
        raise BadAnswer(f"the answer to {what} is not {kind} (a JSON object): {_shown(value)}")
    return value


def sweep_id(value: Any, what: str) -> str:
    """The ``sweep_id`` of ``POST /sweeps``'s answer."""
    answer = json_object(value, what, "a started sweep")
    found = answer.get("sweep_id")
    if not isinstance(found, str) or not found or not found.isprintable():
        raise BadAnswer(f"the answer to {what} has no usable sweep_id: {_shown(found)}")
    return found


def sweep_record(value: Any, what: str) -> dict[str, Any]:
    """A ``GET /sweeps/{id}`` record whose fields have the API's types (admin-api.md,
    "Long sweeps in the background"); its status one this command knows."""
    record = json_object(value, what, "a sweep record")
    status = record.get("status")
    if status not in STATUSES:
        raise BadAnswer(
            f"the answer to {what} has the status {_shown(status)}, which this command"
            f" does not know ({', '.join(STATUSES)}): is the module newer than the command?"
        )
    checks = {
        "sweep_id": _text,
        "current_rule": _text,
        "dry_run": _flag,
        "as_of": _whole,
        "started_ts": _whole,
        "finished_ts": _whole,
        "rate_per_s": _number,
        "eta_s": _number,
    }
    for name, check in checks.items():
        check(record.get(name), name, what)
    if record.get("pace") is not None:
        _settings(_mapping(record["pace"], "pace", what), "pace.", what)
    results = record.get("results")
    if results is not None:
        for rule, result in _mapping(results, "results", what).items():
            counts = _mapping(result, f"results.{rule}", what)
            for name in _COUNT_FIELDS:
                _whole(counts.get(name), f"results.{rule}.{name}", what)
            _whole(counts.get("rooms"), f"results.{rule}.rooms", what)
            _number(counts.get("seconds"), f"results.{rule}.seconds", what)
            reasons = counts.get("skipped_reasons")
            if reasons is not None:
                for reason, n in _mapping(reasons, f"results.{rule}.skipped_reasons", what).items():
                    _whole(n, f"results.{rule}.skipped_reasons.{reason}", what)
    return record


def sweep_records(value: Any, what: str) -> list[dict[str, Any]]:
    """The records of ``GET /sweeps``' answer, each checked as ``sweep_record``."""
    sweeps = json_object(value, what, "a list of sweeps").get("sweeps")
    if not isinstance(sweeps, list):
        _wrong(sweeps, "sweeps", what, "a list")
    return [sweep_record(item, what) for item in sweeps]


def sweep_settings(value: Any, what: str) -> dict[str, Any]:
    """``GET /sweep/settings``' answer, with the types the cost model reads."""
    settings = json_object(value, what, "the sweep settings")
    if not isinstance(settings.get("sweep_batch_size"), int) or settings["sweep_batch_size"] < 1:
        _wrong(settings.get("sweep_batch_size"), "sweep_batch_size", what, "a whole number")
    _settings(settings, "", what)
    return settings


def _settings(settings: Mapping[str, Any], prefix: str, what: str) -> None:
    _flag(settings.get("dry_run"), f"{prefix}dry_run", what)
    _whole(settings.get("sweep_batch_size"), f"{prefix}sweep_batch_size", what)
    _number(settings.get("sweep_pace"), f"{prefix}sweep_pace", what)
    adaptive = settings.get("sweep_adaptive_pace")
    if adaptive is not None:
        name = f"{prefix}sweep_adaptive_pace"
        adaptive = _mapping(adaptive, name, what)
        _flag(adaptive.get("enabled"), f"{name}.enabled", what)
        _number(adaptive.get("min_pace"), f"{name}.min_pace", what)
        _number(adaptive.get("max_slowdown"), f"{name}.max_slowdown", what)
        _number(adaptive.get("rest"), f"{name}.rest", what)


def _mapping(value: Any, name: str, what: str) -> Mapping[str, Any]:
    """An object whose keys (rule names, skip reasons) are printable names."""
    if not isinstance(value, dict):
        _wrong(value, name, what, "an object")
    for key in value:
        _text(key, f"a key of {name}", what)
    return value


def _text(value: Any, name: str, what: str) -> None:
    """A string that can be shown as it is: no control characters (terminal escapes)."""
    if value is not None and not (isinstance(value, str) and value.isprintable()):
        _wrong(value, name, what, "a printable string")


def _flag(value: Any, name: str, what: str) -> None:
    if value is not None and not isinstance(value, bool):
        _wrong(value, name, what, "true or false")


def _whole(value: Any, name: str, what: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= _MAX_INT:
        _wrong(value, name, what, "a whole number")


def _number(value: Any, name: str, what: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        _wrong(value, name, what, "a number")
    if not math.isfinite(value) or abs(value) >= _MAX_INT:
        _wrong(value, name, what, "a finite number")


def _wrong(value: Any, name: str, what: str, expected: str) -> NoReturn:
    raise BadAnswer(f"the answer to {what} has {name} = {_shown(value)}, not {expected}")


def _shown(value: Any) -> str:
    text = repr(value)
    return one_line(text if len(text) <= 80 else text[:77] + "...")
