"""``check-config`` on YAML nested too deeply to load: a clear error and exit 2, no traceback.

Time: nothing here depends on time.
"""

from pathlib import Path

import pytest

from synapse_lux_privacy.cli import main


@pytest.mark.parametrize("opening", ["[", "{a: "])
def test_r1_deeply_nested_yaml_exits_2_with_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], opening: str
) -> None:
    closing = "]" if opening == "[" else "}"
    path = tmp_path / "homeserver.yaml"
    path.write_text(f"server_name: {opening * 2000}1{closing * 2000}\n")
    status = main(["check-config", str(path)])
    out, err = capsys.readouterr()
    assert (status, out) == (2, "")
    assert err == f"error: {path} is nested too deeply to be read as YAML\n"
