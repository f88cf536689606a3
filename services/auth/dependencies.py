"""Auth's side effects behind small interfaces: the SMS sender."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eventlet.semaphore import Semaphore
from nameko.extensions import DependencyProvider

from overdracht import config


class OutboxSms:
    """Development and test SMS: one JSON line per message in a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = Semaphore()

    def send(self, to: str, body: str) -> None:
        line = json.dumps({"to": to, "body": body, "sent_at": datetime.now(UTC).isoformat()})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)


class SmsSender(DependencyProvider):
    """Injects an object with `send(to, body)`."""

    def setup(self) -> None:
        if config.is_production():
            # codes in a file are for development and tests; production needs a real gateway
            raise RuntimeError("no SMS provider is configured for production")
        self.backend = OutboxSms(Path(config.get("OVERDRACHT_SMS_OUTBOX")))

    def get_dependency(self, worker_ctx: Any) -> OutboxSms:
        return self.backend
