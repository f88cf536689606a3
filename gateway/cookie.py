"""Flask's session cookie, sealed (AES-256-GCM) instead of only signed.

The cookie carries, for one page at a time, what a refused form had typed (a BSN, a
phone number) and a search's results (names) on their way from a POST to the GET after
it, and the recovery codes on their way to the one page that shows them. Flask's own
cookie is signed, not encrypted: anyone who sees it (a shared computer's browser
profile, a proxy that logs cookies) could read them. Sealed, the cookie reveals nothing
and is refused if changed. The key is derived from OVERDRACHT_SECRET_KEY with HKDF, so
no new setting is needed; rotating that key ends every cookie, as it did before.
"""

from __future__ import annotations

import base64
import binascii
import os
import struct
import time
from functools import cache
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Flask
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import BadSignature

_NONCE = 12
_CONTEXT = b"overdracht session cookie v1"


class Sealer:
    """dumps/loads as itsdangerous' serializers have them, with AES-GCM underneath."""

    def __init__(self, secret: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_CONTEXT).derive(
            secret.encode()
        )
        self._aead = AESGCM(key)
        self._json = TaggedJSONSerializer()

    def dumps(self, data: dict[str, Any]) -> str:
        nonce = os.urandom(_NONCE)
        plain = struct.pack(">Q", int(time.time())) + self._json.dumps(data).encode()
        sealed = nonce + self._aead.encrypt(nonce, plain, _CONTEXT)
        return base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def loads(self, value: str, max_age: int | None = None) -> dict[str, Any]:
        try:
            padded = value + "=" * (-len(value) % 4)
            sealed = base64.b64decode(padded, altchars=b"-_", validate=True)
            plain = self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], _CONTEXT)
        except (binascii.Error, ValueError, InvalidTag):
            raise BadSignature("session cookie refused") from None
        (sealed_at,) = struct.unpack(">Q", plain[:8])
        if max_age is not None and sealed_at + max_age < time.time():
            raise BadSignature("session cookie expired")
        return self._json.loads(plain[8:].decode())


@cache
def _sealer(secret: str) -> Sealer:
    return Sealer(secret)


class SealedCookieSessionInterface(SecureCookieSessionInterface):
    def get_signing_serializer(self, app: Flask) -> Sealer | None:  # type: ignore[override]
        if not app.secret_key:
            return None
        return _sealer(str(app.secret_key))
