"""Writing a data-subject archive to disk with bounded memory (R14, GDPR art. 15).

A zip file written entry by entry: JSON documents, JSON-lines files written a page
at a time, and files copied from a stream in 1 MiB chunks. Nothing is held in
memory beyond one page or one chunk, whatever the user's history. Every method
blocks (file I/O): the exporter calls them in a thread, one at a time.
"""

import hashlib
import json
import os
import zipfile
from collections.abc import Iterable
from typing import IO, Any, BinaryIO

CHUNK = 1024 * 1024


class ArchiveWriter:
    """One zip file being written at ``path``; ``files`` entries so far."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.files = 0
        self._zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)
        self._lines: IO[bytes] | None = None

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

    def begin_lines(self, name: str) -> None:
        """Start a JSON-lines entry; ``add_lines`` appends to it until ``end_lines``."""
        self.files += 1
        self._lines = self._zip.open(name, "w", force_zip64=True)

    def add_lines(self, values: Iterable[Any]) -> None:
        assert self._lines is not None
        for value in values:
            self._lines.write(json.dumps(value, ensure_ascii=False, sort_keys=True).encode())
            self._lines.write(b"\n")

    def end_lines(self) -> None:
        assert self._lines is not None
        self._lines.close()
        self._lines = None

    def copy_file(self, name: str, source: BinaryIO) -> tuple[int, str]:
        """Copy a stream into a stored (uncompressed) entry; its size and SHA-256."""
        digest = hashlib.sha256()
        size = 0
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_STORED
        with self._zip.open(info, "w", force_zip64=True) as out:
            while chunk := source.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        self.files += 1
        return size, digest.hexdigest()

    def close(self) -> None:
        self._zip.close()
