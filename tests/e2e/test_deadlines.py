"""A request its caller gave up on has no effect: the hung service drops it when it resumes."""

from __future__ import annotations

import signal
import time
import uuid

from kombu import Connection, Consumer, Exchange, Queue, pools

from overdracht import bus, config
from tests.support import mobile, valid_bsn


def test_a_hung_service_does_nothing_for_callers_that_gave_up(harness, platform):
    """clients hangs (SIGSTOP): the user gets 503 in time, and after SIGCONT nothing happened."""
    api = harness.provider()
    known = harness.new_client(api)
    data = {
        "maiden_name": "Bakker",
        "birth_date": "1990-05-01",
        "bsn": valid_bsn(),
        "phone": mobile(),
    }
    patience = float(config.get("OVERDRACHT_RPC_TIMEOUT")) + 2

    platform.send_signal("clients", signal.SIGSTOP)
    try:
        answers = []
        for method, path, body in (
            ("post", "/clients", data),
            ("post", "/clients/search", {"birth_date": data["birth_date"], "bsn": data["bsn"]}),
            ("get", f"/clients/{known['id']}/documents", None),  # documents asks clients
        ):
            started = time.monotonic()
            response = getattr(api, method)(path, json=body)
            answers.append((path, response.status_code, time.monotonic() - started))
    finally:
        platform.send_signal("clients", signal.SIGCONT)

    for path, status, seconds in answers:
        assert status == 503, (path, status)
        assert seconds <= patience, (path, seconds)

    # clients is back: it answers again, and what it found waiting it dropped
    deadline = time.monotonic() + 30
    while True:
        found = api.post(
            "/clients/search", json={"birth_date": data["birth_date"], "bsn": data["bsn"]}
        )
        if found.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert found.status_code == 200, found.text
    assert found.json()["results"] == []  # the client the user was told failed does not exist

    events = harness.audit_until(
        lambda es: any(e["event"] == "client.searched" for e in es),
        actor=api.account.username,
    )
    by_name = sorted(e["event"] for e in events if e["event"] != "provider.logged_in")
    # her first client, and the one search that answered: not the search, creation or
    # document list that were dropped
    assert by_name == ["client.created", "client.searched"], by_name
    log = (platform.log_dir / "clients.log").read_text(errors="replace")
    assert "dropped: its caller stopped waiting" in log


def test_rpc_requests_and_replies_are_transient(platform):
    """Neither outlives its caller, so the broker must not write them to disk: auth's
    reply comes back with delivery mode 1 (nameko sends everything persistent; the
    request's side is in tests/unit/test_deadlines.py)."""
    uri = platform.env["OVERDRACHT_GATEWAY_AMQP_URI"]
    reply_key = f"reply-gateway-{uuid.uuid4()}"
    exchange = Exchange(bus.RPC_EXCHANGE, type="topic", durable=True, no_declare=True)
    replies: list = []
    with Connection(uri) as connection:
        channel = connection.channel()
        queue = Queue(f"rpc.{reply_key}", exchange=exchange, routing_key=reply_key, exclusive=True)
        queue(channel).declare()
        with Consumer(channel, [queue], callbacks=[lambda body, m: (replies.append(m), m.ack())]):
            bus.DeadlinePublisher(uri).publish(
                {"args": ["not a caller token", "not a session"], "kwargs": {}},
                exchange=exchange,
                routing_key="auth.authenticate",
                reply_to=reply_key,
                correlation_id=str(uuid.uuid4()),
            )
            deadline = time.monotonic() + 15
            while not replies and time.monotonic() < deadline:
                try:
                    connection.drain_events(timeout=1)
                except TimeoutError:
                    continue
    pools.reset()  # the publisher's pooled connection
    assert replies, "auth did not reply"
    (reply,) = replies
    assert reply.payload["error"]["exc_type"] == "Unauthenticated"
    assert reply.properties["delivery_mode"] == 1
