"""Declare the event topology before any service publishes.

nameko's EventDispatcher drops an event no queue is bound for yet; our publishers use
`mandatory` and would fail instead. Declaring every exchange, durable queue and binding
up front (with the same arguments nameko uses, or RabbitMQ refuses the redeclaration)
means every event has somewhere to go from the first second.
"""

from __future__ import annotations

import pika

from overdracht.contracts import EVENT_SOURCES

#: The audit service consumes every event of every publishing service.
AUDIT_SERVICE = "audit"


def audit_handler(source: str) -> str:
    """Name of the audit service's handler method for one source service."""
    return f"handle_{source}_event"


def audit_queue(source: str) -> str:
    """The queue nameko's SERVICE_POOL handler uses: evt-<source>-<type>--<service>.<method>."""
    return f"evt-{source}-#--{AUDIT_SERVICE}.{audit_handler(source)}"


def declare_topology(amqp_uri: str) -> None:
    """Idempotently declare the exchanges, queues and bindings events travel through."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    try:
        channel = connection.channel()
        for source in EVENT_SOURCES:
            exchange = f"{source}.events"
            channel.exchange_declare(exchange, exchange_type="topic", durable=True)
            queue = audit_queue(source)
            channel.queue_declare(queue, durable=True)
            channel.queue_bind(queue, exchange, routing_key="#")
    finally:
        connection.close()
