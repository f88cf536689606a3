"""Verifying the principal auth signed: every service does it itself."""

from __future__ import annotations

from typing import Any

from nameko.extensions import DependencyProvider

from overdracht import config
from overdracht.contracts import Principal, verify_principal, verify_system_token


class Verifier:
    def __init__(self, key: Any, system_key: Any) -> None:
        self._key = key
        self._system_key = system_key

    def __call__(self, token: Any) -> Principal:
        """Return the principal or raise Unauthenticated."""
        return verify_principal(token, self._key)

    def system(self, token: Any) -> str:
        """Return the system service that signed token, or raise Unauthenticated."""
        return verify_system_token(token, self._system_key)


class Identity(DependencyProvider):
    """Injects a callable that turns a signed principal into a Principal."""

    def setup(self) -> None:
        self.verifier = Verifier(config.principal_public_key(), config.system_public_key())

    def get_dependency(self, worker_ctx: Any) -> Verifier:
        return self.verifier
