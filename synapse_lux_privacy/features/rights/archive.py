"""Writing a data-subject archive to disk with bounded memory (R14, GDPR art. 15).

A zip file written entry by entry: JSON documents, JSON-lines files written a page
at a time (the user's messages, spooled per room to disk first: ``RoomSpool``), and
files copied from a stream in 1 MiB chunks. Nothing is held in
memory beyond one page or one chunk, whatever the user's history. Every method
blocks (file I/O): the exporter calls them in a thread, one at a time.
"""

import hashlib
import json
import os
import shutil
import zipfile
from typing import Any, BinaryIO

CHUNK = 1024 * 1024


class ArchiveWriter:
    """One zip file being written at ``path``; ``files`` entries so far."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.files = 0
        self._zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)

    @property
    def size(self) -> int:
        """Bytes written to disk so far."""
        return os.path.getsize(self.path)

    def write_json(self, name: str, value: Any) -> None:
        self.files += 1
        data = json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True).encode()
        self._zip.writestr(name, data)

    def write_text(self, name: str, text: str) -> None:
        self.files += 1
        self._zip.writestr(name, text.encode())

    def copy_file(self, name: str, source: BinaryIO, compress: bool = False) -> tuple[int, str]:
        """Copy a stream into an entry, stored as it is (files) or compressed (text);
        its size and SHA-256."""
        digest = hashlib.sha256()
        size = 0
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        with self._zip.open(info, "w", force_zip64=True) as out:
            while chunk := source.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        self.files += 1
        return size, digest.hexdigest()

    def close(self) -> None:
        self._zip.close()


class RoomSpool:
    """Per-room JSON-lines files in a folder beside the archive: the user's events come
    in time order across rooms (one pass over their history), and each room's file
    becomes one entry of the archive once all are read. Disk, not memory."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._names: dict[str, str] = {}
        os.makedirs(folder, mode=0o700, exist_ok=True)

    def append(self, by_room: dict[str, list[Any]]) -> None:
        for room_id, values in by_room.items():
            name = self._names.setdefault(room_id, f"{len(self._names)}.jsonl")
            with open(os.path.join(self.folder, name), "ab") as out:
                for value in values:
                    out.write(json.dumps(value, ensure_ascii=False, sort_keys=True).encode())
                    out.write(b"\n")

    def rooms(self) -> list[tuple[str, str]]:
        """(room_id, spool file) of every room with events, in room ID order."""
        return sorted((r, os.path.join(self.folder, n)) for r, n in self._names.items())

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
