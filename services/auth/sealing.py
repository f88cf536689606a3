"""The authenticator app's secrets, sealed at rest.

Whoever can read auth's database (its runtime login, a dump, a backup) could otherwise make
the codes of every provider who uses the app. Auth keeps each secret encrypted with Tink
AEAD (AES-256-GCM) under OVERDRACHT_AUTH_SEALING_KEYSET, a keyset auth alone holds (not
documents' master keys: neither service's compromise opens the other's secrets). The
provider's id and the column are the associated data, so a sealed secret copied into
another account's row, or from the pending column into the confirmed one, does not open.

The keyset rotates the way Tink keysets do: its primary key seals, every key in it opens.
`overdracht keys auth-new` adds a fresh primary key; a secret is sealed again under the
primary whenever a login uses it, and `overdracht keys auth-reseal` seals every other one
again, after which the old key may leave the keyset.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import sqlalchemy as sa
import tink
from nameko.extensions import DependencyProvider
from sqlalchemy.orm import Session
from tink import aead, json_proto_keyset_format, proto_keyset_format, secret_key_access
from tink.proto import tink_pb2

from overdracht import config

aead.register()

SETTING = "OVERDRACHT_AUTH_SEALING_KEYSET"
_TEMPLATE = aead.aead_key_templates.AES256_GCM
#: the first byte of a Tink ciphertext with a key id prefix, then the key id (4 bytes)
_PREFIX = 5
#: what each column holds (part of the associated data)
CONFIRMED, PENDING = "totp_secret", "totp_pending"


class SealingKeyError(ValueError):
    """The keyset in the configuration is unusable (never says what it holds)."""


class SealBroken(ValueError):
    """A sealed secret does not open: altered, moved to another row, or its key removed."""


class Sealer:
    """The keyset's AEAD: seals with the primary key, opens with any key in the set."""

    def __init__(self, keyset: str) -> None:
        handle = _parse(keyset)
        try:
            self._aead = handle.primitive(aead.Aead)
        except tink.TinkError as exc:
            raise SealingKeyError(f"{SETTING} is not a Tink AEAD keyset") from exc
        self._primary = handle.keyset_info().primary_key_id

    @classmethod
    def from_config(cls) -> Sealer:
        return cls(config.get(SETTING))

    def seal(self, secret: str, provider_id: uuid.UUID | str, column: str) -> str:
        sealed = self._aead.encrypt(secret.encode(), _context(provider_id, column))
        return base64.b64encode(sealed).decode()

    def open(self, sealed: str, provider_id: uuid.UUID | str, column: str) -> str:
        try:
            raw = base64.b64decode(sealed, validate=True)
            return self._aead.decrypt(raw, _context(provider_id, column)).decode()
        except (tink.TinkError, ValueError, TypeError) as exc:
            raise SealBroken(f"the sealed {column} does not open") from exc

    def is_current(self, sealed: str) -> bool:
        """Whether the keyset's primary key sealed this (else seal it again)."""
        try:
            raw = base64.b64decode(sealed, validate=True)
        except ValueError:
            return False
        return raw[1:_PREFIX] == self._primary.to_bytes(4, "big")


def _parse(keyset: str) -> tink.KeysetHandle:
    try:
        return json_proto_keyset_format.parse(keyset, secret_key_access.TOKEN)
    except (tink.TinkError, ValueError, TypeError) as exc:
        raise SealingKeyError(f"{SETTING} is not a Tink keyset in JSON") from exc


def _context(provider_id: uuid.UUID | str, column: str) -> bytes:
    return f"overdracht auth {column} {uuid.UUID(str(provider_id))}".encode()


class Sealing(DependencyProvider):
    """Injects the configured Sealer; auth with an unusable keyset does not start."""

    def setup(self) -> None:
        self.sealer = Sealer.from_config()

    def get_dependency(self, worker_ctx: Any) -> Sealer:
        return self.sealer


def new_keyset(existing: str | None = None) -> str:
    """A keyset with a fresh AES-256-GCM key as its primary, beside existing's keys."""
    keyset = tink_pb2.Keyset()
    if existing:
        keyset.ParseFromString(
            proto_keyset_format.serialize(_parse(existing), secret_key_access.TOKEN)
        )
    ids = {key.key_id for key in keyset.key}
    while True:  # Tink's own fresh key, with an id no key in the set has
        fresh = tink_pb2.Keyset()
        handle = tink.new_keyset_handle(_TEMPLATE)
        fresh.ParseFromString(proto_keyset_format.serialize(handle, secret_key_access.TOKEN))
        if fresh.primary_key_id not in ids:
            break
    keyset.key.extend(fresh.key)
    keyset.primary_key_id = fresh.primary_key_id
    handle = proto_keyset_format.parse(keyset.SerializeToString(), secret_key_access.TOKEN)
    text = json_proto_keyset_format.serialize(handle, secret_key_access.TOKEN)
    return json.dumps(json.loads(text), separators=(",", ":"))  # one line, for a dotenv file


def generate_sealing_keyset() -> dict[str, str]:
    """The setting with a fresh keyset, for a development or test platform."""
    return {SETTING: new_keyset()}


def reseal_all(engine: sa.Engine, sealer: Sealer, batch_size: int = 200) -> dict[str, Any]:
    """Seal every secret not sealed by the primary key again; returns counts.

    In batches, one transaction each, in id order. A row changed meanwhile is left as it
    is (a login sealed it again, or the app was reset); a secret that does not open is
    reported in "failed" and left as it is. Running it again changes nothing more.
    """
    from services.auth.models import Provider

    columns = {CONFIRMED: Provider.totp_secret, PENDING: Provider.totp_pending}
    resealed, current, failed = 0, 0, []
    last: uuid.UUID | None = None
    while True:
        with Session(engine) as session, session.begin():
            query = (
                sa.select(Provider.id, Provider.totp_secret, Provider.totp_pending)
                .where(
                    sa.or_(Provider.totp_secret.is_not(None), Provider.totp_pending.is_not(None))
                )
                .order_by(Provider.id)
                .limit(batch_size)
            )
            if last is not None:
                query = query.where(Provider.id > last)
            rows = session.execute(query).all()
            for provider_id, *values in rows:
                for (name, column), sealed in zip(columns.items(), values, strict=True):
                    if sealed is None:
                        continue
                    if sealer.is_current(sealed):
                        current += 1
                        continue
                    try:
                        again = sealer.seal(
                            sealer.open(sealed, provider_id, name), provider_id, name
                        )
                    except SealBroken:
                        failed.append(f"{provider_id} {name}")
                        continue
                    resealed += session.execute(
                        sa.update(Provider)
                        .where(Provider.id == provider_id, column == sealed)
                        .values({column: again})
                    ).rowcount
        if len(rows) < batch_size:
            break
        last = rows[-1][0]
    return {"already_current": current, "resealed": resealed, "failed": failed}
