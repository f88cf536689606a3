"""Verifying who calls: the principal auth signed, or a caller's own signed token.

Every service does this itself, first thing in every RPC method; so that is also where a
request whose caller stopped waiting (it waited for a free worker) is dropped. A call for
a provider carries auth's principal; a call for nobody carries a token signed with its
caller's own key: the gateway (logging in, before there is a principal), retention
(removals), an operator (the CLI) or clients (the new-document notice).
"""

from __future__ import annotations

import time
from typing import Any

from nameko.extensions import DependencyProvider

from overdracht import config
from overdracht.bus import deadline_of
from overdracht.contracts import (
    DeadlinePassed,
    Principal,
    Unauthenticated,
    verify_principal,
    verify_system_token,
)

#: Callers that sign their own calls, each with a key only it holds.
GATEWAY = "gateway"
RETENTION = "retention"
CLIENTS = "clients"
OPERATOR = "operator"


class Verifier:
    def __init__(
        self,
        principal_key: Any,
        caller_keys: dict[str, Any],
        call: str | None = None,
        deadline: float | None = None,
    ) -> None:
        self._key = principal_key
        self._caller_keys = caller_keys
        self._call = call
        self._deadline = deadline

    def bound(self, call: str, deadline: float | None = None) -> Verifier:
        """The same keys, for one request to one entrypoint (`service.method`)."""
        return Verifier(self._key, self._caller_keys, call, deadline)

    def _in_time(self) -> None:
        """Refuse the request if its caller stopped waiting (checked once, at the start)."""
        if self._deadline is not None:
            deadline, self._deadline = self._deadline, None
            if deadline <= time.time():
                raise DeadlinePassed()

    def __call__(self, token: Any) -> Principal:
        """Return the principal or raise Unauthenticated."""
        self._in_time()
        return verify_principal(token, self._key)

    def caller(self, token: Any, expected: str) -> str:
        """Check that the expected caller signed token for exactly this call, or raise.

        A token is good for the one method it names: one taken from the bus cannot be
        spent on another (a sweep's token on delete_clients).
        """
        self._in_time()
        if verify_system_token(token, self._caller_keys[expected], self._call) != expected:
            raise Unauthenticated("geen geldige systeemidentiteit")
        return expected

    def system(self, token: Any) -> str:
        """Return the system service that signed token (retention), or raise Unauthenticated."""
        return self.caller(token, RETENTION)


class Identity(DependencyProvider):
    """Injects a Verifier: call it with a principal, or ask `.caller(token, name)`."""

    def setup(self) -> None:
        self.verifier = Verifier(
            config.public_key("principal"),
            {
                RETENTION: config.public_key("system"),
                GATEWAY: config.public_key(GATEWAY),
                OPERATOR: config.public_key(OPERATOR),
                CLIENTS: config.public_key(CLIENTS),
            },
        )

    def get_dependency(self, worker_ctx: Any) -> Verifier:
        return self.verifier.bound(
            f"{worker_ctx.service_name}.{worker_ctx.entrypoint.method_name}",
            deadline_of(worker_ctx.context_data),
        )
