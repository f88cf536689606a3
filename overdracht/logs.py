"""Logs an operator can read: a caller's mistake is one line, a fault keeps its traceback.

nameko logs every error an entrypoint raises, expected or not, with the whole traceback
(expected ones at WARNING). A wrong password or an invalid BSN is not a fault: this filter
turns each such record into one line naming the call and the error's code. Refusals of
access (401, 403) stay at WARNING, other mistakes drop to INFO; a 5xx (the database or
the store is away) is a fault and keeps its traceback.
"""

from __future__ import annotations

import logging

from overdracht.contracts import OverdrachtError


class ExpectedErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not (isinstance(record.msg, str) and record.msg.startswith("(expected)")):
            return True
        if not (isinstance(record.args, tuple) and len(record.args) == 2):
            return True
        worker_ctx, exc = record.args
        if not isinstance(exc, OverdrachtError) or exc.status >= 500:
            return True
        entrypoint = getattr(worker_ctx, "entrypoint", None)
        call = f"{worker_ctx.service_name}.{getattr(entrypoint, 'method_name', '?')}"
        record.msg, record.args = "%s refused: %s %s", (call, exc.status, exc.code)
        record.exc_info, record.exc_text = None, None
        if exc.status not in (401, 403):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True
