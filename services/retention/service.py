"""Retention: on a timer, expire documents on their removal date and remove empty clients.

The same sweep clears what is left over: spent tickets, ended sessions, expired login
challenges, ended activation links, spent recovery codes and old lookups (each service its
own tables), and objects in the store that
no document row names or multipart uploads never completed. Each part is one call; one
that fails is logged in one line and tried again by the next sweep, the others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
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
    auth = RpcProxy("auth")
    identity = Identity()

    @timer(interval=config.get_int("OVERDRACHT_RETENTION_INTERVAL_SECONDS"))
    def sweep_on_timer(self) -> None:
        """Sweep, unless another instance already swept this interval (the sweep runs once)."""
        interval = config.get_int("OVERDRACHT_RETENTION_INTERVAL_SECONDS")
        slot = int(datetime.now(UTC).timestamp() // interval)
        try:
            if not self.documents.claim_sweep(_signed("documents.claim_sweep"), slot):
                log.debug("retention interval %s is swept by another instance", slot)
                return
            result = self._sweep(today())
        except Exception as exc:  # noqa: BLE001 - the next tick tries again
            log.warning("retention sweep failed, retrying next interval: %s", type(exc).__name__)
            return
        log.info("retention sweep removed %s", _summary(result))

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
        """Remove documents due on or before day, then clients left empty, then leftovers.

        Leftovers go by the clock, not by day: --as-of moves removal dates only.
        """
        grace = timedelta(minutes=config.get_int("OVERDRACHT_LEFTOVER_GRACE_MINUTES"))
        older_than = (datetime.now(UTC) - grace).isoformat()
        parts: dict[str, Callable[[], dict]] = {
            "documents": lambda: {
                "documents": self.documents.expire_due(
                    _signed("documents.expire_due"), day.isoformat()
                )
            },
            "clients": lambda: {"clients": self._empty_clients(day)},
            "tickets": lambda: {
                "tickets": self.documents.purge_tickets(
                    _signed("documents.purge_tickets"), older_than
                )
            },
            "sessions": lambda: self.auth.purge_expired(_signed("auth.purge_expired")),
            "searches": lambda: {
                "searches": self.clients.purge_searches(_signed("clients.purge_searches"))
            },
            "leftovers": lambda: self.documents.remove_leftovers(
                _signed("documents.remove_leftovers"), older_than
            ),
        }
        result: dict = {"as_of": day.isoformat()}
        failed = []
        for name, part in parts.items():
            try:
                result.update(part())
            except Exception as exc:  # noqa: BLE001 - the rest goes on, the next sweep retries
                log.warning(
                    "retention %s failed, retrying next sweep: %s", name, type(exc).__name__
                )
                failed.append(name)
        result["failed"] = failed
        return result

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


def _summary(result: dict) -> str:
    """A sweep's counts on one line, and what failed (retried by the next sweep)."""
    counts = ", ".join(f"{v} {k}" for k, v in result.items() if k not in ("as_of", "failed"))
    failed = result.get("failed") or []
    return counts + (f"; failed: {', '.join(failed)}" if failed else "")
