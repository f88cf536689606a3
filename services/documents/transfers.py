"""documents' HTTP port for file bodies: workers of its own, and a read timeout.

nameko's @http entrypoints run their workers in the container's pool, the same
`max_workers` its @rpc entrypoints run in: ten slow uploads held every worker, and every
documents RPC (lists, tickets, removals) waited 30 s behind them. `transfer` is @http on
a pool of its own, OVERDRACHT_TRANSFER_WORKERS, with the container's dependencies (the
database, the store, the keys) injected exactly as for any worker; RPC keeps all of
`max_workers`. When every transfer worker is busy, a new transfer waits for one; an RPC
never does.

Every connection also has a read timeout: a body that stops coming (the gateway hung)
fails its read, the upload is aborted and nothing is kept. The gateway paces its own
senders (gateway/worker.py) and passes a body on in pieces of 256 KiB, so a sender that
keeps its pace can make documents wait at most OVERDRACHT_REQUEST_READ_TIMEOUT plus a
piece's worth at OVERDRACHT_REQUEST_MIN_RATE: that is documents' timeout.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from eventlet import GreenPool
from eventlet.event import Event
from nameko.containers import WorkerContext
from nameko.exceptions import ContainerBeingKilled
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import HttpOnlyProtocol, WebServer

from overdracht import config

#: what the gateway gathers from its sender before passing it on (gateway/files.py CHUNK)
GATEWAY_PIECE = 256 * 1024


def read_timeout() -> float:
    """The longest documents waits for the next bytes of a request (see above)."""
    rate = float(config.get("OVERDRACHT_REQUEST_MIN_RATE"))
    return float(config.get("OVERDRACHT_REQUEST_READ_TIMEOUT")) + GATEWAY_PIECE / rate


class TransferServer(WebServer):
    """nameko's web server, with a worker pool of its own and a read timeout."""

    def setup(self) -> None:
        super().setup()
        self.pool = GreenPool(config.get_int("OVERDRACHT_TRANSFER_WORKERS"))

    def get_wsgi_server(
        self, sock: Any, wsgi_app: Any, protocol: Any = HttpOnlyProtocol, debug: bool = False
    ) -> Any:
        server = super().get_wsgi_server(sock, wsgi_app, protocol, debug)
        server.socket_timeout = read_timeout()  # every read and write on a connection
        return server

    def spawn_worker(
        self, entrypoint: Any, args: tuple, kwargs: dict, context_data: dict, handle_result: Any
    ) -> WorkerContext:
        """ServiceContainer.spawn_worker (nameko 2.14), in this pool instead of the container's.

        The worker is the container's own in every other way: dependencies injected and
        torn down, and killed with the container.
        """
        container = self.container
        if container._being_killed:  # noqa: SLF001 - see the docstring
            raise ContainerBeingKilled()
        worker_ctx = WorkerContext(
            container, container.service_cls(), entrypoint, args, kwargs, data=context_data
        )
        thread = self.pool.spawn(container._run_worker, worker_ctx, handle_result)  # noqa: SLF001
        thread.link(container._handle_worker_thread_exited, worker_ctx)  # noqa: SLF001
        container._worker_threads[worker_ctx] = thread  # noqa: SLF001
        return worker_ctx


class TransferHandler(HttpRequestHandler):
    """nameko's @http, its workers in the TransferServer's pool."""

    server = TransferServer()

    def handle_request(self, request: Any) -> Any:
        # HttpRequestHandler.handle_request, with the server's spawn_worker
        request.shallow = False
        try:
            context_data = self.server.context_data_from_headers(request)
            args, kwargs = self.get_entrypoint_parameters(request)
            self.check_signature(args, kwargs)
            done = Event()
            self.server.spawn_worker(
                self, args, kwargs, context_data, partial(self.handle_result, done)
            )
            return self.response_from_result(done.wait())
        except Exception as exc:  # noqa: BLE001 - as nameko: the error becomes the answer
            return self.response_from_exception(exc)

    def stop(self) -> None:
        """Stop taking requests, then let the transfers under way finish (as nameko does
        for its own workers before it stops the dependencies they use)."""
        super().stop()
        self.server.pool.waitall()


transfer = TransferHandler.decorator
