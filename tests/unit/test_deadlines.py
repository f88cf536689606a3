"""Every RPC request carries a deadline; what arrives after it is dropped before any work."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from nameko.amqp.publish import Publisher

from overdracht import bus, config
from overdracht.contracts import DeadlinePassed, Unauthenticated
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
    def __init__(self, headers: dict) -> None:
        self.headers = headers


class _Clients:
    def create(self) -> None:
        """The service method the entrypoint stands for."""


def _entrypoint(spawned: list, acked: list) -> ProvisionedRpc:
    entrypoint = ProvisionedRpc()
    entrypoint.method_name = "create"
    entrypoint.container = SimpleNamespace(
        service_name="clients",
        service_cls=_Clients,
        spawn_worker=lambda *args, **kwargs: spawned.append(kwargs["context_data"]),
    )
    entrypoint.rpc_consumer = SimpleNamespace(
        queue_consumer=SimpleNamespace(ack_message=acked.append)
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
