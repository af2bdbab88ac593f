"""A benchmark-only Synapse module that creates users, rooms and messages in-process.

Sending through the client API manages about 40 events/s on two cores: too slow for a
dataset of 100k events. This module, loaded beside ``synapse_lux_privacy`` in the
server that builds a dataset, does the same work through Synapse's *public* module API
(``ModuleApi.register_user``, ``register_device``, ``create_room``,
``update_room_membership``, ``create_and_send_event_into_room``): the same handlers,
checks, signatures, persistence and callbacks as a client's request, without the
HTTP round trip and rate limits, many rooms at a time.

One endpoint, ``POST /_synapse/client/lux_bench/dataset/{users,rooms,messages}``,
open to anyone: never load this module in a real homeserver.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from synapse.module_api import (
    DirectServeJsonResource,
    ModuleApi,
    SynapseRequest,
    make_deferred_yieldable,
    parse_json_object_from_request,
    run_in_background,
)
from twisted.internet import defer

LOADER_PATH = "/_synapse/client/lux_bench/dataset"
LOADER_MODULE = "benchmarks.dataset.loader.DatasetLoader"
CONCURRENCY = 24  # rooms filled at the same time; Synapse serialises per room, not across

T = TypeVar("T")
WORDS = (
    "bonjour",
    "moien",
    "merci",
    "réunion",
    "demain",
    "dossier",
    "café",
    "train",
    "Luxembourg",
    "projet",
    "photo",
    "ok",
    "ce soir",
    "voilà",
    "semaine",
    "rapport",
)


async def for_each(items: Iterable[T], work: Callable[[T], Awaitable[object]], width: int) -> None:
    """Run ``work`` on every item, at most ``width`` at a time, in the request's log
    context (Synapse logs a warning per database call made outside one)."""
    pending = iter(items)

    async def worker() -> None:
        for item in pending:
            await work(item)

    workers = [run_in_background(worker) for _ in range(width)]
    await make_deferred_yieldable(defer.gatherResults(workers, consumeErrors=True))


def text_body(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 14)))


def megolm_content(rng: random.Random, device_id: str) -> dict[str, Any]:
    """An ``m.room.encrypted`` payload of realistic size (the server cannot read it)."""
    ciphertext = base64.b64encode(rng.randbytes(rng.randint(120, 600))).decode()
    return {
        "algorithm": "m.megolm.v1.aes-sha2",
        "ciphertext": ciphertext.rstrip("="),
        "device_id": device_id,
        "sender_key": base64.b64encode(rng.randbytes(32)).decode().rstrip("="),
        "session_id": base64.b64encode(rng.randbytes(32)).decode().rstrip("="),
    }


class DatasetLoader:
    """The module: mounts the loader resource."""

    def __init__(self, config: Mapping[str, Any], api: ModuleApi) -> None:
        api.register_web_resource(LOADER_PATH, _LoaderResource(api))

    @staticmethod
    def parse_config(config: Mapping[str, Any]) -> Mapping[str, Any]:
        return config


class _LoaderResource(DirectServeJsonResource):
    isLeaf = True

    def __init__(self, api: ModuleApi) -> None:
        super().__init__()
        self._api = api

    async def _async_render_POST(self, request: SynapseRequest) -> tuple[int, Any]:
        body = parse_json_object_from_request(request)
        operation = request.path.decode().rsplit("/", 1)[-1]
        if operation == "users":
            return 200, await self._users(body)
        if operation == "rooms":
            return 200, await self._rooms(body)
        if operation == "messages":
            return 200, await self._messages(body)
        return 404, {"errcode": "M_UNRECOGNIZED", "error": f"unknown operation {operation}"}

    async def _users(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``{"users": [[localpart, display name], ...], "devices": n}`` -> tokens per user."""
        tokens: dict[str, list[str]] = {}

        async def one(entry: list[str]) -> None:
            user_id = await self._api.register_user(entry[0], displayname=entry[1])
            tokens[user_id] = []
            for d in range(int(body["devices"])):
                _, token, _, _ = await self._api.register_device(
                    user_id, f"BENCH{d}", f"bench device {d}"
                )
                tokens[user_id].append(token)

        await for_each(body["users"], one, CONCURRENCY)
        return {"tokens": tokens}

    async def _rooms(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``{"rooms": [{"members": [...], "encrypted": bool, "name": str}]}`` -> room IDs.

        The first member creates the room (public join rule), the others join it."""
        room_ids: dict[int, str] = {}

        async def one(indexed: tuple[int, Mapping[str, Any]]) -> None:
            index, room = indexed
            creator, *others = room["members"]
            initial_state = []
            if room["encrypted"]:
                initial_state.append(
                    {
                        "type": "m.room.encryption",
                        "state_key": "",
                        "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                    }
                )
            config = {"preset": "public_chat", "name": room["name"], "initial_state": initial_state}
            room_id, _ = await self._api.create_room(creator, config, ratelimit=False)
            for member in others:
                await self._api.update_room_membership(member, member, room_id, "join")
            room_ids[index] = room_id

        await for_each(enumerate(body["rooms"]), one, CONCURRENCY)
        return {"room_ids": [room_ids[i] for i in range(len(body["rooms"]))]}

    async def _messages(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``{"rooms": [{"room_id", "senders", "count", "encrypted", "attachments"}], "seed"}``.

        Each room gets ``count`` messages from its senders in turn, oldest first; in a
        clear room the ``attachments`` ([sender, mxc, content type]) are posted as
        ``m.image`` / ``m.file`` events among the texts."""
        sent = 0

        async def one(room: Mapping[str, Any]) -> None:
            nonlocal sent
            rng = random.Random(f"{body['seed']}/{room['room_id']}")
            attachments = list(room.get("attachments", []))
            every = max(1, room["count"] // (len(attachments) + 1))
            for n in range(room["count"]):
                sender = room["senders"][n % len(room["senders"])]
                if room["encrypted"]:
                    event_type, content = "m.room.encrypted", megolm_content(rng, "BENCH0")
                elif attachments and n % every == every - 1:
                    owner, mxc, content_type = attachments.pop()
                    sender = owner
                    msgtype = "m.image" if content_type.startswith("image/") else "m.file"
                    event_type = "m.room.message"
                    content = {
                        "msgtype": msgtype,
                        "body": f"file{n}",
                        "url": mxc,
                        "info": {"mimetype": content_type},
                    }
                else:
                    event_type = "m.room.message"
                    content = {"msgtype": "m.text", "body": text_body(rng)}
                await self._api.create_and_send_event_into_room(
                    {
                        "type": event_type,
                        "room_id": room["room_id"],
                        "sender": sender,
                        "content": content,
                    }
                )
                sent += 1

        await for_each(body["rooms"], one, CONCURRENCY)
        return {"sent": sent}
