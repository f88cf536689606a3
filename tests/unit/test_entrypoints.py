"""A broker that vanishes while a worker settles its message does not end the service.

nameko calls handle_result in the worker's own greenthread, and an exception there kills
the whole container. The broker (outside the unit) is a queue consumer whose socket is
gone: what py-amqp raises then is the built-in ConnectionError family, not amqp's own.
"""

from __future__ import annotations

from nameko.rpc import RpcConsumer

from overdracht.entrypoints import AttributedEventHandler, ProvisionedRpcConsumer


class _GoneBroker:
    """A queue consumer whose connection died under it."""

    def __init__(self) -> None:
        self.tried: list[str] = []

    def ack_message(self, message: object) -> None:
        self.tried.append("ack")
        raise BrokenPipeError(32, "Broken pipe")

    def requeue_message(self, message: object) -> None:
        self.tried.append("requeue")
        raise ConnectionResetError(104, "Connection reset by peer")


def _handler(broker: _GoneBroker) -> AttributedEventHandler:
    handler = AttributedEventHandler("clients", "#", requeue_on_error=True)
    handler.queue_consumer = broker
    return handler


def test_an_event_stored_as_the_broker_goes_is_left_for_redelivery(caplog):
    broker = _GoneBroker()
    result = _handler(broker).handle_result("message", "worker", None, None)
    assert result == (None, None)
    assert broker.tried == ["ack"]
    assert "event not acknowledged, it comes again: BrokenPipeError" in caplog.text


def test_an_event_that_failed_as_the_broker_goes_is_left_for_redelivery(caplog):
    broker = _GoneBroker()
    failure = (RuntimeError, RuntimeError("database away"), None)
    result = _handler(broker).handle_result("message", "worker", None, failure)
    assert result == (None, failure)
    assert broker.tried == ["requeue"]
    assert "ConnectionResetError" in caplog.text


def test_a_reply_and_its_ack_both_failing_leave_the_service_running(monkeypatch, caplog):
    def refused(self, message, result, exc_info):
        raise ConnectionResetError(104, "Connection reset by peer")

    monkeypatch.setattr(RpcConsumer, "handle_result", refused)
    broker = _GoneBroker()
    consumer = ProvisionedRpcConsumer()
    consumer.queue_consumer = broker
    assert consumer.handle_result("message", {"id": 1}, None) == ({"id": 1}, None)
    assert broker.tried == ["ack"]
    assert "reply not delivered, request dropped: ConnectionResetError" in caplog.text
    assert "request not acknowledged: BrokenPipeError" in caplog.text
