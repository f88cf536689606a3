"""The gateway's gunicorn worker keeps slow senders off its threads and cuts them off.

The pieces on their own (the pace, when a request is gathered, paced reads), then the
worker itself under gunicorn, serving the small WSGI app below to trickling sockets.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gunicorn.config import Config

from gateway.worker import (
    BODY_PIECE,
    MAX_HEAD,
    SMALL_BODY,
    Pace,
    PacedReads,
    TooSlow,
    body_parser,
    gathered,
)

ROOT = Path(__file__).resolve().parents[2]

# --- the pace -------------------------------------------------------------------------


def test_a_pause_longer_than_the_read_timeout_empties_the_reserve():
    pace = Pace(read_timeout=10, min_rate=1000)
    pace.spend(9.9, 0)
    assert not pace.exhausted
    pace.spend(0.2, 0)
    assert pace.exhausted


def test_sending_slower_than_the_minimum_rate_empties_it_in_time():
    pace = Pace(read_timeout=10, min_rate=1000)
    waits = 0
    while not pace.exhausted:
        pace.spend(2, 1)  # a byte every two seconds: each pause alone is allowed
        waits += 1
    assert waits == 6  # 10 s of slack, used up at nearly 2 s per byte


def test_sending_at_the_minimum_rate_goes_on_for_ever_and_earns_no_more_than_the_timeout():
    pace = Pace(read_timeout=10, min_rate=1000)
    for _ in range(10_000):
        pace.spend(1, 1000)
    assert pace.reserve == 10
    pace.spend(0, 10**9)  # a fast start buys no long pause later
    assert pace.reserve == 10


# --- when a request is gathered ------------------------------------------------------


def _head(*lines: str) -> bytes:
    return (
        "\r\n".join(["POST /api/v1/clients/search HTTP/1.1", "Host: x", *lines]) + "\r\n\r\n"
    ).encode()


def test_a_head_is_gathered_until_it_ends():
    head = _head()
    assert gathered(head[:-1]) is None
    assert gathered(head) is False


def test_a_small_body_is_gathered_whole():
    head = _head("Content-Type: application/json", "content-length: 10")
    assert gathered(head + b"123456789") is None
    assert gathered(head + b"1234567890") is False


def test_a_large_chunked_or_expecting_body_goes_to_a_thread_with_its_head():
    assert gathered(_head(f"Content-Length: {SMALL_BODY + 1}")) is True
    assert gathered(_head("Transfer-Encoding: chunked")) is True
    assert gathered(_head("Content-Length: 10", "Expect: 100-continue")) is True


def test_a_head_that_does_not_end_goes_to_the_parser_which_refuses_it():
    assert gathered(b"GET / HTTP/1.1\r\nX-A: " + b"a" * MAX_HEAD) is True


def test_a_content_length_in_the_request_line_is_no_header():
    assert gathered(b"GET /content-length:99999999 HTTP/1.1\r\nHost: x\r\n\r\n") is False


# --- paced reads ----------------------------------------------------------------------


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        yield ours, theirs


def test_a_read_that_waits_longer_than_the_reserve_is_cut_off(pair):
    ours, theirs = pair
    reads = PacedReads(ours, Pace(read_timeout=0.3, min_rate=1000))
    theirs.sendall(b"abc")
    assert reads.recv(10) == b"abc"
    started = time.monotonic()
    with pytest.raises(TooSlow):
        reads.recv(10)
    assert 0.25 < time.monotonic() - started < 1
    theirs.sendall(b"more")
    with pytest.raises(TooSlow):  # once cut off, for good
        reads.recv(10)
    assert ours.gettimeout() is None  # the answer is still written blocking


def test_a_trickle_is_cut_off_although_no_pause_is_too_long(pair):
    ours, theirs = pair
    reads = PacedReads(ours, Pace(read_timeout=0.5, min_rate=1000))

    def trickle() -> None:
        for _ in range(20):
            time.sleep(0.1)
            try:
                theirs.send(b"x")
            except OSError:
                return

    sender = threading.Thread(target=trickle)
    sender.start()
    received = 0
    with pytest.raises(TooSlow):
        while received < 20:
            received += len(reads.recv(10))
    sender.join()
    assert 3 <= received < 10


def test_gunicorns_own_drain_timeout_applies_and_is_no_cut(pair):
    ours, _ = pair
    reads = PacedReads(ours, Pace(read_timeout=5, min_rate=1000))
    reads.settimeout(0.1)
    with pytest.raises(TimeoutError) as raised:
        reads.recv(10)
    assert not isinstance(raised.value, TooSlow)
    assert not reads.pace.exhausted


class _Recorded(PacedReads):
    """Paced reads that note how much each recv asked for."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock, Pace(read_timeout=5, min_rate=1000))
        self.asked: list[int] = []

    def recv(self, size: int) -> bytes:
        self.asked.append(size)
        return super().recv(size)


def test_a_body_is_taken_from_the_socket_a_piece_at_a_time_at_most(pair):
    """A recv larger than the piece the application reads leaves a rest that gunicorn
    copies again on every read; the parser the worker makes never asks for more."""
    ours, theirs = pair
    body = os.urandom(3 * 1024 * 1024 + 5)
    head = b"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
    sender = threading.Thread(target=theirs.sendall, args=(head + body,))
    sender.start()
    reads = _Recorded(ours)
    request = next(body_parser(Config(), reads, ("127.0.0.1", 1)))
    received = b"".join(iter(lambda: request.body.read(BODY_PIECE), b""))
    sender.join()
    assert received == body
    assert max(reads.asked) <= BODY_PIECE, max(reads.asked)
    assert len(reads.asked) >= len(body) // BODY_PIECE


# --- the worker under gunicorn --------------------------------------------------------


def app(environ, start_response):
    """/fast answers at once; POST reads the whole body (and says if it was cut off),
    but POST /refuse answers 413 without reading it."""
    if environ["PATH_INFO"] == "/refuse":
        return _answer(start_response, "413 Content Too Large", b"refused")
    if environ["REQUEST_METHOD"] == "POST":
        received = 0
        try:
            while chunk := environ["wsgi.input"].read(64 * 1024):
                received += len(chunk)
        except TooSlow:
            return _answer(start_response, "408 Request Timeout", b"too slow after %d" % received)
        return _answer(start_response, "200 OK", b"received %d" % received)
    return _answer(start_response, "200 OK", b"ok")


def _answer(start_response, status: str, body: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[int]:
    """gunicorn with GatewayWorker: one process, four threads (two for bodies), 1 s timeout."""
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    var = tmp_path_factory.mktemp("worker")
    env = {
        **os.environ,
        "OVERDRACHT_ENV_FILE": str(var / "no-env-file"),
        "OVERDRACHT_REQUEST_READ_TIMEOUT": "1",
        "OVERDRACHT_REQUEST_MIN_RATE": "1000",
    }
    log = open(var / "gunicorn.log", "wb")  # noqa: SIM115 - closed below, the child has a copy
    server = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "--bind",
            f"127.0.0.1:{port}",
            "--worker-class",
            "gateway.worker.GatewayWorker",
            "--workers",
            "1",
            "--threads",
            "4",
            "--keep-alive",
            "30",
            "--control-socket",
            str(var / "gunicorn.ctl"),
            "tests.unit.test_gateway_worker:app",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    log.close()
    try:
        deadline = time.monotonic() + 30
        while _get(port) is None:
            assert server.poll() is None, (var / "gunicorn.log").read_text()
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.2)
        yield port
    finally:
        server.terminate()
        server.wait(10)


def _get(port: int, path: str = "/fast") -> float | None:
    """Seconds until GET path was answered 200, None if it was not."""
    started = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            answer = _read_all(sock)
    except OSError:
        return None
    return time.monotonic() - started if answer.startswith(b"HTTP/1.1 200") else None


def _one_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length, read whole (it may come in pieces)."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    head, body = answer.split(b"\r\n\r\n", 1)
    length = int(
        next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:"))[15:]
    )
    while len(body) < length:
        body += sock.recv(4096)
    return head + b"\r\n\r\n" + body


def _read_all(sock: socket.socket) -> bytes:
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer


class Trickler(threading.Thread):
    """A connection that sends its request a byte at a time; notes when it was cut off."""

    def __init__(self, port: int, request: bytes, interval: float) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.request = request
        self.interval = interval
        self.started = time.monotonic()
        self.cut_after: float | None = None
        self.answer = b""

    def run(self) -> None:
        self.sock.settimeout(self.interval)
        # the server may close the connection: the answer so far is all there is
        with contextlib.suppress(OSError):
            for byte in self.request:
                self.sock.send(bytes([byte]))
                try:
                    chunk = self.sock.recv(4096)
                except TimeoutError:
                    continue
                self.answer += chunk
                if not chunk:
                    break
        self.cut_after = time.monotonic() - self.started
        self.sock.close()


def test_trickling_heads_and_bodies_hold_no_thread_and_are_cut_off(gateway):
    small = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n" + b"x" * 200
    tricklers = [Trickler(gateway, small, 0.3) for _ in range(60)]
    head_only = small[: small.index(b"\r\n\r\n")]
    tricklers += [
        Trickler(gateway, head_only + b"\r\nX-Pad: " + b"a" * 200, 0.3) for _ in range(60)
    ]
    for t in tricklers:
        t.start()
    time.sleep(0.5)  # every one of them has begun
    seconds = [_get(gateway) for _ in range(20)]
    assert None not in seconds, seconds
    assert max(seconds) < 0.5, seconds  # four threads, 120 slow senders: nobody waited
    for t in tricklers:
        t.join(10)
    cut = sorted(t.cut_after for t in tricklers)
    # each is cut off once its reserve (1 s) is used up; the loop looks every second
    assert cut[0] > 0.9 and cut[-1] < 3.5, cut


def test_a_stalled_body_is_cut_off_in_its_thread_and_answered(gateway):
    with socket.create_connection(("127.0.0.1", gateway), timeout=10) as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
        sock.sendall(b"y" * 100_000)
        started = time.monotonic()
        answer = _read_all(sock)  # nothing more is sent
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"too slow after 65536" in answer  # the app read a piece, then waited for more
    assert 0.9 < time.monotonic() - started < 2.5


def test_bodies_take_at_most_their_share_of_threads_the_rest_are_kept(gateway):
    """Four threads: two for bodies still to come. A third such body is refused at once."""
    big = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
    stalled = [socket.create_connection(("127.0.0.1", gateway), timeout=10) for _ in range(2)]
    try:
        for sock in stalled:
            sock.sendall(big + b"y" * 1000)
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", gateway), timeout=10) as third:
            third.sendall(big)
            refused = third.recv(4096)
        assert refused.startswith(b"HTTP/1.1 503"), refused
        assert b'"code": "busy"' in refused
        seconds = [_get(gateway) for _ in range(10)]
        assert None not in seconds and max(seconds) < 0.5, seconds
    finally:
        for sock in stalled:
            sock.close()
    time.sleep(1.5)  # their threads are given back once the two are cut off
    with socket.create_connection(("127.0.0.1", gateway), timeout=10) as sock:
        closing = big.replace(b"1000000", b"100000").replace(
            b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"
        )
        sock.sendall(closing + b"z" * 100_000)
        assert _read_all(sock).startswith(b"HTTP/1.1 200")


def test_a_keep_alive_connection_is_gathered_again_for_its_next_request(gateway):
    with socket.create_connection(("127.0.0.1", gateway), timeout=10) as sock:
        for _ in range(3):
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
            answer = _one_response(sock)
            assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"received 5")
            assert b"\r\nConnection: keep-alive\r\n" in answer
        # two requests at once (pipelined): the second is read ahead and still served
        sock.sendall(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
        answers = b""
        deadline = time.monotonic() + 5
        while answers.count(b"HTTP/1.1 200") < 2 and time.monotonic() < deadline:
            answers += sock.recv(4096)
        assert answers.count(b"HTTP/1.1 200") == 2


@pytest.mark.parametrize("size", [10, SMALL_BODY + 1, 100_000, 5 * 1024 * 1024])
def test_an_answer_that_leaves_the_body_unread_closes_the_connection(gateway, size):
    """It says so, so that the client sends its next request on a new connection.

    Announcing keep-alive and closing anyway (gunicorn drains at most 64 KiB) lost the
    next request of a client that reused the connection meanwhile.
    """
    with socket.create_connection(("127.0.0.1", gateway), timeout=10) as sock:
        sock.sendall(b"POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
        with contextlib.suppress(OSError):  # the server may close before all is sent
            sock.sendall(b"z" * min(size, SMALL_BODY))
        answer = _one_response(sock)
        assert answer.startswith(b"HTTP/1.1 413")
        assert b"\r\nConnection: close\r\n" in answer
        with contextlib.suppress(ConnectionResetError):  # unread bytes make it a reset
            assert sock.recv(4096) == b""
