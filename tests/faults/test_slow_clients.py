"""Slow clients: connections that trickle their requests, uploads that stall mid-body.

While 200 connections trickle a request head or a small body a byte every two seconds
(each opened again as soon as it is cut off) and 20 uploads stall mid-body (each started
again when it is cut off; four of them after 12 MiB, so that documents has begun a
multipart upload), three providers keep asking /healthz, searching and listing their
client's documents. Everything they ask must be answered, with p95 under 1 s. Every slow
connection must be cut off once it kept the gateway waiting OVERDRACHT_REQUEST_READ_TIMEOUT
(conftest.READ_TIMEOUT), and nothing of a stalled upload may be left: no document row,
no object, no unfinished multipart upload, well before the leftover sweep would touch
them (it leaves an upload alone while its ticket lives).
"""

from __future__ import annotations

import contextlib
import math
import selectors
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import requests

from tests.faults.conftest import FAULT_SECONDS, READ_TIMEOUT, ROWS
from tests.faults.steady import Row, _rows, orphans, settle, stuck_outbox
from tests.support import Api, Harness, in_weeks, pdf

TRICKLERS = 200
STALLED = 20
#: of the stalled uploads, these stall after 12 MiB (documents has stored an 8 MiB part of
#: a multipart upload by then), the others after 64 KiB
BIG = 4
INTERVAL = 2.0  # seconds between a trickler's bytes
BOUNDARY = "traag-verzonden-formulier"
MiB = 1024 * 1024


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


@dataclass
class Answer:
    kind: str
    seconds: float
    status: int  # 0: no answer


class Reader(threading.Thread):
    """A provider asking what other users ask, one request at a time, until stopped."""

    def __init__(self, harness: Harness, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.api = harness.provider()
        self.client = harness.new_client(self.api)
        placed = harness.upload(self.api, self.client["id"])
        assert placed.status_code == 201, placed.text
        self.health = harness.url + "/healthz"
        self.stop = stop
        self.answers: list[Answer] = []

    def run(self) -> None:
        search = {"birth_date": self.client["birth_date"], "bsn": self.client["bsn"]}
        calls = {
            "healthz": lambda: requests.get(self.health, timeout=30),
            "search": lambda: self.api.post("/clients/search", json=search, timeout=30),
            "list": lambda: self.api.get(f"/clients/{self.client['id']}/documents", timeout=30),
        }
        while not self.stop.is_set():
            for kind, call in calls.items():
                started = time.monotonic()
                try:
                    status = call().status_code
                except requests.RequestException:
                    status = 0
                self.answers.append(Answer(kind, time.monotonic() - started, status))
                self.stop.wait(0.1)


@dataclass
class Slow:
    """One trickling connection: sent whole up to `prefix`, then a byte every INTERVAL."""

    sock: socket.socket
    request: bytes
    prefix: int
    started: float = field(default_factory=time.monotonic)
    sent: int = 0


class Tricklers(threading.Thread):
    """TRICKLERS connections from one thread; each cut off is noted and replaced until stopped."""

    def __init__(self, port: int, requests_: list[bytes], prefixes: list[int]) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.kinds = list(zip(requests_, prefixes, strict=True))
        self.stop_opening = threading.Event()
        self.cut_after: list[float] = []  # seconds from connecting until the gateway closed it
        self.answered: Counter = Counter()  # status lines of the few that got an answer
        self.opened = 0

    def _open(self, request: bytes, prefix: int, selector: selectors.BaseSelector) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.sendall(request[:prefix])
        sock.setblocking(False)
        slow = Slow(sock, request, prefix, sent=prefix)
        selector.register(sock, selectors.EVENT_READ, slow)
        self.opened += 1

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        for i in range(TRICKLERS):
            self._open(*self.kinds[i % len(self.kinds)], selector)
        next_byte = time.monotonic()
        while selector.get_map():
            now = time.monotonic()
            if now >= next_byte:
                for key in list(selector.get_map().values()):
                    slow = key.data
                    if slow.sent < len(slow.request):
                        try:
                            slow.sock.send(slow.request[slow.sent : slow.sent + 1])
                            slow.sent += 1
                        except OSError:
                            pass  # closed under us: the read below sees it
                next_byte = now + INTERVAL
            for key, _ in selector.select(timeout=max(next_byte - time.monotonic(), 0)):
                slow = key.data
                try:
                    data = slow.sock.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    self.answered[data.split(b"\r\n", 1)[0].decode(errors="replace")] += 1
                    continue
                self.cut_after.append(time.monotonic() - slow.started)
                selector.unregister(slow.sock)
                slow.sock.close()
                if not self.stop_opening.is_set():
                    self._open(slow.request, slow.prefix, selector)


def _upload_request(api: Api, client_id: str, size: int) -> tuple[bytes, bytes]:
    """An upload's head and form up to its file part, and the file (size bytes of PDF)."""
    fields = "".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in (("document_type", "kraambed"), ("removal_date", in_weeks(10)))
    )
    start = (
        fields + f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        'filename="traag.pdf"\r\nContent-Type: application/pdf\r\n\r\n'
    ).encode()
    end = f"\r\n--{BOUNDARY}--\r\n".encode()
    head = (
        f"POST /api/v1/clients/{client_id}/documents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {api.headers['Authorization']}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(start) + size + len(end)}\r\n\r\n"
    ).encode()
    return head + start, pdf(size)


class StalledUpload(threading.Thread):
    """Uploads that send part of their file and then nothing; started again when cut off."""

    def __init__(self, port: int, api: Api, client_id: str, stall_after: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.form, self.file = _upload_request(api, client_id, stall_after + 1024 * 1024)
        self.stall_after = stall_after
        self.stop_opening = threading.Event()
        self.endings: list[tuple[int, float]] = []  # (status, seconds after the last byte)

    def run(self) -> None:
        while not self.stop_opening.is_set():
            with socket.create_connection(("127.0.0.1", self.port), timeout=120) as sock:
                try:
                    sock.sendall(self.form)
                    sock.sendall(self.file[: self.stall_after])
                except OSError:
                    pass  # refused while sending: the answer says why
                last_byte = time.monotonic()
                answer = b""
                # the server may close it (cut off): what arrived is the answer
                with contextlib.suppress(OSError):
                    while chunk := sock.recv(65536):
                        answer += chunk
            status = int(answer[9:12]) if answer.startswith(b"HTTP/1.1 ") else 0
            self.endings.append((status, time.monotonic() - last_byte))
            if status != 408:
                self.stop_opening.wait(1)  # refused (every thread for bodies busy): soon again


def _multipart_uploads(platform) -> int:
    from services.documents.storage import make_client

    bucket = platform.env["OVERDRACHT_S3_BUCKET"]
    return len(make_client()._list_multipart_uploads(bucket, prefix="documents/").uploads)  # noqa: SLF001


def test_slow_clients_hold_up_nobody_and_leave_nothing(breakable, breakable_harness):
    harness = breakable_harness
    pids = {name: process.pid for name, process in breakable.processes}
    stop = threading.Event()
    readers = [Reader(harness, stop) for _ in range(3)]

    slow_api = harness.provider()
    target = harness.new_client(slow_api)
    token = slow_api.headers["Authorization"]
    port = breakable.ports.gateway
    search = (
        f"POST /api/v1/clients/search HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {token}\r\n"
        "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    ).encode()
    body = b'{"birth_date": "1992-03-14", "bsn": "' + b"1" * 200
    listing = f"GET /api/v1/clients/{target['id']}/documents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head = (listing + f"Authorization: {token}\r\nX-Pad: " + "a" * 400).encode()
    # half trickle their head from the first byte, half send the head and trickle the body
    tricklers = Tricklers(port, [head, search + body], [0, len(search)])
    uploads = [
        StalledUpload(port, slow_api, target["id"], 12 * MiB if i < BIG else 64 * 1024)
        for i in range(STALLED)
    ]

    for reader in readers:
        reader.start()
    time.sleep(2)  # a baseline before the slow ones come
    tricklers.start()
    for upload in uploads:
        upload.start()
    attack_began = time.monotonic()
    multipart_seen = 0
    while time.monotonic() - attack_began < max(FAULT_SECONDS, 2 * READ_TIMEOUT + 2):
        multipart_seen = max(multipart_seen, _multipart_uploads(breakable))
        time.sleep(0.5)
    tricklers.stop_opening.set()
    for upload in uploads:
        upload.stop_opening.set()
    stop.set()
    for thread in [*readers, tricklers, *uploads]:
        thread.join(READ_TIMEOUT + 60)
        assert not thread.is_alive(), f"{thread} still held open"

    answers = [a for r in readers for a in r.answers]
    endings = [e for u in uploads for e in u.endings]
    statuses = Counter(a.status for a in answers)
    row = Row(
        f"slow clients ({TRICKLERS}+{STALLED})",
        requests=len(answers),
        errors=sum(a.status != 200 for a in answers),
        longest=max(a.seconds for a in answers),
        recovered=0.0,  # nobody was refused: there was nothing to recover from
    )
    ROWS.append(row)
    for kind in ("healthz", "search", "list"):
        seconds = [a.seconds for a in answers if a.kind == kind]
        row.notes.append(f"{kind}: {len(seconds)} answered, p95 {p95(seconds):.3f} s")
    row.notes.append(
        f"{tricklers.opened} trickling connections cut off after "
        f"{min(tricklers.cut_after):.1f}-{max(tricklers.cut_after):.1f} s"
    )
    ended = Counter(status for status, _ in endings)
    cut = [seconds for status, seconds in endings if status == 408]
    row.notes.append(
        f"{len(endings)} stalled uploads: "
        + ", ".join(f"{n}× {s or 'no answer'}" for s, n in sorted(ended.items()))
        + f"; cut off {max(cut, default=0):.1f} s after their last byte at most"
        + f"; multipart uploads under way at once: {multipart_seen}"
    )

    # everyone else was answered, and quickly
    assert statuses == {200: len(answers)}, statuses
    for kind in ("healthz", "search", "list"):
        seconds = [a.seconds for a in answers if a.kind == kind]
        assert len(seconds) >= 10, f"{kind}: only {len(seconds)} requests"
        assert p95(seconds) < 1, f"{kind}: p95 {p95(seconds):.2f} s"

    # every slow connection was cut off once it had kept the gateway waiting too long
    assert len(tricklers.cut_after) == tricklers.opened
    assert READ_TIMEOUT - 1 <= min(tricklers.cut_after), row.notes
    assert max(tricklers.cut_after) <= READ_TIMEOUT + 3, row.notes
    assert {s for s, _ in endings} <= {408, 503}, endings
    assert len(cut) >= STALLED, endings
    assert max(cut) <= READ_TIMEOUT + 8, sorted(cut)
    assert multipart_seen >= 1, "no stalled upload got as far as a multipart upload"

    # and left nothing behind, long before their tickets expire and the sweep may look
    row.orphans = settle(lambda: orphans(breakable), lambda n: n == 0, timeout=30)
    assert row.orphans == 0
    kept = "SELECT count(*) FROM documents WHERE client_id = %s"
    assert _rows(breakable, "documents", kept, (target["id"],)) == [(0,)]
    uploaded = _rows(
        breakable,
        "audit",
        "SELECT count(*) FROM audit_records WHERE actor_username = %s AND event = %s",
        (slow_api.account.username, "document.uploaded"),
    )
    assert uploaded == [(0,)]
    row.stuck = settle(lambda: stuck_outbox(breakable), lambda n: n == 0)
    assert row.stuck == 0
    running = {n: p.pid for n, p in breakable.processes if p.poll() is None}
    assert running == pids, "a process exited under slow clients"
