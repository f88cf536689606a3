"""nameko's entrypoints, adapted to a provisioned bus with a user per component.

- `rpc`: the caller's errors are logged as expected, not as bugs; the service's RPC queue
  and its binding come from provisioning, so the service needs no right to declare them;
  a request whose deadline passed before it was picked up is dropped unanswered; a
  request the broker redelivers after its first run committed gets that run's reply.
- `event_handler`: consumes a provisioned event queue and hands the handler the sender
  the broker validated (the message's `user_id`) and the message's size, so the audit
  service can refuse what the owner of an event name did not publish.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

from nameko.events import SERVICE_POOL, EventHandler
from nameko.exceptions import ContainerBeingKilled
from nameko.rpc import Rpc, RpcConsumer

from overdracht import config
from overdracht.bus import DEADLINE_HEADER, REQUEST, adapt_nameko, deadline_of, request_key
from overdracht.contracts import EVENT_SOURCES, OverdrachtError, check_envelope
from overdracht.db import Database

adapt_nameko()

log = logging.getLogger(__name__)


class ProvisionedRpcConsumer(RpcConsumer):
    """Consumes rpc-<service> as provisioned: no queue declaration, no binding of `<svc>.*`."""

    def setup(self) -> None:
        super().setup()
        self.queue.no_declare = True

    def handle_result(self, message: Any, result: Any, exc_info: Any) -> Any:
        """Reply; a reply that cannot be sent is logged, and does not end the service.

        nameko's responder raises when the broker refuses the reply (a reply key this
        service may not use, sent by a caller who is not what it claims) and that kills
        the whole container: one bad request must not take a service down.
        """
        try:
            return super().handle_result(message, result, exc_info)
        except Exception as exc:  # noqa: BLE001 - any failure to reply, see above
            log.error("reply not delivered, request dropped: %s", type(exc).__name__)
            try:
                self.queue_consumer.ack_message(message)
            except Exception as ack_failure:  # noqa: BLE001 - the broker itself is away
                log.error("request not acknowledged: %s", type(ack_failure).__name__)
            return result, exc_info


class ProvisionedRpc(Rpc):
    rpc_consumer = ProvisionedRpcConsumer()

    def handle_message(self, body: Any, message: Any) -> None:
        """Drop a request its caller no longer waits for: it must have no effect at all.

        The broker drops such requests itself (they expire), but not one it had already
        delivered to a service that then hung; the caller was told 503 meanwhile.
        """
        deadline = deadline_of(message.headers, DEADLINE_HEADER)
        if deadline is not None and deadline <= time.time():
            log.warning(
                "%s.%s dropped: its caller stopped waiting %.1f s ago",
                self.container.service_name,
                self.method_name,
                time.time() - deadline,
            )
            self.rpc_consumer.queue_consumer.ack_message(message)
            return
        if message.delivery_info.get("redelivered"):
            reply = self._first_reply(message)
            if reply is not None:
                log.warning(
                    "%s.%s redelivered after its work committed: answered as before",
                    self.container.service_name,
                    self.method_name,
                )
                self.rpc_consumer.handle_result(message, reply, None)
                return
        super().handle_message(body, message)

    def unpack_message_headers(self, message: Any) -> dict[str, Any]:
        data = super().unpack_message_headers(message)
        # the message's own key, not one a header (passed on from call to call) names
        data[REQUEST] = request_key(message.properties.get("correlation_id"), message.body)
        return data

    def _first_reply(self, message: Any) -> Any:
        """The reply the request's first run committed with its work, if any."""
        for dependency in self.container.dependencies:
            if isinstance(dependency, Database) and dependency.answers is not None:
                key = request_key(message.properties.get("correlation_id"), message.body)
                try:
                    return dependency.stored_answer(key)
                except Exception as exc:  # noqa: BLE001 - then it runs again, and fails or not
                    log.error("stored reply unreadable: %s", type(exc).__name__)
        return None


rpc = ProvisionedRpc.decorator(expected_exceptions=(OverdrachtError,))


class AttributedEventHandler(EventHandler):
    """A reliable SERVICE_POOL handler called as handler(payload, sender, size)."""

    def setup(self) -> None:
        super().setup()
        self.queue.no_declare = True  # the audit user may consume, not declare or bind

    def handle_message(self, body: Any, message: Any) -> None:
        # as nameko's Consumer.handle_message, with the validated sender and the raw size
        args = (body, message.properties.get("user_id"), len(message.body or b""))
        context_data = self.unpack_message_headers(message)
        handle_result = partial(self.handle_result, message)
        try:
            self.container.spawn_worker(
                self, args, {}, context_data=context_data, handle_result=handle_result
            )
        except ContainerBeingKilled:
            self.queue_consumer.requeue_message(message)

    def handle_result(self, message: Any, worker_ctx: Any, result: Any, exc_info: Any) -> Any:
        """Ack (or requeue); if the broker went away meanwhile, log it and carry on.

        nameko catches only amqp's own ConnectionError here; a socket error (the broker
        stopped while the event was being stored) would kill the whole container. The
        event stays unacknowledged, the broker delivers it again, and audit stores each
        event id once.
        """
        try:
            return super().handle_result(message, worker_ctx, result, exc_info)
        except Exception as exc:  # noqa: BLE001 - any failure to settle the message
            log.error("event not acknowledged, it comes again: %s", type(exc).__name__)
            return result, exc_info


def event_handler(source: str, event: str = "#") -> Any:
    """Events of one source service (every one, or one name), requeued (never lost) when
    the handler fails."""
    return AttributedEventHandler.decorator(
        source, event, handler_type=SERVICE_POOL, requeue_on_error=True
    )


def check_sender(source: str, sender: str | None, size: int, payload: Any) -> dict[str, Any]:
    """The envelope, if the broker-validated sender owns its event name; else ValueError.

    RabbitMQ refuses a message whose user_id is not the publishing connection's own user,
    so user_id names who really published it, whatever the payload claims.
    """
    limit = config.get_int("OVERDRACHT_MAX_EVENT_BYTES")
    if size > limit:
        raise ValueError(f"event of {size} bytes exceeds {limit}")
    expected = config.get("OVERDRACHT_BUS_USER_PREFIX") + source
    if sender != expected:
        raise ValueError(f"published by {sender or 'an unnamed sender'!r}, not by {expected!r}")
    envelope = check_envelope(payload)
    if envelope["event"] not in EVENT_SOURCES[source]:
        raise ValueError(f"{source} does not publish {envelope['event']!r}")
    return envelope
