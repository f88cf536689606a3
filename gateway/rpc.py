"""A pool of standalone nameko RPC proxies: each is single-threaded, so one per request."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kombu.exceptions import KombuError
from nameko.exceptions import RemoteError, RpcTimeout, UnknownService
from nameko.standalone.rpc import ClusterRpcProxy

from overdracht.bus import adapt_nameko, standalone_replies
from overdracht.contracts import OverdrachtError, Unavailable

adapt_nameko()

log = logging.getLogger(__name__)

#: Errors that say the remote side answered: the proxy itself is still good.
_ANSWERED = (OverdrachtError, RemoteError)
#: The bus or the service is away (or did not answer in time): the user reads 503.
_AWAY = (RpcTimeout, UnknownService, KombuError, OSError)


@dataclass
class _Loan:
    holder: ClusterRpcProxy
    proxy: Any
    broken: bool = False


class RpcPool:
    """Proxies kept between requests: each is a broker connection with a reply queue, so
    making one per request would cost the broker and the gateway more than the call.

    A request holds one proxy at a time. A call made while the arguments of another are
    worked out (`rpc.documents.list(principal(), …)`, where principal() asks auth) uses
    the proxy the request already holds: the calls are one after the other on one thread.
    """

    def __init__(self, nameko_config: dict[str, Any], size: int, timeout: float) -> None:
        self._config = nameko_config
        self._timeout = timeout
        self._idle: queue.LifoQueue[tuple[ClusterRpcProxy, Any]] = queue.LifoQueue(maxsize=size)
        self._held = threading.local()

    @contextmanager
    def cluster(self) -> Iterator[Any]:
        """Borrow a proxy; one that failed for transport reasons is dropped, not reused.

        Whatever failed on the way (no broker, a connection cut, no answer in time)
        comes out as Unavailable, like any other outage the user cannot help.
        """
        loan: _Loan | None = getattr(self._held, "loan", None)
        if loan is not None:
            with self._calling(loan):
                yield loan.proxy
            return
        loan = self._lend()
        self._held.loan = loan
        try:
            with self._calling(loan):
                yield loan.proxy
        finally:
            self._held.loan = None
            if loan.broken:
                _stop(loan.holder)
            else:
                try:
                    self._idle.put_nowait((loan.holder, loan.proxy))
                except queue.Full:
                    _stop(loan.holder)

    @staticmethod
    @contextmanager
    def _calling(loan: _Loan) -> Iterator[None]:
        """Calls on a loaned proxy; anything but the remote side's answer breaks it."""
        try:
            yield
        except _ANSWERED:
            raise
        except _AWAY as exc:
            loan.broken = True
            log.error("service unavailable: %s", type(exc).__name__)
            raise Unavailable() from exc
        except BaseException:
            loan.broken = True
            raise

    def _lend(self) -> _Loan:
        try:
            holder, proxy = self._idle.get_nowait()
        except queue.Empty:
            holder = ClusterRpcProxy(
                self._config,
                timeout=self._timeout,
                reply_listener_cls=standalone_replies("gateway"),
            )
            try:
                proxy = holder.start()
            except _AWAY as exc:
                log.error("service unavailable: %s", type(exc).__name__)
                _stop(holder)
                raise Unavailable() from exc
        return _Loan(holder, proxy)

    def close(self) -> None:
        while True:
            try:
                holder, _ = self._idle.get_nowait()
            except queue.Empty:
                return
            _stop(holder)


def _stop(holder: ClusterRpcProxy) -> None:
    try:
        holder.stop()
    except Exception as exc:  # noqa: BLE001 - a broken proxy may fail to close; drop it anyway
        log.debug("closing a broken rpc proxy: %s", type(exc).__name__)
