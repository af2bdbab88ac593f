"""Build a dataset on a running Synapse (with the loader module and ``synapse_lux_privacy``).

Users, rooms and messages go through the in-process loader (``loader.py``); uploads,
the IP/user-agent log and directory consents through the HTTP APIs a client and an
admin use, since those are what records them: ``/_matrix/media/v3/upload``, one
request per device with its own user agent, ``PUT /users/{id}/directory_consent``.
Everything is fresh (sent now); ``aging.py`` then backdates it.
"""

from __future__ import annotations

import io
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import requests
from PIL import Image

from benchmarks.dataset.loader import LOADER_PATH
from benchmarks.dataset.spec import ADMIN_LOCALPART, ADMIN_PASSWORD, DatasetSpec, Manifest
from tests.harness import Database, MatrixClient, SynapseServer
from tests.harness.client import q

GIVEN = [f"Given{chr(65 + i // 26)}{chr(97 + i % 26)}" for i in range(100)]
FAMILY = [f"Family{chr(65 + i // 26)}{chr(97 + i % 26)}" for i in range(100)]
CONTENT_TYPES = ("image/png", "image/jpeg", "application/pdf", "video/mp4")
CHUNK = 100  # users, rooms or rooms-of-messages per loader request
HTTP_WORKERS = 8
COUNTED_TABLES = (
    "users",
    "devices",
    "user_ips",
    "rooms",
    "events",
    "state_events",
    "local_media_repository",
)

T = TypeVar("T")


def localpart(i: int) -> str:
    return f"bench{i:06d}"


def display_name(i: int) -> str:
    """ "<Given> <Family>" from two lists of 100: a given name matches every 100th user."""
    return f"{GIVEN[i % 100]} {FAMILY[(i // 100) % 100]}"


def payload(content_type: str, size: int) -> bytes:
    """A real image for image types (so Synapse makes thumbnails), random bytes otherwise."""
    if not content_type.startswith("image/"):
        return os.urandom(size)
    side = max(8, int((size / 3) ** 0.5))
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    image.save(out, format="PNG" if content_type == "image/png" else "JPEG")
    return out.getvalue()


def user_agent(device: int, user_id: str) -> str:
    """The user agent of a user's n-th device (Synapse keeps the first one it sees in
    10 minutes for a session)."""
    return f"LuxBench/{device} ({user_id})"


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def parallel(func: Callable[[T], Any], items: Iterable[T]) -> list[Any]:
    with ThreadPoolExecutor(HTTP_WORKERS) as pool:
        return list(pool.map(func, items))


def split(total: int, parts: int, rng: random.Random) -> list[int]:
    """``total`` spread over ``parts`` with a long tail (a few big rooms, many small)."""
    if parts == 0 or total == 0:
        return [0] * parts
    weights = [rng.paretovariate(1.2) for _ in range(parts)]
    scale = total / sum(weights)
    counts = [int(w * scale) for w in weights]
    for i in rng.sample(range(parts), total - sum(counts)):
        counts[i] += 1
    return counts


def room_members(db: Database) -> dict[str, list[str]]:
    """The joined members of every room, from Synapse's current state."""
    rows = db.query(
        "SELECT room_id, state_key FROM current_state_events"
        " WHERE type = 'm.room.member' AND membership = 'join' ORDER BY room_id, state_key"
    )
    members: dict[str, list[str]] = {}
    for room_id, user_id in rows:
        members.setdefault(room_id, []).append(user_id)
    return members


def count_rows(db: Database, manifest: Manifest) -> None:
    """The manifest's row counts of Synapse's main tables."""
    for table in COUNTED_TABLES:
        manifest.counts[table] = db.number(f"SELECT COUNT(*) FROM {table}")


class Builder:
    """One build: call :meth:`run`, which returns the manifest."""

    def __init__(self, server: SynapseServer, spec: DatasetSpec, log: Callable[[str], None]):
        self.server = server
        self.spec = spec
        self.log = log
        self.rng = random.Random(spec.seed)
        self.session = requests.Session()

    def _load(self, operation: str, body: dict[str, Any]) -> Any:
        response = self.session.post(
            self.server.base_url + f"{LOADER_PATH}/{operation}", json=body, timeout=3600
        )
        response.raise_for_status()
        return response.json()

    def run(self) -> Manifest:
        began = time.monotonic()
        admin = self.server.register_user(ADMIN_LOCALPART, ADMIN_PASSWORD, admin=True)
        assert admin.access_token is not None and admin.user_id is not None
        manifest = Manifest(self.spec, self.server.database, admin.user_id, admin.access_token)
        self._users(manifest)
        members = self._rooms(manifest)
        attachments = self._uploads(manifest, members)
        self._messages(manifest, members, attachments, self.spec.messages, str(self.spec.seed))
        self._heavy_sender(manifest, members, self.spec.heavy_sender_messages)
        self._ip_log(manifest)
        self._consents(manifest, admin)
        self._count(manifest)
        manifest.build_seconds = round(time.monotonic() - began, 1)
        return manifest

    def grow(self, manifest: Manifest) -> Manifest:
        """Add messages to a restored dataset, up to this builder's spec (the same spec
        with fewer messages, or fewer of the heavy sender's), spread over the rooms as a
        build spreads them."""
        began = time.monotonic()
        extra = self.spec.messages - manifest.spec.messages
        members = room_members(self.server.db())
        seed = f"{self.spec.seed}+{manifest.spec.messages}"
        if extra:
            self._messages(manifest, members, {}, extra, seed)
        heavy = self.spec.heavy_sender_messages - manifest.spec.heavy_sender_messages
        self._heavy_sender(manifest, members, heavy)
        manifest.spec = self.spec
        self._count(manifest)
        manifest.build_seconds = round(manifest.build_seconds + time.monotonic() - began, 1)
        return manifest

    def _count(self, manifest: Manifest) -> None:
        count_rows(self.server.db(), manifest)

    def _users(self, manifest: Manifest) -> None:
        users = [[localpart(i), display_name(i)] for i in range(self.spec.users)]
        for n, chunk in enumerate(chunks(users)):
            body = {"users": list(chunk), "devices": self.spec.devices_per_user}
            manifest.tokens.update(self._load("users", body)["tokens"])
            self.log(f"  users: {min((n + 1) * CHUNK, len(users))}/{len(users)}")
        manifest.users = sorted(manifest.tokens)

    def _rooms(self, manifest: Manifest) -> dict[str, list[str]]:
        width = min(self.spec.members_per_room, len(manifest.users))
        encrypted = set(
            self.rng.sample(
                range(self.spec.rooms), round(self.spec.rooms * self.spec.encrypted_rooms)
            )
        )
        plans: list[dict[str, Any]] = [
            {
                "members": self.rng.sample(manifest.users, width),
                "encrypted": i in encrypted,
                "name": f"bench room {i}",
            }
            for i in range(self.spec.rooms)
        ]
        members: dict[str, list[str]] = {}
        for n, chunk in enumerate(chunks(plans)):
            for plan, room_id in zip(
                chunk, self._load("rooms", {"rooms": list(chunk)})["room_ids"], strict=True
            ):
                manifest.rooms.append(room_id)
                members[room_id] = plan["members"]
                if plan["encrypted"]:
                    manifest.encrypted_rooms.append(room_id)
            self.log(f"  rooms: {min((n + 1) * CHUNK, len(plans))}/{len(plans)}")
        return members

    def _uploads(
        self, manifest: Manifest, members: dict[str, list[str]]
    ) -> dict[str, list[list[str]]]:
        """Uploads by room members; returns per clear room the [sender, mxc, type] to post."""
        plans = []
        for n, room_id in enumerate(self.rng.choices(manifest.rooms, k=self.spec.media)):
            sender = self.rng.choice(members[room_id])
            plans.append((room_id, sender, CONTENT_TYPES[n % len(CONTENT_TYPES)]))
        payloads = {t: payload(t, self.spec.media_bytes) for t in CONTENT_TYPES}

        def upload(plan: tuple[str, str, str]) -> tuple[str, str, str, str]:
            room_id, sender, content_type = plan
            client = MatrixClient(self.server.base_url, manifest.tokens[sender][0], sender)
            client.session.headers["User-Agent"] = user_agent(0, sender)
            mxc = client.upload_media(payloads[content_type], content_type)
            return room_id, sender, mxc, content_type

        attachments: dict[str, list[list[str]]] = {}
        encrypted = set(manifest.encrypted_rooms)
        done = parallel(upload, plans)
        for room_id, sender, mxc, content_type in done:
            manifest.uploads.append(mxc)
            if room_id not in encrypted and self.rng.random() < self.spec.attachment_events:
                attachments.setdefault(room_id, []).append([sender, mxc, content_type])
        self.log(f"  uploads: {len(done)}")
        return attachments

    def _messages(
        self,
        manifest: Manifest,
        members: dict[str, list[str]],
        attachments: dict[str, list[list[str]]],
        total: int,
        seed: str,
    ) -> None:
        encrypted = set(manifest.encrypted_rooms)
        per_room = split(total, len(manifest.rooms), random.Random(seed))
        plans = [
            {
                "room_id": room_id,
                "senders": members[room_id],
                "count": count,
                "encrypted": room_id in encrypted,
                "attachments": attachments.get(room_id, []),
            }
            for room_id, count in zip(manifest.rooms, per_room, strict=True)
        ]
        sent = 0
        began = time.monotonic()
        for chunk in chunks(plans):
            sent += self._load("messages", {"rooms": list(chunk), "seed": seed})["sent"]
            rate = sent / max(time.monotonic() - began, 1e-9)
            self.log(f"  messages: {sent}/{total} ({rate:.0f}/s)")

    def _heavy_sender(self, manifest: Manifest, members: dict[str, list[str]], total: int) -> None:
        """``total`` messages from one user, the member of the most rooms (the first such
        in the manifest's order), spread over their rooms: the long history of a
        data-subject export (R14)."""
        if total <= 0:
            return
        if not manifest.heavy_sender:
            rooms_of = {user_id: 0 for user_id in manifest.users}
            for joined in members.values():
                for user_id in joined:
                    if user_id in rooms_of:
                        rooms_of[user_id] += 1
            manifest.heavy_sender = max(manifest.users, key=lambda u: rooms_of[u])
        heavy = manifest.heavy_sender
        theirs = [room_id for room_id in manifest.rooms if heavy in members.get(room_id, [])]
        seed = f"{self.spec.seed}/heavy/{manifest.spec.heavy_sender_messages}"
        per_room = split(total, len(theirs), random.Random(seed))
        encrypted = set(manifest.encrypted_rooms)
        plans = [
            {
                "room_id": room_id,
                "senders": [heavy],
                "count": count,
                "encrypted": room_id in encrypted,
            }
            for room_id, count in zip(theirs, per_room, strict=True)
        ]
        began = time.monotonic()
        sent = self._load("messages", {"rooms": plans, "seed": seed})["sent"]
        rate = sent / max(time.monotonic() - began, 1e-9)
        self.log(f"  heavy sender {heavy}: {sent} messages in {len(theirs)} rooms ({rate:.0f}/s)")

    def _ip_log(self, manifest: Manifest) -> None:
        """One request per device, each with its own user agent: Synapse's IP log (R9)."""
        sessions = [
            (token, user_agent(n, user_id))
            for user_id in manifest.users
            for n, token in enumerate(manifest.tokens[user_id])
        ]

        def touch(session: tuple[str, str]) -> None:
            token, agent = session
            response = requests.get(
                self.server.base_url + "/_matrix/client/v3/account/whoami",
                headers={"Authorization": f"Bearer {token}", "User-Agent": agent},
                timeout=60,
            )
            response.raise_for_status()

        parallel(touch, sessions)
        db = self.server.db()
        deadline = time.monotonic() + 60
        recorded = "SELECT COUNT(*) FROM user_ips WHERE user_agent LIKE 'LuxBench/%'"
        while db.number(recorded) < len(sessions):
            assert time.monotonic() < deadline, "Synapse did not record the IP log"
            time.sleep(0.5)  # Synapse writes its IP log in batches every 5 s

    def _consents(self, manifest: Manifest, admin: MatrixClient) -> None:
        """The consenting share of the users is listed in the national directory (R10)."""
        chosen = self.rng.sample(
            manifest.users, round(len(manifest.users) * self.spec.consenting_users)
        )

        def consent(user_id: str) -> None:
            client = MatrixClient(self.server.base_url, admin.access_token, admin.user_id)
            status, body = client.lux(
                "PUT", f"/users/{q(user_id)}/directory_consent", {"consent": True}
            )
            assert status == 200, body

        parallel(consent, chosen)
        self.log(f"  directory consents: {len(chosen)}")
