"""A request the broker hands over again, after its service committed the work and died
before replying, gets the first run's reply: the work is not done, nor audited, twice."""

from __future__ import annotations

import json
import signal
import time
import uuid

from kombu import Connection, Consumer, Exchange, Producer, Queue, pools
from nameko.standalone.rpc import ClusterRpcProxy

from overdracht import config
from overdracht.bus import DEADLINE_HEADER, RPC_EXCHANGE, standalone_replies
from overdracht.contracts import sign_system_token
from tests.support import mobile, valid_bsn


def _principal(platform, api) -> str:
    """Her principal, asked of auth as the gateway asks it for each of her requests."""
    token = api.headers["Authorization"].removeprefix("Bearer ")
    caller = sign_system_token("gateway", config.private_key("gateway"), call="auth.authenticate")
    settings = {"AMQP_URI": platform.env["OVERDRACHT_GATEWAY_AMQP_URI"], "serializer": "json"}
    with ClusterRpcProxy(settings, reply_listener_cls=standalone_replies("gateway")) as rpc:
        return rpc.auth.authenticate(caller, token)["principal"]


def test_a_redelivered_request_gets_its_first_reply_and_does_nothing_again(harness, platform):
    api = harness.provider()
    data = {"maiden_name": "Visser", "birth_date": "1991-02-03", "bsn": valid_bsn()}
    data["phone"] = mobile()
    body = {"args": [_principal(platform, api), data, {"ip": "192.0.2.7"}], "kwargs": {}}
    reply_key = f"reply-gateway-{uuid.uuid4()}"
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
                routing_key="clients.create",
                reply_to=reply_key,
                correlation_id="the-one-request",
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
            # now the same request reaches a clients that hangs, and dies with it unacked:
            # the broker hands it over again, marked redelivered
            platform.send_signal("clients", signal.SIGSTOP)
            try:
                send()
                time.sleep(1)  # taken by the hung process, not acknowledged
            finally:
                platform.send_signal("clients", signal.SIGKILL)
                platform.stop("clients")
                platform.start_again("clients")
                pools.reset()
            again = reply(30)

    assert again == first  # her id as the first run gave it, not a 409
    client_id = first["result"]["id"]
    log = (platform.log_dir / "clients.log").read_text(errors="replace")
    assert "clients.create redelivered after its work committed: answered as before" in log
    events = harness.audit_until(
        lambda es: any(e["event"] == "client.created" for e in es), actor=api.account.username
    )
    about_her = [e["event"] for e in events if e["subject"] == client_id]
    assert about_her == ["client.created"], json.dumps(events, indent=1)
