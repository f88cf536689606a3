"""The log filter: a caller's mistake is one line, a fault keeps its traceback."""

from __future__ import annotations

import logging
import sys
from types import SimpleNamespace

import pytest

from overdracht.contracts import Forbidden, InvalidInput, Unavailable
from overdracht.logs import ExpectedErrors

WORKER = SimpleNamespace(service_name="clients", entrypoint=SimpleNamespace(method_name="search"))


def _record(exc: Exception) -> logging.LogRecord:
    try:
        raise exc
    except Exception:  # noqa: BLE001 - building the record nameko would log
        exc_info = sys.exc_info()
    return logging.LogRecord(
        "nameko.containers",
        logging.WARNING,
        __file__,
        1,
        "(expected) error handling worker %s: %s",
        (WORKER, exc),
        exc_info,
    )


@pytest.mark.parametrize(
    ("exc", "level", "line"),
    [
        (InvalidInput("Dit is geen geldig BSN.", "invalid_bsn"), "INFO", "422 invalid_bsn"),
        (Forbidden("Geen toegang.", "no_relationship"), "WARNING", "403 no_relationship"),
    ],
)
def test_a_callers_mistake_is_one_line(exc, level, line):
    record = _record(exc)
    assert ExpectedErrors().filter(record)
    text = logging.Formatter("%(levelname)s %(message)s").format(record)
    assert text == f"{level} clients.search refused: {line}"
    assert "Traceback" not in text and "BSN." not in text


def test_a_fault_keeps_its_traceback():
    record = _record(Unavailable())
    assert ExpectedErrors().filter(record)
    text = logging.Formatter("%(levelname)s %(message)s").format(record)
    assert text.startswith("WARNING (expected) error handling worker")
    assert "Traceback" in text


def test_other_records_pass_untouched():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom %s", ("now",), None)
    assert ExpectedErrors().filter(record)
    assert record.getMessage() == "boom now"
