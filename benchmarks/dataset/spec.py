"""What a benchmark dataset holds (its recipe) and what was built (its manifest).

A :class:`DatasetSpec` is the recipe: sizes, mix and seed. Two runs with the same
spec build the same shape of data, and a snapshot is stored under the spec's
:meth:`DatasetSpec.key`, so a benchmark asking for the same spec restores it instead
of building it again. The :class:`Manifest` lists what was built: the user IDs and
access tokens, the rooms, the uploads, and the counts, so a benchmark can act as any
of the users after a restore.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import attrs

ADMIN_LOCALPART = "benchadmin"
ADMIN_PASSWORD = "pw-benchadmin"


@attrs.frozen
class DatasetSpec:
    """The recipe of a dataset. Defaults: the content-retention issue's sizes."""

    users: int = 1_000
    rooms: int = 3_000
    members_per_room: int = 3
    messages: int = 100_000
    encrypted_rooms: float = 0.5  # share of the rooms with m.room.encryption
    media: int = 10_000
    media_bytes: int = 2_048
    attachment_events: float = 0.5  # share of the uploads in clear rooms that get an m.image event
    devices_per_user: int = 2
    consenting_users: float = 0.5  # share of the users listed in the national directory (R10)
    seed: int = 1
    clone_rooms: int = 0  # copies of every room made in the database (clone.py), PostgreSQL
    # Messages sent by one user (the member of the most rooms) on top of ``messages``, in
    # their rooms: a long history for a data-subject export (R14), multiplied by clones.
    heavy_sender_messages: int = 0

    def key(self) -> str:
        """A short name for the spec, used as the snapshot's folder name (a spec without
        clones or a heavy sender keeps the name it had before those existed)."""
        fields = attrs.asdict(self)
        for added_later in ("clone_rooms", "heavy_sender_messages"):
            if not fields[added_later]:
                del fields[added_later]
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]
        clones = f"-x{self.clone_rooms}" if self.clone_rooms else ""
        return f"u{self.users}-r{self.rooms}-m{self.messages}-f{self.media}{clones}-{digest}"


@attrs.define
class Manifest:
    """What a build produced; stored with the snapshot as ``manifest.json``."""

    spec: DatasetSpec
    database: str  # "sqlite" or "postgres"
    admin_user_id: str
    admin_token: str
    users: list[str] = attrs.field(factory=list)
    tokens: dict[str, list[str]] = attrs.field(factory=dict)  # user ID -> device access tokens
    rooms: list[str] = attrs.field(factory=list)
    encrypted_rooms: list[str] = attrs.field(factory=list)
    uploads: list[str] = attrs.field(factory=list)  # mxc:// URIs
    counts: dict[str, int] = attrs.field(factory=dict)  # rows per Synapse table after the build
    build_seconds: float = 0.0
    # Cloned snapshots (clone.py): the highest stream ordering before cloning, and the
    # time the cloning took; ``rooms`` lists the copies after the originals.
    base_stream: int = 0
    clone_seconds: float = 0.0
    heavy_sender: str = ""  # the user who sent ``spec.heavy_sender_messages`` (if any)

    def save(self, path: Path) -> None:
        data = attrs.asdict(self)
        path.write_text(json.dumps(data, indent=1, sort_keys=True))

    @staticmethod
    def load(path: Path) -> Manifest:
        data: dict[str, Any] = json.loads(path.read_text())
        data["spec"] = DatasetSpec(**data["spec"])
        return Manifest(**data)
