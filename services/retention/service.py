"""Retention: on a timer, expire documents on their removal date and remove empty clients."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta

from nameko.timer import timer

from overdracht import config
from overdracht.bus import RpcProxy
from overdracht.contracts import InvalidInput, sign_system_token
from overdracht.entrypoints import rpc
from overdracht.identity import OPERATOR, Identity
from overdracht.timezone import AMSTERDAM, today

log = logging.getLogger(__name__)

PAGE = 500
#: a removal call's token is signed just before the call and good for that method only
SYSTEM_TOKEN_TTL = timedelta(seconds=60)


def _signed(call: str) -> str:
    """retention's signature for one call: these delete data, a bare bus message must not."""
    return sign_system_token("retention", config.private_key("system"), SYSTEM_TOKEN_TTL, call)


class RetentionService:
    name = "retention"

    documents = RpcProxy("documents")
    clients = RpcProxy("clients")
    identity = Identity()

    @timer(interval=config.get_int("OVERDRACHT_RETENTION_INTERVAL_SECONDS"))
    def sweep_on_timer(self) -> None:
        try:
            result = self._sweep(today())
        except Exception as exc:  # noqa: BLE001 - the next tick tries again
            log.warning("retention sweep failed, retrying next interval: %s", type(exc).__name__)
            return
        log.info("retention sweep removed %(documents)s documents, %(clients)s clients", result)

    @rpc
    def sweep(self, operator: str, as_of: str | None = None) -> dict:
        """An operator's sweep (`overdracht retention sweep`), as of a day (default today)."""
        self.identity.caller(operator, OPERATOR)
        try:
            day = date.fromisoformat(as_of) if as_of else today()
        except (TypeError, ValueError) as exc:
            raise InvalidInput("Ongeldige datum (JJJJ-MM-DD).") from exc
        if day > today() and config.is_production():
            raise InvalidInput("--as-of in de toekomst is in productie niet toegestaan.")
        return self._sweep(day)

    def _sweep(self, day: date) -> dict:
        """Remove documents due on or before day, then clients left empty."""
        documents = self.documents.expire_due(_signed("documents.expire_due"), day.isoformat())
        clients = self._empty_clients(day)
        return {"as_of": day.isoformat(), "documents": documents, "clients": clients}

    def _empty_clients(self, day: date) -> int:
        """Clients without documents, past a grace period so a new client can get her first."""
        grace = timedelta(days=config.get_int("OVERDRACHT_CLIENT_GRACE_DAYS"))
        start_of_day = datetime.combine(day, time(0), tzinfo=AMSTERDAM).astimezone(UTC)
        created_before = (start_of_day - grace).isoformat()
        removed, after = 0, None
        while True:
            page = self.clients.deletion_candidates(
                _signed("clients.deletion_candidates"), created_before, after, PAGE
            )
            if not page:
                return removed
            held = set(
                self.documents.clients_with_documents(
                    _signed("documents.clients_with_documents"), page
                )
            )
            empty = [c for c in page if c not in held]
            if empty:
                removed += self.clients.delete_clients(
                    _signed("clients.delete_clients"), empty, "no_documents"
                )
            after = page[-1]
