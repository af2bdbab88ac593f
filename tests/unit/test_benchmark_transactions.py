"""``benchmarks/transactions.py`` (issue 14's profiling of R1 sweeps): Synapse's
transaction log added up by name over a window of wall-clock time (pure parsing of a
written log; no server)."""

from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from benchmarks.transactions import Transactions, logged_at, print_transactions, transactions_in


def line(at: str, context: str, message: str) -> str:
    return f"2026-11-30 {at} - synapse.storage.txn - 935 - DEBUG - {context} - {message}\n"


def epoch(at: str) -> float:
    return datetime.strptime(f"2026-11-30 {at}", "%Y-%m-%d %H:%M:%S,%f").timestamp()


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "homeserver.log"
    path.write_text(
        line("14:00:00,900", "main", "[TXN END] {get_users-3} 0.500000 sec")
        + line("14:00:01,000", "POST-2", "[purge] Running retention purge job for None")
        + line("14:00:01,100", "POST-2-!a", "[TXN START] {purge_history-1f}")
        + line("14:00:01,200", "POST-2-!a", "[TXN END] {purge_history-1f} 0.087000 sec")
        + line("14:00:01,300", "POST-2-!b", "[TXN END] {purge_history-2a} 0.013000 sec")
        + line("14:00:01,400", "POST-2", "[TXN END] {lux_privacy_scan_room-b} 0.004000 sec")
        + line("14:00:03,000", "main", "[TXN END] {purge_history-30} 9.000000 sec")
    )
    return path


def test_transactions_in_a_window_are_added_up_by_name_whatever_their_counter(
    log: Path,
) -> None:
    txns = transactions_in(log, epoch("14:00:01,000"), epoch("14:00:02,000"))
    assert txns.count == {"purge_history": 2, "lux_privacy_scan_room": 1}
    assert txns.seconds == pytest.approx({"purge_history": 0.1, "lux_privacy_scan_room": 0.004})
    assert txns.window_s == pytest.approx(1.0)


def test_the_first_line_naming_a_text_gives_the_start_of_a_window(log: Path) -> None:
    assert logged_at(log, "Running retention purge job") == epoch("14:00:01,000")
    with pytest.raises(ValueError, match="not in"):
        logged_at(log, "never logged")


def test_the_printout_lists_every_one_of_the_module_own_transactions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 22's 10 % target is read from the module's own names: each is printed, also
    those too light to be among the heaviest overall."""
    txns = Transactions(
        10.0,
        Counter({"purge_history": 2, "lux_privacy_scan_room": 4, "lux_privacy_audit_start": 1}),
        {"purge_history": 0.9, "lux_privacy_scan_room": 0.08, "lux_privacy_audit_start": 0.02},
    )
    print_transactions("module", txns, top=1)
    out = capsys.readouterr().out
    assert "the module's own (lux_privacy_*): 0.10 s, 10.0 % of the connection time" in out
    heaviest, own = out.split("every name:")
    assert "purge_history" in heaviest and "lux_privacy" not in heaviest.split("\n", 2)[2]
    assert own.index("lux_privacy_scan_room") < own.index("lux_privacy_audit_start")
    assert "purge_history" not in own
    assert "1 x   20.0 ms  lux_privacy_audit_start" in own
