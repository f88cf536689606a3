"""Events: the audit log stores only what the owner of an event name really published.

With a broker login that may publish anything, an insider forges a download record, a
login, and an oversized event; none is stored as real. Each is parked and counted.
"""

from __future__ import annotations

import json
import time

import pika
import psycopg2
import pytest

from ops.provision import dsn
from overdracht.bus import event_exchange, uri_parts
from overdracht.contracts import make_event


def _publish(amqp_uri: str, source: str, event: dict, **properties) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish(
            event_exchange(source),
            event["event"],
            json.dumps(event).encode(),
            pika.BasicProperties(content_type="application/json", delivery_mode=2, **properties),
            mandatory=True,
        )
    finally:
        connection.close()


def _parked(platform, event_id: str, timeout: float = 15) -> tuple[str, str] | None:
    """(sender, reason) of the parked message carrying event_id, once audit has parked it."""
    audit_db = dsn(platform.env["OVERDRACHT_AUDIT_DB"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        connection = psycopg2.connect(audit_db)
        try:
            with connection.cursor() as cur:
                cur.execute(
                    "SELECT sender, reason FROM rejected_events WHERE payload LIKE %s",
                    (f"%{event_id}%",),
                )
                row = cur.fetchone()
        finally:
            connection.close()
        if row:
            return row
        time.sleep(0.3)
    return None


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("documents", "document.downloaded"),
        ("documents", "document.delivery"),  # a forged "delivered"
        ("auth", "provider.logged_in"),
    ],
)
def test_a_forged_event_is_parked_never_stored(harness, platform, insider, source, name):
    api = harness.provider()
    client = harness.new_client(api)
    forged = make_event(
        name,
        actor={"type": "provider", "id": "someone", "username": "verlos-anna"},
        subject=client["id"],
        outcome="delivered" if name == "document.delivery" else "success",
    )
    _publish(insider, source, forged)  # no user_id: nobody vouches for it

    sender, reason = _parked(platform, forged["event_id"])
    assert sender == ""
    assert "not by" in reason
    recorded = harness.audit(client_id=client["id"])
    assert forged["event_id"] not in {e["event_id"] for e in recorded}
    verified = harness.cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout  # the log itself is intact
    assert json.loads(verified.stdout)["parked"][source] >= 1  # and the attempt is counted


def test_the_insiders_own_name_does_not_make_its_event_real(harness, platform, insider):
    forged = make_event("document.deleted", actor={"type": "system"})
    _publish(insider, "documents", forged, user_id=uri_parts(insider)[0])
    sender, _ = _parked(platform, forged["event_id"])
    assert sender == uri_parts(insider)[0]
    assert forged["event_id"] not in {
        e["event_id"] for e in harness.audit(event="document.deleted")
    }


def test_an_oversized_event_is_parked_even_from_its_owner(harness, platform):
    documents = platform.env["OVERDRACHT_DOCUMENTS_AMQP_URI"]
    event = make_event(
        "document.listed", actor={"type": "system"}, detail={"padding": "x" * 20_000}
    )
    _publish(documents, "documents", event, user_id=uri_parts(documents)[0])
    _, reason = _parked(platform, event["event_id"])
    assert "exceeds" in reason
    assert event["event_id"] not in {e["event_id"] for e in harness.audit(event="document.listed")}


def test_a_real_event_from_its_owner_is_stored(harness, platform):
    """The control: the same path with the right sender does reach the log."""
    documents = platform.env["OVERDRACHT_DOCUMENTS_AMQP_URI"]
    event = make_event("document.listed", actor={"type": "system"}, detail={"documents": 0})
    _publish(documents, "documents", event, user_id=uri_parts(documents)[0])
    stored = harness.audit_until(
        lambda es: event["event_id"] in {e["event_id"] for e in es}, event="document.listed"
    )
    assert event["event_id"] in {e["event_id"] for e in stored}
