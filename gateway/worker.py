"""The gateway's gunicorn worker: gthread, with slow senders kept off its threads.

gunicorn's gthread worker gives a connection a thread as soon as its first byte is
there, and the thread then reads the request head and body at whatever pace the sender
likes: six stalled uploads, or ten connections trickling their headers, held every
thread and the gateway stopped answering. gunicorn 27 only spares its threads a
connection that sends nothing at all. This worker changes three things:

- The worker's event loop, which holds no thread, gathers each request's head, and its
  body when that is small (every body but an upload's), before a thread sees it.
- A request whose body is still to come when it gets its thread (an upload) may take at
  most `threads - reserve` of them; past that it is answered 503 at once, so the reserve
  always serves everyone else.
- Every read of a request, in the loop and in a thread, is paced (`Pace`): a sender that
  pauses longer than OVERDRACHT_REQUEST_READ_TIMEOUT, or sends slower than
  OVERDRACHT_REQUEST_MIN_RATE on average, is cut off. In a thread the read then raises
  `TooSlow`, the application answers (the gateway ends its stream to documents, which
  keeps nothing), and the connection is closed.
- An answer given before the request's body was read (a refused upload, a body over the
  cap) says `Connection: close`, and the connection closes after it. gunicorn would
  announce keep-alive, then close anyway when the unread rest is more than it drains
  (64 KiB): a client that sent its next request meanwhile lost it unanswered.

HTTP/1.1 without TLS only: TLS and HTTP/2 end at the reverse proxy.
"""

from __future__ import annotations

import contextlib
import re
import selectors
import time
from functools import partial
from typing import Any

from gunicorn import http
from gunicorn.http.body import ChunkedReader, LengthReader
from gunicorn.workers.gthread import ThreadWorker

from overdracht import config

#: a body up to this size is gathered whole before a thread sees it (the app's cap on
#: every body but an upload's, gateway/__init__.py MAX_CONTENT_LENGTH)
SMALL_BODY = 64 * 1024
#: a head that has not ended by this size goes to a thread, whose parser refuses it
MAX_HEAD = 64 * 1024
RECV = 64 * 1024
#: what a thread reads of a request body at once: the application reads an upload in
#: pieces of this size (gateway/files.py), and one recv never takes more. gunicorn's own
#: recv for a body of known length is up to 1 MiB, and every read of less than it holds
#: copies the rest of its buffer again: reading 5 MiB in pieces of 256 KiB cost 17.7 ms
#: of CPU that way, 4.2 ms with recv capped at the piece.
BODY_PIECE = 256 * 1024
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)[ \t]*\r\n")
BUSY = (
    b'{"error": {"code": "busy", "message": "Er worden nu te veel documenten tegelijk'
    b' verzonden. Probeer het over een minuut opnieuw."}}'
)
BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 60\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(BUSY), BUSY)
)


class TooSlow(TimeoutError):
    """The sender paused too long or sent too slowly: its request is cut off.

    A TimeoutError, so that gunicorn, draining the rest of the body after the answer,
    closes the connection instead of keeping it alive.
    """


class Pace:
    """How much longer a request's sender may keep us waiting.

    It starts with `read_timeout` seconds in reserve; waiting for the sender uses the
    reserve up, every byte it sends earns 1/`min_rate` s back, up to the full reserve.
    An empty reserve cuts the request off: a pause longer than read_timeout does, and so
    does sending slower than min_rate for long enough (the reserve is the slack).
    """

    def __init__(self, read_timeout: float, min_rate: float) -> None:
        self.read_timeout = read_timeout
        self.min_rate = min_rate
        self.reserve = read_timeout

    def spend(self, waited: float, received: int) -> None:
        self.reserve = min(self.read_timeout, self.reserve - waited + received / self.min_rate)

    @property
    def exhausted(self) -> bool:
        return self.reserve <= 0

    @classmethod
    def configured(cls) -> Pace:
        return cls(
            float(config.get("OVERDRACHT_REQUEST_READ_TIMEOUT")),
            float(config.get("OVERDRACHT_REQUEST_MIN_RATE")),
        )


def gathered(data: bytes) -> bool | None:
    """Whether a thread may take the request that data begins with.

    None: not yet (its head, or its small body, is still incomplete). False: it is all
    here. True: its body is still to come (it is large, chunked or waits for 100
    Continue), or its head is too long to wait for.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return True if len(data) >= MAX_HEAD else None
    head = data[: end + 2].lower()
    if b"\r\ntransfer-encoding:" in head or b"\r\nexpect:" in head:
        return True
    length = _CONTENT_LENGTH.search(head)
    size = int(length.group(1)) if length else 0
    if size > SMALL_BODY:
        return True
    return None if len(data) < end + 4 + size else False


class PacedReads:
    """The connection's socket as the request parser reads it: each recv within the pace.

    Only reads go through here; the response is written to the socket itself, which
    stays blocking. gunicorn sets a timeout of its own while it drains a body after the
    answer: the sooner of the two applies.
    """

    def __init__(self, sock: Any, pace: Pace) -> None:
        self.sock = sock
        self.pace = pace
        self._timeout: float | None = None

    def gettimeout(self) -> float | None:
        return self._timeout

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout

    def recv(self, size: int) -> bytes:
        if self.pace.exhausted:
            raise TooSlow("the sender was too slow")
        limit = self.pace.reserve
        ours = self._timeout is None or limit <= self._timeout
        started = time.monotonic()
        self.sock.settimeout(limit if ours else self._timeout)
        try:
            data = self.sock.recv(size)
        except TimeoutError:
            self.pace.spend(time.monotonic() - started, 0)
            if ours:
                self.pace.reserve = 0
                raise TooSlow("the sender paused too long") from None
            raise
        finally:
            self.sock.settimeout(None)
        self.pace.spend(time.monotonic() - started, len(data))
        return data


def body_parser(cfg: Any, reads: Any, client: Any) -> Any:
    """gunicorn's request parser on a connection, taking a body in at most BODY_PIECE."""
    parser = http.get_parser(cfg, reads, client)
    parser.unreader.max_body_chunk = BODY_PIECE
    return parser


def body_unread(body: Any) -> bool:
    """Whether part of the request body (gunicorn's wsgi.input) is still unread."""
    reader = getattr(body, "reader", None)
    if isinstance(reader, LengthReader):
        return reader.length > 0
    if isinstance(reader, ChunkedReader):
        return reader.parser is not None
    return False


def closing_unread(app: Any) -> Any:
    """The WSGI app, whose answers close the connection when they leave a body unread.

    The application cannot say so itself: gunicorn drops its hop-by-hop headers. Its
    start_response is gunicorn's Response's, which can be told to close.
    """

    def wrapped(environ: dict[str, Any], start_response: Any) -> Any:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if body_unread(environ.get("wsgi.input")):
                start_response.__self__.force_close()
            return start_response(status, headers, exc_info)

        return app(environ, start)

    return wrapped


class GatewayWorker(ThreadWorker):
    """gthread, with heads and small bodies gathered by the loop and every read paced."""

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        super().check_config(cfg, log)
        if cfg.is_ssl or cfg.protocol != "http" or cfg.http2_cleartext != "off":
            raise RuntimeError("GatewayWorker serves HTTP/1.1 without TLS only")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reserve_threads = max(2, self.cfg.threads // 4)
        self.max_streams = max(1, self.cfg.threads - self.reserve_threads)
        self.streams = 0  # threads reading a body that is still to come
        self.gathering: set[Any] = set()
        configured = Pace.configured()
        self.pace_settings = (configured.read_timeout, configured.min_rate)

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.wsgi = closing_unread(self.wsgi)

    # --- the loop: gather a request, then hand it to a thread ---------------------------

    def enqueue_req(self, conn: Any) -> None:
        """A connection has (or will have) a new request: gather it first."""
        conn.pace = Pace(*self.pace_settings)
        conn.last_read = time.monotonic()
        conn.gathered = conn.parser.unreader.take_buffered() if conn.parser else b""
        if self._dispatch_if_gathered(conn):
            return
        conn.sock.setblocking(False)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))
        self.gathering.add(conn)

    def _on_readable(self, conn: Any, _sock: Any) -> None:
        try:
            data = conn.sock.recv(RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        now = time.monotonic()
        conn.pace.spend(now - conn.last_read, len(data))
        conn.last_read = now
        if not data or conn.pace.exhausted:
            self._drop(conn)
            return
        conn.gathered += data
        if gathered(conn.gathered) is not None:
            self._stop_gathering(conn)
            self._dispatch_if_gathered(conn)

    def _dispatch_if_gathered(self, conn: Any) -> bool:
        body_to_come = gathered(conn.gathered)
        if body_to_come is None:
            return False
        if body_to_come:
            if self.streams >= self.max_streams:
                self._refuse(conn)
                return True
            self.streams += 1
            conn.streaming = True
        if conn.parser is None:
            conn.reads = PacedReads(conn.sock, conn.pace)
            conn.parser = body_parser(self.cfg, conn.reads, conn.client)
        else:
            conn.reads.pace = conn.pace
        conn.parser.unreader.unread(conn.gathered)
        conn.gathered = b""
        conn.data_ready = True  # no thread waits for a first byte: it is here
        super().enqueue_req(conn)
        return True

    def finish_request(self, conn: Any, fs: Any) -> None:
        if getattr(conn, "streaming", False):
            conn.streaming = False
            self.streams -= 1
        super().finish_request(conn, fs)

    def murder_pending(self) -> None:
        """Also close the connections whose request stopped coming, or comes too slowly."""
        super().murder_pending()
        now = time.monotonic()
        for conn in [c for c in self.gathering if now - c.last_read >= c.pace.reserve]:
            self._drop(conn)

    # --- closing ------------------------------------------------------------------------

    def _stop_gathering(self, conn: Any) -> None:
        self.gathering.discard(conn)
        # not registered (any more), or its socket already closed: nothing left to undo
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)

    def _drop(self, conn: Any) -> None:
        self._stop_gathering(conn)
        self.nr_conns -= 1
        conn.close()

    def _refuse(self, conn: Any) -> None:
        """Every thread for bodies is taken: say so (503), and close."""
        self.log.warning("upload refused: all %d threads for request bodies busy", self.streams)
        # best effort: a sender that is gone, or whose buffer is full, is closed unanswered
        with contextlib.suppress(OSError):
            conn.sock.setblocking(False)
            conn.sock.send(BUSY_RESPONSE)
        self.nr_conns -= 1
        conn.close()
