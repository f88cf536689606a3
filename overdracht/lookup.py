"""Finding a client in the audit log by birth date plus BSN or phone, also after she is gone.

Clients keeps BSN and phone only as hashes keyed with its own pepper, and forgets the
client with her last document; the audit log keeps its records for years. So when a
client is added, clients seals her identifiers to audit's public key (Tink hybrid
encryption, HPKE with X25519 and AES-256-GCM) inside the client.created event. Only audit
holds the private key: it opens them, keeps nothing of them but hashes keyed with a
pepper of its own (OVERDRACHT_AUDIT_PEPPER), and stores the event without the sealed
part. The broker, clients and a copy of the event see ciphertext only; audit's database
holds hashes that are worthless without audit's pepper.
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import date
from functools import cache
from typing import Any

import tink
from tink import hybrid, json_proto_keyset_format, secret_key_access

from overdracht import config
from overdracht.identifiers import keyed_hash

hybrid.register()

_TEMPLATE = hybrid.hybrid_key_templates.DHKEM_X25519_HKDF_SHA256_HKDF_SHA256_AES_256_GCM
_CONTEXT = b"overdracht audit lookup v1"
#: the field of client.created's detail that carries them
FIELD = "audit_lookup"


class SealBroken(ValueError):
    """The sealed identifiers could not be opened (another key, or altered)."""


@cache
def _encrypt(keyset: str) -> Any:
    handle = json_proto_keyset_format.parse_without_secret(keyset)
    return handle.primitive(hybrid.HybridEncrypt)


@cache
def _decrypt(keyset: str) -> Any:
    handle = json_proto_keyset_format.parse(keyset, secret_key_access.TOKEN)
    return handle.primitive(hybrid.HybridDecrypt)


def seal(birth_date: date, bsn: str, phone: str) -> str:
    """Her identifiers, readable by audit alone (clients, when she is added)."""
    plain = json.dumps({"birth_date": birth_date.isoformat(), "bsn": bsn, "phone": phone})
    sealed = _encrypt(config.get("OVERDRACHT_AUDIT_LOOKUP_PUBLIC_KEYSET")).encrypt(
        plain.encode(), _CONTEXT
    )
    return base64.b64encode(sealed).decode()


def unseal(sealed: Any) -> dict[str, str]:
    """What seal sealed (audit); SealBroken if it cannot be opened."""
    try:
        raw = base64.b64decode(str(sealed), validate=True)
        plain = _decrypt(config.get("OVERDRACHT_AUDIT_LOOKUP_PRIVATE_KEYSET")).decrypt(
            raw, _CONTEXT
        )
        found = json.loads(plain)
        return {k: str(found[k]) for k in ("birth_date", "bsn", "phone")}
    except (tink.TinkError, ValueError, TypeError, KeyError) as exc:
        raise SealBroken("sealed identifiers do not open") from exc


def audit_hash(kind: str, value: str) -> str:
    """Audit's own keyed hash of a BSN or phone number (normalised as clients has them)."""
    return keyed_hash(bytes.fromhex(config.get("OVERDRACHT_AUDIT_PEPPER")), kind, value)


def generate_lookup_keys() -> dict[str, str]:
    """Settings with a fresh key pair and pepper, for a development or test platform."""

    def one_line(text: str) -> str:  # fit for a dotenv file
        return json.dumps(json.loads(text), separators=(",", ":"))

    handle = tink.new_keyset_handle(_TEMPLATE)
    public = handle.public_keyset_handle()
    return {
        "OVERDRACHT_AUDIT_LOOKUP_PRIVATE_KEYSET": one_line(
            json_proto_keyset_format.serialize(handle, secret_key_access.TOKEN)
        ),
        "OVERDRACHT_AUDIT_LOOKUP_PUBLIC_KEYSET": one_line(
            json_proto_keyset_format.serialize_without_secret(public)
        ),
        "OVERDRACHT_AUDIT_PEPPER": secrets.token_hex(32),
    }
