"""The bus, attacked with each component's own broker login: least privilege holds.

Each test is what an insider with one foothold would try: guest on the platform's vhost,
binding `#` to the RPC exchange to read every call, consuming another service's RPC
queue to answer in its place (clients.authorize), reading or acking audit's events,
publishing on another service's event exchange, calling what the component never calls.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, ProbableAccessDeniedError

from overdracht.bus import (
    CALLS,
    COMPONENTS,
    RPC_EXCHANGE,
    SERVICES,
    SUBSCRIPTIONS,
    audit_queue,
    component_uri,
    event_exchange,
    subscription_queue,
    uri_parts,
)
from overdracht.contracts import EVENT_SOURCES, make_event

pytestmark = pytest.mark.usefixtures("platform")

ACCESS_REFUSED = 403


def uri(platform, component: str) -> str:
    return platform.env[f"OVERDRACHT_{component.upper()}_AMQP_URI"]


@contextmanager
def channel(amqp_uri: str) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    try:
        yield connection.channel()
    finally:
        if connection.is_open:
            connection.close()


def refused(amqp_uri: str, attempt) -> int:
    """Run attempt(channel); return the broker's reply code when it closes the channel."""
    with channel(amqp_uri) as ch:
        try:
            attempt(ch)
        except ChannelClosedByBroker as exc:
            return exc.reply_code
    return 0


def own_reply_queue(component: str) -> str:
    return f"rpc.reply-{component}-{uuid.uuid4()}"


def test_guest_cannot_even_open_the_platform_vhost(platform):
    _, _, vhost = uri_parts(uri(platform, "gateway"))
    with pytest.raises(ProbableAccessDeniedError):
        pika.BlockingConnection(
            pika.URLParameters(component_uri("127.0.0.1:5672", "guest", "guest", vhost))
        )


def test_every_component_has_its_own_user(platform):
    users = {uri_parts(uri(platform, c))[0] for c in COMPONENTS}
    assert len(users) == len(COMPONENTS)


@pytest.mark.parametrize("component", COMPONENTS)
@pytest.mark.parametrize("key", ["#", "*.*", "clients.*", "clients.authorize", "auth.start_login"])
def test_nobody_binds_the_rpc_exchange_to_read_other_calls(platform, component, key):
    """Sniffing: a queue bound with `#` would receive every password, code and BSN."""

    def bind(ch):
        queue = ch.queue_declare(own_reply_queue(component), auto_delete=True).method.queue
        ch.queue_bind(queue, RPC_EXCHANGE, routing_key=key)

    assert refused(uri(platform, component), bind) == ACCESS_REFUSED


@pytest.mark.parametrize("component", [c for c in COMPONENTS if c in CALLS])
def test_a_caller_binds_its_reply_queue_to_its_own_reply_key_only(platform, component):
    """Replies reach a component's own reply queue; another's reply key is out of reach.

    Every service learns its callers' reply keys from their requests' reply_to: were any
    key bindable, documents could bind the gateway's and read its login replies.
    """

    def bind(key: str):
        def attempt(ch):
            queue = ch.queue_declare(own_reply_queue(component), auto_delete=True).method.queue
            ch.queue_bind(queue, RPC_EXCHANGE, routing_key=key)

        return attempt

    amqp_uri = uri(platform, component)
    assert refused(amqp_uri, bind(f"reply-{component}-{uuid.uuid4()}")) == 0
    for other in [c for c in CALLS if c != component]:
        assert refused(amqp_uri, bind(f"reply-{other}-{uuid.uuid4()}")) == ACCESS_REFUSED
    assert refused(amqp_uri, bind(str(uuid.uuid4()))) == ACCESS_REFUSED


@pytest.mark.parametrize("component", [c for c in COMPONENTS if c in CALLS])
def test_nobody_declares_another_components_reply_queue(platform, component):
    for other in [c for c in CALLS if c != component]:
        attempt = lambda ch, other=other: ch.queue_declare(own_reply_queue(other))  # noqa: E731
        assert refused(uri(platform, component), attempt) == ACCESS_REFUSED


@pytest.mark.parametrize(
    ("component", "service"), [(c, s) for c in COMPONENTS for s in SERVICES if c != s]
)
def test_nobody_consumes_another_services_rpc_queue(platform, component, service):
    """Hijacking: whoever consumes rpc-clients answers clients.authorize in its place."""
    assert (
        refused(uri(platform, component), lambda ch: ch.basic_get(f"rpc-{service}"))
        == ACCESS_REFUSED
    )


@pytest.mark.parametrize("component", [c for c in COMPONENTS if c != "audit"])
@pytest.mark.parametrize("source", EVENT_SOURCES)
def test_only_audit_reads_the_event_queues(platform, component, source):
    """Dropping: a consumer that acks audit's events would erase them from the record."""
    assert (
        refused(uri(platform, component), lambda ch: ch.basic_get(audit_queue(source)))
        == ACCESS_REFUSED
    )


SUBSCRIBED = [(service, *entry) for service, entries in SUBSCRIPTIONS.items() for entry in entries]


@pytest.mark.parametrize("subscribed", SUBSCRIBED, ids=lambda s: s[0] + ":" + s[2])
@pytest.mark.parametrize("component", COMPONENTS)
def test_a_subscription_queue_is_read_by_its_service_alone(platform, component, subscribed):
    """A foothold in documents (or the gateway) must not swallow the events that mark new
    documents and trigger the notices, nor read them; clients itself may."""
    queue = subscription_queue(*subscribed)
    # unacknowledged, a message it might get goes back to the queue when the channel closes
    expected = 0 if component == subscribed[0] else ACCESS_REFUSED
    assert refused(uri(platform, component), lambda ch: ch.basic_get(queue)) == expected


def _publish(ch, exchange: str, routing_key: str, body: dict, **properties) -> None:
    ch.confirm_delivery()
    ch.basic_publish(
        exchange,
        routing_key,
        json.dumps(body).encode(),
        pika.BasicProperties(content_type="application/json", delivery_mode=2, **properties),
    )


@pytest.mark.parametrize(
    ("component", "source"), [(c, s) for c in COMPONENTS for s in EVENT_SOURCES if c != s]
)
def test_nobody_publishes_on_another_services_event_exchange(platform, component, source):
    name = EVENT_SOURCES[source][0]
    event = make_event(name, actor={"type": "system"})
    attempt = lambda ch: _publish(ch, event_exchange(source), name, event)  # noqa: E731
    assert refused(uri(platform, component), attempt) == ACCESS_REFUSED


@pytest.mark.parametrize("source", EVENT_SOURCES)
def test_a_service_publishes_only_its_own_event_names(platform, source):
    foreign = next(
        n for s, ns in EVENT_SOURCES.items() for n in ns if n not in EVENT_SOURCES[source]
    )
    event = make_event(foreign, actor={"type": "system"})
    attempt = lambda ch: _publish(ch, event_exchange(source), foreign, event)  # noqa: E731
    assert refused(uri(platform, source), attempt) == ACCESS_REFUSED


def test_a_publisher_cannot_claim_to_be_another_user(platform):
    """RabbitMQ checks user_id against the login: the audit service can rely on it."""
    documents_user = uri_parts(uri(platform, "documents"))[0]
    event = make_event("client.searched", actor={"type": "system"})
    attempt = lambda ch: _publish(  # noqa: E731
        ch, event_exchange("clients"), "client.searched", event, user_id=documents_user
    )
    assert refused(uri(platform, "clients"), attempt) == 406  # PRECONDITION_FAILED


def _not_called_by(component: str, key: str) -> bool:
    service, method = key.split(".")
    return method not in CALLS.get(component, {}).get(service, ())


# a component's own calls are not here: every end-to-end test makes them
@pytest.mark.parametrize(
    ("component", "key"),
    [
        (c, k)
        for c in COMPONENTS
        for k in (
            "retention.sweep",
            "clients.delete_clients",
            "clients.authorize",
            "audit.query",
            "auth.notify_new_documents",
        )
        if _not_called_by(c, k)
    ],
)
def test_a_component_calls_only_what_it_needs(platform, component, key):
    attempt = lambda ch: _publish(ch, RPC_EXCHANGE, key, {"args": [], "kwargs": {}})  # noqa: E731
    assert refused(uri(platform, component), attempt) == ACCESS_REFUSED


@pytest.mark.parametrize("component", COMPONENTS)
def test_no_component_may_declare_or_delete_the_shared_exchanges(platform, component):
    for name in (RPC_EXCHANGE, *(event_exchange(s) for s in EVENT_SOURCES)):
        attempt = lambda ch, name=name: ch.exchange_delete(name)  # noqa: E731
        assert refused(uri(platform, component), attempt) == ACCESS_REFUSED


def test_a_request_whose_reply_is_refused_does_not_take_the_service_down(harness, platform):
    """The gateway's login, compromised, asks auth to reply where auth may not send.

    The broker refuses the reply; nameko's responder would end the whole service for it.
    """
    gateway = uri(platform, "gateway")
    with channel(gateway) as ch:
        ch.confirm_delivery()
        for _ in range(3):
            ch.basic_publish(
                RPC_EXCHANGE,
                "auth.authenticate",
                json.dumps({"args": ["not a token", "x"], "kwargs": {}}).encode(),
                pika.BasicProperties(
                    content_type="application/json",
                    reply_to=str(uuid.uuid4()),  # a bare UUID: no reply key auth may use
                    correlation_id=str(uuid.uuid4()),
                ),
            )
    time.sleep(2)
    assert harness.provider().get("/me").status_code == 200  # auth still logs people in
    assert "reply not delivered" in (platform.log_dir / "auth.log").read_text()
