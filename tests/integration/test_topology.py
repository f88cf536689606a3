"""The event topology on a real RabbitMQ: every event has a queue from the first second."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, UnroutableError

from overdracht import bus
from overdracht.contracts import DOCUMENT_UPLOADED, EVENT_SOURCES, make_event

BROKER = "amqp://guest:guest@127.0.0.1:5672/"


def _rabbitmqctl(*args: str, check: bool = True) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=check, capture_output=True, timeout=60)


@pytest.fixture
def amqp_uri() -> Iterator[str]:
    """A vhost of our own, deleted afterwards whatever happens."""
    vhost = f"overdracht-topology-{uuid.uuid4().hex[:10]}"
    try:
        _rabbitmqctl("add_vhost", vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield BROKER + quote(vhost, safe="")
    finally:
        _rabbitmqctl("delete_vhost", vhost, check=False)


@pytest.fixture
def channel(amqp_uri) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        yield channel
    finally:
        if connection.is_open:
            connection.close()


def _publish(channel, exchange: str, routing_key: str, body: dict) -> None:
    channel.basic_publish(
        exchange=exchange,
        routing_key=routing_key,
        body=json.dumps(body).encode(),
        properties=pika.BasicProperties(content_type="application/json", delivery_mode=2),
        mandatory=True,
    )


def _depth(channel, queue: str) -> int:
    return channel.queue_declare(queue, passive=True).method.message_count


def test_declaring_twice_works(amqp_uri, channel):
    bus.declare_topology(amqp_uri)
    bus.declare_topology(amqp_uri)

    for source in EVENT_SOURCES:
        assert _depth(channel, bus.audit_queue(source)) == 0


def test_before_declaring_there_is_no_exchange_to_publish_to(amqp_uri):
    """The control for the test below: the vhost starts empty."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        with pytest.raises(ChannelClosedByBroker) as caught:
            _publish(channel, "documents.events", DOCUMENT_UPLOADED, {"x": 1})
        assert caught.value.reply_code == 404
    finally:
        connection.close()


def test_a_mandatory_document_event_is_routed_to_the_audit_queue(amqp_uri, channel):
    bus.declare_topology(amqp_uri)
    event = make_event(DOCUMENT_UPLOADED, actor={"type": "system"})

    _publish(channel, "documents.events", DOCUMENT_UPLOADED, event)

    queue = bus.audit_queue("documents")
    assert queue == "evt-documents-#--audit.handle_documents_event"
    assert _depth(channel, queue) == 1
    assert _depth(channel, bus.audit_queue("auth")) == 0
    assert _depth(channel, bus.audit_queue("clients")) == 0

    method, _properties, body = channel.basic_get(queue, auto_ack=True)
    assert method is not None
    assert json.loads(body) == event


def test_every_event_of_every_source_reaches_its_audit_queue(amqp_uri, channel):
    bus.declare_topology(amqp_uri)

    for source, names in EVENT_SOURCES.items():
        for name in names:
            _publish(channel, f"{source}.events", name, {"event": name})

    for source, names in EVENT_SOURCES.items():
        assert _depth(channel, bus.audit_queue(source)) == len(names)


def test_an_event_no_queue_is_bound_for_is_returned_not_dropped(amqp_uri, channel):
    """mandatory=True is what makes routing failures visible: check the broker honours it."""
    bus.declare_topology(amqp_uri)
    channel.exchange_declare("nowhere.events", exchange_type="topic", durable=False)

    with pytest.raises(UnroutableError):
        _publish(channel, "nowhere.events", DOCUMENT_UPLOADED, {"event": DOCUMENT_UPLOADED})


def test_declared_queues_survive_a_reconnect(amqp_uri):
    """Durable and not auto-deleted: events wait while the audit service is down."""
    bus.declare_topology(amqp_uri)
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        _publish(channel, "auth.events", "provider.logged_in", {"event": "provider.logged_in"})
    finally:
        connection.close()

    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    try:
        assert _depth(connection.channel(), bus.audit_queue("auth")) == 1
    finally:
        connection.close()


def test_the_topology_matches_what_nameko_declares(amqp_uri, channel):
    """nameko redeclares the same exchanges and queues; RabbitMQ refuses different arguments."""
    from nameko.standalone.events import get_event_exchange

    from services.audit.service import AuditService

    bus.declare_topology(amqp_uri)
    for source in EVENT_SOURCES:
        exchange = get_event_exchange(source, {})
        channel.exchange_declare(
            exchange.name,
            exchange_type=exchange.type,
            durable=exchange.durable,
            auto_delete=bool(exchange.auto_delete),
        )
        # nameko's SERVICE_POOL handler with reliable delivery: durable, shared, kept
        queue = f"evt-{source}-#--{AuditService.name}.{bus.audit_handler(source)}"
        assert hasattr(AuditService, bus.audit_handler(source))
        assert queue == bus.audit_queue(source)
        channel.queue_declare(queue, durable=True, exclusive=False, auto_delete=False)
    assert channel.is_open
