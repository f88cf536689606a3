"""Local servers that play the outside world's providers: CM.com's SMS API and SMTP."""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeCm(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), CmHandler)
        self.mode = "succeed"
        self.failures_left = 0
        self.requests: list[tuple[dict, dict]] = []
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1.0/message"


class CmHandler(BaseHTTPRequestHandler):
    server: FakeCm

    def do_POST(self) -> None:
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((payload, dict(self.headers)))
        mode = self.server.mode
        if mode == "hang":
            self.server.release.wait(10)
            return
        if mode == "fail_then_succeed" and self.server.failures_left > 0:
            self.server.failures_left -= 1
            self._answer(503, None)
        elif mode == "bad_request":
            details = "No account found for the given authentication"
            self._answer(400, {"details": details, "errorCode": 101, "messages": []})
        elif mode == "rejected":
            msg = payload["messages"]["msg"][0]
            rejected = {
                "to": msg["to"][0]["number"],
                "status": "Rejected",
                "reference": msg["reference"],
                "parts": 0,
                "messageDetails": f"Rejected: {msg['body']['content']}",
                "messageErrorCode": 304,
            }
            self._answer(
                200, {"details": "Created 0 message(s)", "errorCode": 201, "messages": [rejected]}
            )
        else:
            msg = payload["messages"]["msg"][0]
            accepted = {
                "to": msg["to"][0]["number"],
                "status": "Accepted",
                "reference": msg["reference"],
                "parts": 1,
                "messageDetails": None,
                "messageErrorCode": 0,
            }
            self._answer(
                200, {"details": "Created 1 message(s)", "errorCode": 0, "messages": [accepted]}
            )

    def _answer(self, status: int, body: dict | None) -> None:
        data = json.dumps(body).encode() if body is not None else b"Service Unavailable"
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if body else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests read the requests it recorded, not its log."""


def run_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


class SmtpRecorder:
    """Answers DATA from a script (e.g. "451 …" once), then accepts."""

    def __init__(self, answers: list[str] | None = None) -> None:
        self.answers = list(answers or [])
        self.tries = 0
        self.received: list[tuple[str, list[str], bytes]] = []
        #: seconds each message takes to accept (a mail server under load)
        self.delay = 0.0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.tries += 1
        await asyncio.sleep(self.delay)
        if self.answers:
            return self.answers.pop(0)
        self.received.append((envelope.mail_from, envelope.rcpt_tos, envelope.content))
        return "250 OK"


class Smtp:
    """aiosmtpd on a fixed port, to stop and start again."""

    def __init__(self) -> None:
        self.recorder = SmtpRecorder()
        self.port = free_port()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def mails_to(self, address: str) -> list[email.message.EmailMessage]:
        return [
            email.message_from_bytes(content, policy=email.policy.default)
            for _, to, content in self.recorder.received
            if address in to
        ]
