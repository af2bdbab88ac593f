"""Offline checks of a certificate (``synapse-lux-privacy verify``; docs/proof.md).

- ``check_signature``: the certificate is signed by its server's key, as the server
  publishes its keys at ``/_matrix/key/v2/server`` (``verify_keys``, and
  ``old_verify_keys`` for a certificate issued before that key expired). Any change
  to one byte of the signed content makes it fail; a certificate of another server,
  or signed with another server's key, is refused.
- ``check_export``: the certificate's audit chain head is a row of an audit export
  (the rows ``GET /audit`` returns, with their ``seq``, ``prev_hash`` and ``hash``), and
  every chained row of the export hashes to its ``hash`` and follows the row before it.
"""

from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from signedjson.key import decode_verify_key_base64
from signedjson.sign import SignatureVerifyException, verify_signed_json

from synapse_lux_privacy.store.audit_chain import row_hash


class VerificationFailed(Exception):
    """The certificate does not prove what it says (the message says why)."""


@attrs.frozen
class SignatureProof:
    server_name: str
    key_id: str


@attrs.frozen
class ExportProof:
    head_id: Any  # the row's ``id`` as the export gives it
    rows: int


def check_signature(certificate: Mapping[str, Any], keys: Mapping[str, Any]) -> SignatureProof:
    """The key of ``keys`` (a ``/_matrix/key/v2/server`` answer) that signed the
    certificate; raise VerificationFailed when none of its server's keys did."""
    server = certificate.get("server_name")
    if not isinstance(server, str):
        raise VerificationFailed("the certificate names no server (server_name)")
    if keys.get("server_name") != server:
        raise VerificationFailed(
            f"the keys are those of {keys.get('server_name')!r}, the certificate is {server!r}'s"
        )
    signatures = certificate.get("signatures", {})
    ours = signatures.get(server) if isinstance(signatures, Mapping) else None
    if not isinstance(ours, Mapping) or not ours:
        raise VerificationFailed(f"the certificate carries no signature of {server}")
    issued = certificate.get("issued_ts")
    for key_id in ours:
        key = _published_key(keys, key_id, issued)
        if key is None:
            continue
        try:
            verify_signed_json(dict(certificate), server, key)
        except SignatureVerifyException:
            raise VerificationFailed(
                f"the signature {key_id} of {server} does not match the certificate's"
                " content: it was changed after signing, or signed with another key"
            ) from None
        return SignatureProof(server, key_id)
    raise VerificationFailed(
        f"{server} publishes none of the keys that signed the certificate ({', '.join(ours)})"
    )


def _published_key(keys: Mapping[str, Any], key_id: str, issued: Any) -> Any:
    current = _entry(keys, "verify_keys", key_id)
    old = _entry(keys, "old_verify_keys", key_id)
    if current is None and old is not None:
        expired = old.get("expired_ts")
        if not isinstance(issued, int) or not isinstance(expired, int) or issued >= expired:
            return None  # an expired key vouches only for what was signed before it expired
        current = old
    if current is None:
        return None
    if not isinstance(current.get("key"), str):
        raise VerificationFailed(f"the published key {key_id} has no key")
    try:
        algorithm, _, version = key_id.partition(":")
        return decode_verify_key_base64(algorithm, version, current["key"])
    except Exception:
        raise VerificationFailed(f"the published key {key_id} cannot be read") from None


def _entry(keys: Mapping[str, Any], section: str, key_id: str) -> Mapping[str, Any] | None:
    found = keys.get(section)
    entry = found.get(key_id) if isinstance(found, Mapping) else None
    return entry if isinstance(entry, Mapping) else None


def _chained(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The export's rows that are in the chain, by ``seq``; a malformed one is refused."""
    chained = []
    for row in rows:
        if row.get("seq") is None:
            continue
        if not (
            isinstance(row["seq"], int)
            and isinstance(row.get("prev_hash"), str)
            and isinstance(row.get("hash"), str)
        ):
            raise VerificationFailed(
                f"audit row {row.get('id')!r} of the export has no valid seq, prev_hash, hash"
            )
        chained.append(row)
    return sorted(chained, key=lambda r: int(r["seq"]))


def check_export(certificate: Mapping[str, Any], rows: Iterable[Mapping[str, Any]]) -> ExportProof:
    """The row of the export that is the certificate's chain head; raise
    VerificationFailed if it is missing or any chained row of the export is altered."""
    head = certificate.get("audit_chain")
    if not isinstance(head, Mapping) or not isinstance(head.get("seq"), int):
        raise VerificationFailed("the certificate has no audit chain head (audit_chain)")
    chained = _chained(rows)
    previous: Mapping[str, Any] | None = None
    for row in chained:
        if row_hash(dict(row), row["seq"], row["prev_hash"]) != row["hash"]:
            raise VerificationFailed(
                f"audit row {row.get('id')} (seq {row['seq']}) of the export does not match"
                " its hash: it was changed"
            )
        if previous is not None and previous["seq"] + 1 == row["seq"]:
            if row["prev_hash"] != previous["hash"]:
                raise VerificationFailed(
                    f"audit row {row.get('id')} (seq {row['seq']}) does not follow the row"
                    " before it in the export"
                )
        previous = row
    match = [r for r in chained if r["seq"] == head["seq"]]
    if head["seq"] == 0:
        raise VerificationFailed("the audit chain was empty when the certificate was issued")
    if not match:
        raise VerificationFailed(
            f"the export holds no audit row with seq {head['seq']} (the certificate's chain"
            " head): export the audit up to and past the certificate's issue time"
        )
    if match[0]["hash"] != head.get("hash"):
        raise VerificationFailed(
            f"audit row seq {head['seq']} of the export is not the certificate's chain head:"
            " the audit was rewritten since the certificate was issued"
        )
    return ExportProof(match[0].get("id"), len(chained))
