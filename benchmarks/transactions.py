"""Where a Synapse process's database time goes: its transactions by name, in a time window.

Synapse logs every transaction's end, with its name and duration, on the
``synapse.storage.txn`` logger at ``DEBUG`` (``[TXN END] {name-counter} 0.012 sec``).
``log_transactions`` turns that logger on for a server not yet started;
``transactions_in`` adds them up over a window of wall-clock time (the logs' timestamps
are local time, as ``time.time()``), and ``print_transactions`` prints the totals, the
heaviest names and every one of the module's own. The time counted is connection time:
from the transaction's start on a pooled connection to its commit, retries included,
waits for a connection excluded.
Logging every transaction slows the process a little: compare sides measured the same way.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import attrs
import yaml

from tests.harness import SynapseServer

# The module's transactions are named so (``DbRunner``); the adaptive pace's probe.
MODULE_PREFIX = "lux_privacy_"
PROBE = "lux_privacy_load_probe"
_TXN_END = re.compile(r"\[TXN END\] \{(.+)-[0-9a-f]+\} ([0-9.]+) sec")


@attrs.frozen
class Transactions:
    """Transactions that ended in a window: count and seconds per name."""

    window_s: float
    count: Counter[str]
    seconds: dict[str, float]


def log_transactions(server: SynapseServer) -> None:
    """Log every transaction of ``server`` (call before it starts)."""
    path = server.dir / "log.config"
    config = yaml.safe_load(path.read_text())
    config.setdefault("loggers", {})["synapse.storage.txn"] = {"level": "DEBUG"}
    path.write_text(yaml.safe_dump(config))


def logged_at(log: Path, text: str) -> float:
    """When (epoch s) the first line of the log containing ``text`` was written."""
    with log.open(encoding="utf8") as lines:
        for line in lines:
            if text in line:
                return _timestamp(line)
    raise ValueError(f"{text!r} is not in {log}")


def _timestamp(line: str) -> float:
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def transactions_in(log: Path, since: float, until: float) -> Transactions:
    """The transactions the log shows ending between ``since`` and ``until`` (epoch s)."""
    count: Counter[str] = Counter()
    seconds: defaultdict[str, float] = defaultdict(float)
    with log.open(encoding="utf8") as lines:
        for line in lines:
            found = _TXN_END.search(line)
            if found is None:
                continue
            ended = _timestamp(line)
            if since <= ended <= until:
                count[found.group(1)] += 1
                seconds[found.group(1)] += float(found.group(2))
    return Transactions(until - since, count, dict(seconds))


def print_transactions(label: str, txns: Transactions, top: int = 12) -> None:
    total = sum(txns.seconds.values())
    busy = total / txns.window_s if txns.window_s > 0 else 0.0
    print(
        f"{label}: {sum(txns.count.values())} transactions, {total:.2f} s of connection"
        f" time in {txns.window_s:.2f} s ({busy:.1f} connections busy on average)"
    )
    own = {name: t for name, t in txns.seconds.items() if name.startswith(MODULE_PREFIX)}
    if own and total > 0:
        probes = sum(t for name, t in own.items() if name == PROBE)
        print(
            f"  the module's own ({MODULE_PREFIX}*): {sum(own.values()):.2f} s,"
            f" {100 * sum(own.values()) / total:.1f} % of the connection time"
            f" (of which load probes {100 * probes / total:.1f} %)"
        )
    _print_names(txns, sorted(txns.seconds, key=lambda name: -txns.seconds[name])[:top], total)
    if own and total > 0:
        print("  the module's own, every name:")
        _print_names(txns, sorted(own, key=lambda name: -own[name]), total)


def _print_names(txns: Transactions, names: list[str], total: float) -> None:
    for name in names:
        seconds, calls = txns.seconds[name], txns.count[name]
        print(
            f"  {seconds:7.2f} s {100 * seconds / total:5.1f} % {calls:6} x"
            f" {1000 * seconds / calls:6.1f} ms  {name}"
        )
