"""The homeserver's own ed25519 signing key, the one federation publishes at
``/_matrix/key/v2/server`` (``HomeServer.signing_key``, the first key of the
``signing_key_path`` file). Used to sign certificates (issue #24); never exported."""

from signedjson.types import SigningKey
from synapse.module_api import ModuleApi


def signing_key(api: ModuleApi) -> SigningKey:
    key: SigningKey = api._hs.signing_key
    return key
