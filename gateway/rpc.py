"""A small pool of standalone nameko RPC proxies: each is single-threaded, so one per request."""

from __future__ import annotations

import logging
import queue
from collections.abc import Iterator
from contextlib import contextmanager
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


class RpcPool:
    def __init__(self, nameko_config: dict[str, Any], size: int, timeout: float) -> None:
        self._config = nameko_config
        self._timeout = timeout
        self._idle: queue.LifoQueue[tuple[ClusterRpcProxy, Any]] = queue.LifoQueue(maxsize=size)

    @contextmanager
    def cluster(self) -> Iterator[Any]:
        """Borrow a proxy; one that failed for transport reasons is dropped, not reused.

        Whatever failed on the way (no broker, a connection cut, no answer in time)
        comes out as Unavailable, like any other outage the user cannot help.
        """
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
        healthy = False
        try:
            yield proxy
            healthy = True
        except _ANSWERED:
            healthy = True
            raise
        except _AWAY as exc:
            log.error("service unavailable: %s", type(exc).__name__)
            raise Unavailable() from exc
        finally:
            if healthy:
                try:
                    self._idle.put_nowait((holder, proxy))
                except queue.Full:
                    _stop(holder)
            else:
                _stop(holder)

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
