"""A certificate: what a sweep (or an erasure) did, signed as federation signs.

The body is canonical JSON signed with the homeserver's own ed25519 signing key through
``signedjson``, under the key ID federation publishes at ``/_matrix/key/v2/server``
(``ed25519:a_xxxx``), so anyone holding that public key can check it offline
(``verify.py``). A sweep certificate carries counts only, never user or room IDs.
"""

from collections.abc import Mapping
from typing import Any

from signedjson.sign import sign_json
from signedjson.types import SigningKey

CERTIFICATE_TYPE = "lux_privacy_certificate"
FORMAT_VERSION = 1
SWEEP = "sweep"
ERASURE = "erasure"
KINDS = (SWEEP, ERASURE)
# The counts a certificate gives per rule (admin-api.md, "Every candidate is accounted for").
COUNTS = ("candidates", "deleted", "held", "errors", "skipped")
# Fields the service sets; a payload may not set them.
RESERVED = frozenset(
    {"type", "format", "server_name", "kind", "subject_id", "audit_chain", "versions",
     "issued_ts", "signatures", "unsigned"}
)  # fmt: skip


def key_id(key: SigningKey) -> str:
    """The key's ID as federation names it (``ed25519:<version>``)."""
    return f"{key.alg}:{key.version}"


def build(
    server_name: str,
    kind: str,
    subject_id: str,
    payload: Mapping[str, Any],
    chain_head: Mapping[str, Any],
    versions: Mapping[str, str],
    issued_ts: int,
) -> dict[str, Any]:
    """The unsigned certificate: the service's fields and the kind's ``payload``."""
    if kind not in KINDS:
        raise ValueError(f"unknown certificate kind {kind!r}")
    clash = RESERVED & set(payload)
    if clash:
        raise ValueError(f"certificate payload may not set {sorted(clash)}")
    return {
        "type": CERTIFICATE_TYPE,
        "format": FORMAT_VERSION,
        "server_name": server_name,
        "kind": kind,
        "subject_id": subject_id,
        **payload,
        "audit_chain": dict(chain_head),
        "versions": dict(versions),
        "issued_ts": issued_ts,
    }


def sweep_payload(report: Mapping[str, Any]) -> dict[str, Any]:
    """A sweep's certificate fields from its report (``SweepReport.to_json``): counts only."""
    results = {
        rule: {name: int(counts.get(name, 0)) for name in COUNTS}
        for rule, counts in report.get("results", {}).items()
        if counts.get("enforced", True)
    }
    return {
        "as_of": report["as_of"],
        "status": report["status"],
        "started_ts": report["started_ts"],
        "finished_ts": report["finished_ts"],
        "results": results,
    }


def erasure_payload(record: Mapping[str, Any]) -> dict[str, Any]:
    """An erasure's certificate fields from its record (``ErasureRecord.to_json``): the
    account erased and what was deleted, never the reason (free text an admin wrote)."""
    return {
        "user_id": record["user_id"],
        "as_of": record["finished_ts"],
        "status": record["status"],
        "requested_ts": record["requested_ts"],
        "finished_ts": record["finished_ts"],
        "account": "deactivated_and_erased",
        "media": {
            "deleted": int(record["media_deleted"]),
            "bytes": int(record["media_bytes"]),
            "provider_objects": int(record["provider_objects"]),
            "kept": int(record["media_kept"]),
        },
    }


def sign(certificate: dict[str, Any], server_name: str, key: SigningKey) -> dict[str, Any]:
    """Sign in place (``signatures.<server_name>.<key ID>``) and return it."""
    signed: dict[str, Any] = sign_json(certificate, server_name, key)
    return signed
