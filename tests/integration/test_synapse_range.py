"""A real Synapse reporting a release above the tested range: refused, or self-checked.

The newest published release is inside the range, so the tests fake a newer one: the
Synapse process gets a folder first on its PYTHONPATH holding only a
``matrix_synapse-1.170.0.dist-info`` (a copy of the real metadata but for the version,
which is what ``importlib.metadata`` reads); the code that runs is the real Synapse.
A missing column is faked by dropping it from Synapse's database between two starts.
(Missing private APIs are faked in tests/unit/test_adapter_selfcheck.py.)
"""

import importlib.metadata
import re
from pathlib import Path

import pytest

from tests.conftest import StartSynapse

pytestmark = pytest.mark.integration

FAKE_VERSION = "1.170.0"


@pytest.fixture
def newer_synapse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make the Synapse processes this test starts report release 1.170.0."""
    site = tmp_path / "fake-release"
    info = site / f"matrix_synapse-{FAKE_VERSION}.dist-info"
    info.mkdir(parents=True)
    # Synapse reads its own metadata (extras, requirements): keep all but the version.
    real = importlib.metadata.distribution("matrix-synapse").read_text("METADATA") or ""
    (info / "METADATA").write_text(
        re.sub(r"(?m)^Version: .*$", f"Version: {FAKE_VERSION}", real, count=1)
    )
    monkeypatch.setenv("PYTHONPATH", str(site))
    return FAKE_VERSION


def test_a_release_above_the_range_is_refused_without_allow_untested_synapse(
    start_synapse: StartSynapse, newer_synapse: str
) -> None:
    with pytest.raises(RuntimeError) as failure:
        start_synapse("sqlite", {})
    message = str(failure.value)
    assert f"this is Synapse {newer_synapse}" in message
    assert "allow_untested_synapse: true" in message


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_with_allow_untested_synapse_the_self_check_runs_and_a_missing_column_is_named(
    start_synapse: StartSynapse, newer_synapse: str, database: str
) -> None:
    server = start_synapse(database, {"allow_untested_synapse": True})
    log = server.log_text()
    assert f"Synapse {newer_synapse} is newer than the tested range" in log
    assert "self-check of its private API and of its database schema passed" in log
    admin = server.register_user("boss", admin=True)
    status, _ = admin.lux("GET", "/holds")
    assert status == 200

    server.stop()
    server.db().execute("ALTER TABLE room_stats_state DROP COLUMN avatar")
    with pytest.raises(RuntimeError) as failure:
        server.start()
    assert "column room_stats_state.avatar is missing" in str(failure.value)
