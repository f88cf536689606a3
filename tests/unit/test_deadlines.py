"""Every RPC request carries a deadline; what arrives after it is dropped before any work."""

from __future__ import annotations

import time
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from nameko.amqp.publish import Publisher
from nameko.constants import NON_PERSISTENT, PERSISTENT

from overdracht import bus, config
from overdracht.contracts import DeadlinePassed, Unauthenticated
from overdracht.db import Database
from overdracht.entrypoints import ProvisionedRpc
from overdracht.identity import Verifier


@pytest.fixture
def published(monkeypatch, tmp_path) -> list[dict]:
    """What DeadlinePublisher hands nameko's publisher (the broker is outside the unit)."""
    monkeypatch.setenv("OVERDRACHT_ENV_FILE", str(tmp_path / "no-env-file"))
    monkeypatch.setenv("OVERDRACHT_RPC_TIMEOUT", "10")
    config._file_values.cache_clear()
    calls: list[dict] = []
    monkeypatch.setattr(Publisher, "publish", lambda self, payload, **kw: calls.append(kw))
    yield calls
    config._file_values.cache_clear()


def test_a_request_expires_with_the_rpc_timeout(published):
    before = time.time()
    bus.DeadlinePublisher("amqp://unused").publish({"args": []}, extra_headers={"x": 1})
    (sent,) = published
    assert 9.9 < sent["expiration"] <= 10
    assert before + 10 <= sent["extra_headers"][bus.DEADLINE_HEADER] <= time.time() + 10
    assert sent["extra_headers"]["x"] == 1
    # a broker that is away is given up on quickly; nameko adds keys to transport_options,
    # so the two must not be one shared dict
    assert sent["retry_policy"] == sent["transport_options"] == bus.BROKER_PATIENCE
    assert sent["transport_options"] is not sent["retry_policy"]
    assert sent["transport_options"] is not bus.BROKER_PATIENCE


def test_a_nested_call_keeps_its_callers_sooner_deadline(published):
    sooner = time.time() + 3
    bus.DeadlinePublisher("amqp://unused").publish({}, extra_headers={bus.DEADLINE_HEADER: sooner})
    (sent,) = published
    assert sent["extra_headers"][bus.DEADLINE_HEADER] == sooner
    assert 2.5 < sent["expiration"] <= 3


def test_a_later_inherited_deadline_does_not_extend_the_timeout(published):
    bus.DeadlinePublisher("amqp://unused").publish(
        {}, extra_headers={bus.DEADLINE_HEADER: time.time() + 3600}
    )
    assert published[0]["expiration"] <= 10


def test_a_call_made_after_the_deadline_is_not_sent(published):
    with pytest.raises(DeadlinePassed):
        bus.DeadlinePublisher("amqp://unused").publish(
            {}, extra_headers={bus.DEADLINE_HEADER: time.time() - 1}
        )
    assert published == []


def test_every_rpc_request_goes_out_through_the_deadline_publisher():
    from nameko import rpc as nameko_rpc

    bus.adapt_nameko()
    assert nameko_rpc.MethodProxy.publisher_cls is bus.DeadlinePublisher


def test_requests_and_replies_reach_the_broker_transient(monkeypatch):
    """What nameko hands kombu for a request and for a service's reply: delivery mode 1,
    so the broker keeps neither on disk. Events, published with nameko's own Publisher
    (overdracht/db.py), stay persistent."""
    from nameko import rpc as nameko_rpc
    from nameko.amqp import publish

    sent: list[dict] = []

    class Producer:
        def publish(self, payload, **kwargs):
            sent.append(kwargs)

    @contextmanager
    def producer(*args, **kwargs):
        yield Producer()

    monkeypatch.setattr(publish, "get_producer", producer)
    bus.adapt_nameko()
    bus.DeadlinePublisher("amqp://unused").publish({}, routing_key="auth.authenticate")
    nameko_rpc.Responder.publisher_cls("amqp://unused").publish({}, routing_key="reply-gateway")
    assert [kwargs["delivery_mode"] for kwargs in sent] == [NON_PERSISTENT, NON_PERSISTENT]
    assert Publisher("amqp://unused").delivery_mode == PERSISTENT


def _verifier(deadline: float | None) -> Verifier:
    return Verifier(None, {}, "clients.create", deadline)


def test_a_worker_that_starts_after_the_deadline_refuses_before_verifying():
    with pytest.raises(DeadlinePassed):
        _verifier(time.time() - 0.1)("any principal")


def test_a_worker_in_time_goes_on_to_verify_the_caller():
    with pytest.raises(Unauthenticated):  # past the deadline check, on to the signature
        _verifier(time.time() + 10)("not a principal")
    with pytest.raises(Unauthenticated):
        _verifier(None)("not a principal")


class _Message:
    def __init__(self, headers: dict, redelivered: bool = False) -> None:
        self.headers = headers
        self.delivery_info = {"redelivered": redelivered}
        self.properties = {"correlation_id": "c0ffee"}
        self.body = b'{"args": [], "kwargs": {}}'


class _Clients:
    def create(self) -> None:
        """The service method the entrypoint stands for."""


class _Answers(Database):
    """The service's database, as far as the entrypoint asks it (PostgreSQL is outside)."""

    def __init__(self, stored: dict) -> None:
        super().__init__(
            "clients", sa.Table("outbox", sa.MetaData()), sa.Table("answers", sa.MetaData())
        )
        self.stored = stored
        self.asked: list = []

    def stored_answer(self, request):
        self.asked.append(request)
        return self.stored.get(request)


def _entrypoint(spawned: list, acked: list, answers: _Answers | None = None) -> ProvisionedRpc:
    entrypoint = ProvisionedRpc()
    entrypoint.method_name = "create"
    entrypoint.container = SimpleNamespace(
        service_name="clients",
        service_cls=_Clients,
        spawn_worker=lambda *args, **kwargs: spawned.append(kwargs["context_data"]),
        dependencies={answers} if answers else set(),
    )
    entrypoint.rpc_consumer = SimpleNamespace(
        queue_consumer=SimpleNamespace(ack_message=acked.append),
        handle_result=lambda message, result, exc_info: acked.append((message, result)),
    )
    return entrypoint


def test_a_request_delivered_after_its_deadline_is_acked_and_dropped(caplog):
    spawned, acked = [], []
    message = _Message({bus.DEADLINE_HEADER: time.time() - 5})
    _entrypoint(spawned, acked).handle_message({"args": [], "kwargs": {}}, message)
    assert spawned == [] and acked == [message]
    assert "clients.create dropped: its caller stopped waiting" in caplog.text


def test_a_request_in_time_is_handled_with_its_deadline_as_context():
    spawned, acked = [], []
    deadline = time.time() + 5
    message = _Message({bus.DEADLINE_HEADER: deadline})
    _entrypoint(spawned, acked).handle_message({"args": [], "kwargs": {}}, message)
    assert acked == []
    assert bus.deadline_of(spawned[0]) == deadline


def test_a_request_is_keyed_by_its_own_message_whatever_a_header_says():
    spawned, acked = [], []
    message = _Message({"nameko.request": "a key of someone else's choosing"})
    _entrypoint(spawned, acked).handle_message({"args": [], "kwargs": {}}, message)
    key = spawned[0][bus.REQUEST]
    assert key == bus.request_key("c0ffee", message.body)
    message.body = b'{"args": ["other"], "kwargs": {}}'
    assert bus.request_key("c0ffee", message.body) != key  # another body, another key
    assert bus.request_key(None, message.body) is None
    # kombu hands the body over as text or as bytes, by content type
    assert bus.request_key("c0ffee", message.body.decode()) == bus.request_key(
        "c0ffee", message.body
    )


def test_a_redelivered_request_whose_work_committed_gets_its_first_reply():
    spawned, acked = [], []
    message = _Message({bus.DEADLINE_HEADER: time.time() + 5}, redelivered=True)
    first = {"id": "her id", "name": "Bakker"}
    answers = _Answers({bus.request_key("c0ffee", message.body): first})
    _entrypoint(spawned, acked, answers).handle_message({"args": [], "kwargs": {}}, message)
    assert spawned == []  # not run again
    assert acked == [(message, first)]


def test_a_redelivered_request_without_a_committed_reply_runs_again():
    spawned, acked = [], []
    message = _Message({bus.DEADLINE_HEADER: time.time() + 5}, redelivered=True)
    answers = _Answers({})
    _entrypoint(spawned, acked, answers).handle_message({"args": [], "kwargs": {}}, message)
    assert answers.asked == [bus.request_key("c0ffee", message.body)]
    assert len(spawned) == 1 and acked == []


def test_a_first_delivery_does_not_look_for_a_stored_reply():
    spawned, acked = [], []
    message = _Message({bus.DEADLINE_HEADER: time.time() + 5})
    answers = _Answers({bus.request_key("c0ffee", message.body): {"stale": True}})
    _entrypoint(spawned, acked, answers).handle_message({"args": [], "kwargs": {}}, message)
    assert answers.asked == [] and len(spawned) == 1
