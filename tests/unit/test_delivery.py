"""A download's body reports once how it ended: delivered, failed or interrupted."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest

from services.documents.crypto import IntegrityError
from services.documents.delivery import Budget, Delivery, Held


class Reports(list):
    def __call__(self, outcome: str, sent: int, reason: str | None) -> None:
        self.append((outcome, sent, reason))


def _pieces(*pieces: bytes, then: Exception | None = None) -> Iterator[bytes]:
    yield from pieces
    if then is not None:
        raise then


def test_running_out_after_every_byte_is_delivered_once():
    reports = Reports()
    body = Delivery(_pieces(b"abc", b"de"), 5, reports)
    assert b"".join(body) == b"abcde"
    body.close()  # the server closes what it sent whole
    assert reports == [("delivered", 5, None)]


def test_a_list_body_is_delivered():
    reports = Reports()
    body = Delivery([b"x" * 10], 10, reports)
    assert list(body) == [b"x" * 10]
    body.close()
    assert reports == [("delivered", 10, None)]


@pytest.mark.parametrize("read", [0, 1, 2], ids=["never begun", "cut", "whole"])
def test_a_held_body_gives_its_share_of_the_budget_back_once_closed(read):
    """What the WSGI server does with a small document held in memory, however it ends."""
    budget = Budget(10)
    assert budget.take(5) and not budget.take(6)
    body = Delivery(Held([b"abc", b"de"], 5, budget), 5, Reports())
    for _ in range(read):
        next(body)
    assert budget.held == 5
    body.close()
    body.close()
    assert budget.held == 0
    assert budget.take(10)


def test_running_out_short_of_the_size_is_failed_not_delivered():
    reports = Reports()
    body = Delivery(_pieces(b"abc"), 5, reports)
    assert list(body) == [b"abc"]
    body.close()
    assert reports == [("failed", 3, "integrity_failure")]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (IntegrityError("changed"), "integrity_failure"),
        (OSError("store gone"), "store_unavailable"),
    ],
)
def test_a_failure_on_the_way_is_failed_and_raised_on(error, reason):
    reports = Reports()
    body = Delivery(_pieces(b"abc", then=error), 10, reports)
    assert next(body) == b"abc"
    with pytest.raises(type(error)):
        next(body)
    body.close()
    assert reports == [("failed", 3, reason)]


def test_closed_before_the_end_is_interrupted_and_closes_the_source():
    reports = Reports()
    closed = []

    def source() -> Iterator[bytes]:
        try:
            yield b"abc"
            yield b"de"
        finally:
            closed.append(True)

    body = Delivery(source(), 5, reports)
    assert next(body) == b"abc"
    body.close()
    assert reports == [("interrupted", 3, "connection_closed")]
    assert closed == [True]


def test_closed_before_the_first_byte_is_interrupted():
    reports = Reports()
    Delivery([b"abc"], 3, reports).close()
    assert reports == [("interrupted", 0, "connection_closed")]


def test_a_report_that_fails_breaks_nothing(caplog):
    def report(outcome: str, sent: int, reason: str | None) -> None:
        raise RuntimeError("database away")

    body = Delivery([b"abc"], 3, report)
    assert list(body) == [b"abc"]
    body.close()
    assert "download outcome delivered not reported: RuntimeError" in caplog.text


# --- the record documents writes -----------------------------------------------------------


class FakeDb:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.recorded: list[tuple[dict, bool]] = []

    def record(self, event: dict, confirm: bool = True) -> None:
        if self.error is not None:
            raise self.error
        self.recorded.append((event, confirm))


def _service(db: FakeDb):
    from services.documents.service import DocumentsService

    service = DocumentsService()
    service.db = db
    return service


def _ticket(**details):
    from services.documents.models import Ticket

    return Ticket(document_id=uuid.uuid4(), client_id=uuid.uuid4(), details=details)


def test_the_record_names_the_grant_and_tells_the_outcome():
    db = FakeDb()
    actor = {"type": "provider", "id": "p-1", "username": "verlos-anna"}
    ticket = _ticket(
        grant_event_id="g-1",
        actor=actor,
        access_point={"ip": "192.0.2.7"},
        object={"type": "document", "id": "d-1", "document_type": "kraambed"},
    )
    _service(db)._record_delivery(ticket, 10, "interrupted", 4, "connection_closed")
    [(event, confirm)] = db.recorded
    assert confirm is False  # the stream is over: nothing waits for the broker
    assert event["event"] == "document.delivery"
    assert event["outcome"] == "interrupted"
    assert event["detail"] == {
        "grant_event_id": "g-1",
        "bytes_sent": 4,
        "size": 10,
        "reason": "connection_closed",
    }
    assert event["actor"] == actor and event["subject"] == str(ticket.client_id)
    assert event["access_point"] == {"ip": "192.0.2.7"}
    assert event["object"]["id"] == "d-1"


def test_with_the_database_away_the_record_is_one_log_line(caplog):
    from overdracht.contracts import Unavailable

    ticket = _ticket(grant_event_id="g-2", actor={"type": "provider"})
    with caplog.at_level(logging.DEBUG, logger="services.documents.service"):
        _service(FakeDb(Unavailable()))._record_delivery(
            ticket, 10, "failed", 3, "store_unavailable"
        )
    lines = [r for r in caplog.records if r.name == "services.documents.service"]
    assert len(lines) == 1
    assert "(grant g-2) ended failed after 3 of 10 bytes, not recorded: Unavailable" in (
        lines[0].getMessage()
    )
