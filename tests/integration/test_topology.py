"""The provisioned topology on a real RabbitMQ: every event has a queue from the first second."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pika
import pytest
from pika.exceptions import UnroutableError

from ops import provision
from overdracht import bus
from overdracht.contracts import DOCUMENT_UPLOADED, EVENT_SOURCES, make_event


@pytest.fixture
def uris() -> Iterator[dict[str, str]]:
    """A vhost and component users of our own, from the definitions; removed afterwards."""
    settings = provision.generate(f"ovdtopo{uuid.uuid4().hex[:8]}")
    uris = bus.component_uris(settings)
    try:
        bus.apply_definitions(bus.definitions(uris))
        yield uris
    finally:
        bus.remove_definitions(uris)


def _channel(uri: str):
    connection = pika.BlockingConnection(pika.URLParameters(uri))
    channel = connection.channel()
    channel.confirm_delivery()
    return connection, channel


def _publish(channel, exchange: str, routing_key: str, body: dict, user: str) -> None:
    channel.basic_publish(
        exchange=exchange,
        routing_key=routing_key,
        body=json.dumps(body).encode(),
        properties=pika.BasicProperties(
            content_type="application/json", delivery_mode=2, user_id=user
        ),
        mandatory=True,
    )


def _depth(uri: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(uri))
    try:
        return connection.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        connection.close()


def test_applying_the_definitions_twice_works(uris):
    bus.apply_definitions(bus.definitions(uris))
    for source in EVENT_SOURCES:
        assert _depth(uris["audit"], bus.audit_queue(source)) == 0


def test_every_event_of_every_source_reaches_its_audit_queue(uris):
    for source, names in EVENT_SOURCES.items():
        connection, channel = _channel(uris[source])
        try:
            for name in names:
                event = make_event(name, actor={"type": "system"})
                _publish(
                    channel, bus.event_exchange(source), name, event, bus.uri_parts(uris[source])[0]
                )
        finally:
            connection.close()
    for source, names in EVENT_SOURCES.items():
        assert _depth(uris["audit"], bus.audit_queue(source)) == len(names)


def test_a_routed_event_arrives_whole_and_attributed(uris):
    user = bus.uri_parts(uris["documents"])[0]
    event = make_event(DOCUMENT_UPLOADED, actor={"type": "system"})
    connection, channel = _channel(uris["documents"])
    try:
        _publish(channel, "documents.events", DOCUMENT_UPLOADED, event, user)
    finally:
        connection.close()
    connection, channel = _channel(uris["audit"])
    try:
        method, properties, body = channel.basic_get(bus.audit_queue("documents"), auto_ack=True)
    finally:
        connection.close()
    assert method is not None
    assert json.loads(body) == event
    assert properties.user_id == user


def test_an_unroutable_call_is_returned_not_dropped(uris):
    """mandatory=True makes routing failures visible: a reply to a queue that is gone."""
    connection, channel = _channel(uris["auth"])
    try:
        with pytest.raises(UnroutableError):
            _publish(
                channel,
                bus.RPC_EXCHANGE,
                f"reply-gateway-{uuid.uuid4()}",  # a reply nobody waits for any more
                {},
                bus.uri_parts(uris["auth"])[0],
            )
    finally:
        connection.close()


def test_the_topology_matches_what_nameko_consumes(uris):
    """nameko's handler and RPC queue names are the ones provisioning declares."""
    from services.audit.service import AuditService

    for source in EVENT_SOURCES:
        assert hasattr(AuditService, bus.audit_handler(source))
        assert bus.audit_queue(source) == (
            f"evt-{source}-#--{AuditService.name}.{bus.audit_handler(source)}"
        )
    queues = {q["name"] for q in bus.topology("v")["queues"]}
    assert {f"rpc-{s}" for s in bus.SERVICES} <= queues
