"""How a download ended: the body the WSGI server sends, which reports its outcome once.

The access itself is recorded before any byte leaves (`document.downloaded`, the grant).
This wrapper tells what became of the bytes afterwards: `delivered` when every byte was
handed to the server, `failed` when reading or checking the stored object broke off, and
`interrupted` when the server closed the body before its end (the gateway, or the
browser behind it, went away). A body that never ran to its end is never `delivered`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import eventlet
from nameko.extensions import DependencyProvider

from overdracht import config
from overdracht.contracts import DELIVERED, DELIVERY_FAILED, DELIVERY_INTERRUPTED
from services.documents.crypto import IntegrityError

log = logging.getLogger(__name__)

#: report(outcome, bytes sent, reason or None); called once, must not raise
Report = Callable[[str, int, "str | None"], None]

INTEGRITY_FAILURE = "integrity_failure"
STORE_UNAVAILABLE = "store_unavailable"
KEY_UNAVAILABLE = "key_unavailable"
NOT_FOUND = "not_found"
CONNECTION_CLOSED = "connection_closed"


def in_background(function: Callable[..., None], *args: Any) -> None:
    """Run function in a green thread of its own: the caller waits for none of it."""
    eventlet.spawn_n(function, *args)


class Delivery:
    """A WSGI body iterable over chunks of exactly size bytes, reporting how it ended.

    Deliberately without __len__ (a server would then consume it to count it). The server
    must write each chunk before it asks for the next one, so that running out means every
    byte was written: documents sets eventlet's minimum write size to 0 for that.
    """

    def __init__(self, chunks: Iterable[bytes], size: int, report: Report) -> None:
        self._chunks = iter(chunks)
        self._size = size
        self._report = report
        self.sent = 0
        self.outcome: str | None = None

    def __iter__(self) -> Delivery:
        return self

    def __next__(self) -> bytes:
        if self.outcome is not None:
            raise StopIteration
        try:
            chunk = next(self._chunks)
        except StopIteration:
            if self.sent == self._size:
                self._end(DELIVERED, None)
            else:  # the checks upstream raise first; this stays a guard
                self._end(DELIVERY_FAILED, INTEGRITY_FAILURE)
            raise
        except IntegrityError:
            self._end(DELIVERY_FAILED, INTEGRITY_FAILURE)
            raise
        except Exception:
            self._end(DELIVERY_FAILED, STORE_UNAVAILABLE)
            raise
        self.sent += len(chunk)
        return chunk

    def close(self) -> None:
        """Called by the server when it is done with the body, whatever happened."""
        try:
            if self.outcome is None:
                self._end(DELIVERY_INTERRUPTED, CONNECTION_CLOSED)
        finally:
            close: Any = getattr(self._chunks, "close", None)
            if close is not None:
                close()

    def _end(self, outcome: str, reason: str | None) -> None:
        self.outcome = outcome
        try:
            self._report(outcome, self.sent, reason)
        except Exception as exc:  # noqa: BLE001 - reporting must never break the stream
            log.error("download outcome %s not reported: %s", outcome, type(exc).__name__)


class Budget:
    """Bytes of plaintext the process may hold for downloads at once.

    Taken without waiting: a download that does not fit is served another way (see
    DocumentsService._checked_body), so a slow reader holding its share holds up nobody.
    Green threads switch only at I/O, so taking and giving back need no lock.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> bool:
        if self.held + size > self.limit:
            return False
        self.held += size
        return True

    def give(self, size: int) -> None:
        self.held -= size


class Held:
    """Plaintext held in memory while it is served: its share of the budget is given back
    once, when the server closes the body (whether it was sent whole, cut or never begun)."""

    def __init__(self, chunks: list[bytes], size: int, budget: Budget) -> None:
        self._chunks = iter(chunks)
        self._size = size
        self._budget: Budget | None = budget

    def __iter__(self) -> Held:
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)

    def close(self) -> None:
        self._chunks = iter(())
        if self._budget is not None:
            self._budget.give(self._size)
            self._budget = None


class HeldBytes(DependencyProvider):
    """The process's Budget, OVERDRACHT_DOWNLOAD_HOLD_MB."""

    def setup(self) -> None:
        self.budget = Budget(config.get_int("OVERDRACHT_DOWNLOAD_HOLD_MB") * 1024 * 1024)

    def get_dependency(self, worker_ctx: Any) -> Budget:
        return self.budget
