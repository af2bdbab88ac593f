"""The data-subject archive's pure parts (R14, GDPR art. 15; R13: a hold never shows).

No clock: the README is made "as of" a fixed time.
"""

import hashlib
import io
import json
import zipfile
from pathlib import Path

from synapse_lux_privacy.config import parse_config
from synapse_lux_privacy.features.rights.archive import CHUNK, ArchiveWriter, RoomSpool
from synapse_lux_privacy.features.rights.exporter import hold_free, media_file, room_file
from synapse_lux_privacy.features.rights.readme import readme_text


class _Chunks(io.RawIOBase):
    """A stream that counts the largest read asked of it."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.largest = 0

    def read(self, size: int = -1) -> bytes:
        self.largest = max(self.largest, size)
        return self._data.read(size)


def test_r13_r14_the_exported_report_drops_every_hold_field_at_any_depth() -> None:
    report = {
        "user_id": "@a:x",
        "legal_hold": True,
        "legal_hold_ids": ["case"],
        "account_held": True,
        "account_deletion_due_ts": None,
        "messages": {"count": 3, "held_count": 3, "next_deletion_ts": None},
        "sessions": [{"device_id": "D", "logout_due_ts": None, "last_seen_ts": 5}],
    }
    assert hold_free(report) == {
        "user_id": "@a:x",
        "messages": {"count": 3},
        "sessions": [{"device_id": "D", "last_seen_ts": 5}],
    }


def test_r14_archive_names_are_safe_and_distinct() -> None:
    assert room_file("!abc:ex.org") == "messages/%21abc%3Aex.org.jsonl"
    assert room_file("!a/b:x") != room_file("!a_b:x")
    assert media_file("AbC", "../../etc/passwd") == "media/AbC-etc_passwd"
    assert media_file("AbC", None) == "media/AbC"


def test_r14_rooms_are_spooled_and_files_copied_in_bounded_chunks_with_their_digest(
    tmp_path: Path,
) -> None:
    data = bytes(range(256)) * (3 * CHUNK // 256 + 7)
    source = _Chunks(data)
    writer = ArchiveWriter(str(tmp_path / "a.zip"))
    spool = RoomSpool(str(tmp_path / "a.zip.rooms"))
    spool.append({"!b:x": [{"n": 1}], "!a:x": [{"n": 2}]})
    spool.append({"!b:x": [{"n": 3}]})
    for room_id, path in spool.rooms():
        with open(path, "rb") as lines:
            writer.copy_file(room_file(room_id), lines, compress=True)
    spool.remove()
    size, digest = writer.copy_file("media/m", source)  # type: ignore[arg-type]
    writer.write_json("media.json", [{"sha256": digest}])
    writer.close()
    assert (size, digest) == (len(data), hashlib.sha256(data).hexdigest())
    assert source.largest == CHUNK
    archive = zipfile.ZipFile(tmp_path / "a.zip")
    assert archive.read("media/m") == data
    lines = {room: archive.read(room_file(room)).splitlines() for room in ("!a:x", "!b:x")}
    assert {room: [json.loads(x) for x in v] for room, v in lines.items()} == {
        "!a:x": [{"n": 2}],
        "!b:x": [{"n": 1}, {"n": 3}],
    }
    assert writer.files == 4 and not (tmp_path / "a.zip.rooms").exists()


def test_r13_r14_the_readme_is_bilingual_gives_the_periods_and_never_names_holds() -> None:
    text = readme_text(parse_config({}), "@a:x", 1_767_225_600_000)
    assert "RGPD" in text and "GDPR" in text and "2026-01-01 00:00 UTC" in text
    assert "24M" in text and "7d" in text  # messages; the archive's own retention
    assert "hold" not in text.lower() and "held" not in text.lower()
