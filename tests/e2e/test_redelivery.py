"""A request the broker hands over again, after its service committed the work and died
before replying, gets the first run's reply: the work is not done, nor audited, twice."""

from __future__ import annotations

import json
import signal
import time
import uuid

from kombu import Connection, Consumer, Exchange, Producer, Queue, pools

from overdracht.bus import DEADLINE_HEADER, RPC_EXCHANGE
from tests.support import mobile, pdf, principal_of, valid_bsn


def _twice(platform, service: str, method: str, args: list) -> tuple[dict, dict]:
    """Send one request, then the very same message to the service hung (SIGSTOP), which is
    killed with it unacknowledged; the broker hands it to the restarted service. Returns
    both replies."""
    body = {"args": args, "kwargs": {}}
    reply_key = f"reply-gateway-{uuid.uuid4()}"
    correlation_id = f"the-one-request-{uuid.uuid4()}"
    exchange = Exchange(RPC_EXCHANGE, type="topic", durable=True, no_declare=True)
    replies: list[dict] = []

    with Connection(platform.env["OVERDRACHT_GATEWAY_AMQP_URI"]) as connection:
        channel = connection.channel()
        queue = Queue(f"rpc.{reply_key}", exchange=exchange, routing_key=reply_key, exclusive=True)
        queue(channel).declare()
        producer = Producer(channel, serializer="json")

        def send() -> None:
            # the same message both times: one correlation id, one body
            producer.publish(
                body,
                exchange=exchange,
                routing_key=f"{service}.{method}",
                reply_to=reply_key,
                correlation_id=correlation_id,
                headers={DEADLINE_HEADER: time.time() + 60},
                expiration=60,
            )

        def reply(timeout: float) -> dict:
            deadline = time.monotonic() + timeout
            while not replies and time.monotonic() < deadline:
                try:
                    connection.drain_events(timeout=1)
                except TimeoutError:
                    continue
            assert replies, "no reply"
            return replies.pop()

        with Consumer(channel, [queue], callbacks=[lambda b, m: (replies.append(b), m.ack())]):
            send()
            first = reply(15)
            assert first["error"] is None, first
            # now the same request reaches a service that hangs, and dies with it unacked:
            # the broker hands it over again, marked redelivered
            platform.send_signal(service, signal.SIGSTOP)
            try:
                send()
                time.sleep(1)  # taken by the hung process, not acknowledged
            finally:
                platform.send_signal(service, signal.SIGKILL)
                platform.stop(service)
                platform.start_again(service)
                pools.reset()
            again = reply(30)
    log = (platform.log_dir / f"{service}.log").read_text(errors="replace")
    assert f"{service}.{method} redelivered after its work committed: answered as before" in log
    return first, again


def test_a_redelivered_request_gets_its_first_reply_and_does_nothing_again(harness, platform):
    api = harness.provider()
    data = {"maiden_name": "Visser", "birth_date": "1991-02-03", "bsn": valid_bsn()}
    data["phone"] = mobile()
    first, again = _twice(
        platform, "clients", "create", [principal_of(platform, api), data, {"ip": "192.0.2.7"}]
    )
    assert again == first  # her id as the first run gave it, not a 409
    client_id = first["result"]["id"]
    events = harness.audit_until(
        lambda es: any(e["event"] == "client.created" for e in es), actor=api.account.username
    )
    about_her = [e["event"] for e in events if e["subject"] == client_id]
    assert about_her == ["client.created"], json.dumps(events, indent=1)


def test_a_redelivered_withdrawal_is_answered_as_done_not_as_not_found(harness, platform):
    api = harness.provider()
    client = harness.new_client(api)
    document_id = harness.upload(api, client["id"], pdf(10_000)).json()["id"]
    first, again = _twice(
        platform,
        "documents",
        "delete",
        [principal_of(platform, api), document_id, {"ip": "192.0.2.7"}],
    )
    assert again == first == {"result": {"deleted": document_id}, "error": None}
    events = harness.audit_until(
        lambda es: any(e["event"] == "document.deleted" for e in es), actor=api.account.username
    )
    withdrawn = [e for e in events if e["event"] == "document.deleted"]
    assert [e["object"]["id"] for e in withdrawn] == [document_id]
