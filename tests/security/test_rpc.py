"""RPC behind a fallen bus: with every broker right, no call does anything without credentials.

The methods are found by introspection, so a new one cannot be forgotten: each is called
with nothing that proves who calls (every argument None, then forged tokens) by a broker
user allowed to publish anything, and each must refuse before it reads or changes a thing.
"""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kombu import Connection, Exchange, Producer, Queue, pools
from kombu import Consumer as KombuConsumer
from nameko.rpc import Rpc
from nameko.standalone.rpc import ClusterRpcProxy

from overdracht import config
from overdracht.bus import SERVICES, standalone_replies
from overdracht.contracts import (
    Forbidden,
    Principal,
    Unauthenticated,
    sign_grant,
    sign_principal,
    sign_system_token,
)
from tests.support import principal_of, valid_bsn


def rpc_methods() -> list[tuple[str, str, int]]:
    """(service, method, number of arguments) of every RPC entrypoint of every service."""
    found = []
    for service in SERVICES:
        module = importlib.import_module(f"services.{service}.service")
        classes = [c for c in vars(module).values() if getattr(c, "name", None) == service]
        assert len(classes) == 1, service
        for name, method in inspect.getmembers(classes[0], inspect.isfunction):
            if any(isinstance(e, Rpc) for e in getattr(method, "nameko_entrypoints", ())):
                params = list(inspect.signature(method).parameters)[1:]
                found.append((service, name, len(params)))
    return found


METHODS = rpc_methods()


def test_introspection_finds_every_service_and_its_calls():
    assert {s for s, _, _ in METHODS} == set(SERVICES)
    assert ("retention", "sweep", 2) in METHODS
    assert ("clients", "authorize", 4) in METHODS
    assert len(METHODS) >= 18


FORGED_PRINCIPAL = sign_principal(
    Principal("p", "insider", "Insider", "zorgverlener", "Regio Noord", "s"),
    Ed25519PrivateKey.generate(),
)


@pytest.fixture(scope="module")
def insider_rpc(insider):
    """Calls made with the insider's login, each service's replies addressed as it sends them.

    A service replies only to the reply keys of the components that may call it, so the
    insider poses as the gateway (and as the CLI for retention) to hear the answers.
    """
    config = {"AMQP_URI": insider, "serializer": "json"}
    with (
        ClusterRpcProxy(config, timeout=30, reply_listener_cls=standalone_replies("gateway")) as g,
        ClusterRpcProxy(config, timeout=30, reply_listener_cls=standalone_replies("cli")) as c,
    ):
        yield SimpleNamespace(
            **{s: getattr(c if s == "retention" else g, s) for s in SERVICES},
        )
    pools.reset()  # the proxies publish through kombu's shared pool: close it


@pytest.mark.parametrize(("service", "method", "arity"), METHODS)
@pytest.mark.parametrize(
    "credential",
    [None, "not a token", FORGED_PRINCIPAL, "forged-system"],
    ids=["none", "garbage", "forged-principal", "forged-system-token"],
)
def test_every_rpc_refuses_a_call_without_credentials(
    insider_rpc, service, method, arity, credential
):
    if credential == "forged-system":
        credential = sign_system_token(service, Ed25519PrivateKey.generate())
    args = [credential] + [None] * (arity - 1)
    with pytest.raises(Unauthenticated):
        getattr(getattr(insider_rpc, service), method)(*args)


@pytest.mark.parametrize("method", ["query", "export", "find_client"])
def test_a_providers_own_principal_opens_no_auditor_call(harness, platform, insider_rpc, method):
    """Her real principal, sent straight to audit by someone with a broker login: refused
    by audit itself (not only by the gateway's pages), and the refusal recorded."""
    api = harness.provider()
    criteria = {"birth_date": "1990-01-01", "bsn": valid_bsn()}
    argument = criteria if method == "find_client" else {}
    with pytest.raises(Forbidden):
        getattr(insider_rpc.audit, method)(
            principal_of(platform, api), argument, {"ip": "192.0.2.9"}
        )
    denied = harness.audit_until(
        lambda es: any(e["detail"].get("action") == f"audit.{method}" for e in es),
        actor=api.account.username,
        event="access.denied",
    )
    assert [(e["outcome"], e["detail"]["reason"]) for e in denied] == [("denied", "role")]


def test_wiping_everything_through_retention_is_refused(harness, insider_rpc):
    """retention.sweep("2099-12-31") would remove every document and client."""
    api = harness.provider()
    client = harness.new_client(api)
    document = harness.upload(api, client["id"]).json()
    forged = sign_system_token("operator", Ed25519PrivateKey.generate())
    for token in (None, forged, "2099-12-31"):
        with pytest.raises(Unauthenticated):
            insider_rpc.retention.sweep(token, "2099-12-31")
    listed = api.get(f"/clients/{client['id']}/documents").json()["documents"]
    assert [d["id"] for d in listed] == [document["id"]]


@contextmanager
def impostor_answering(insider_uri: str, service: str, result) -> Iterator[list]:
    """Consume rpc-<service> with the insider's login and answer every call with result."""
    answered: list = []
    stop = threading.Event()
    ready = threading.Event()

    def serve() -> None:
        with Connection(insider_uri) as connection:
            channel = connection.channel()
            producer = Producer(channel, serializer="json")
            exchange = Exchange("nameko-rpc", type="topic", durable=True, no_declare=True)

            def reply(body, message) -> None:
                key = message.delivery_info["routing_key"]
                answered.append(key)
                producer.publish(
                    {"result": result(key, body), "error": None},
                    exchange=exchange,
                    routing_key=message.properties["reply_to"],
                    correlation_id=message.properties["correlation_id"],
                )
                message.ack()

            queue = Queue(f"rpc-{service}", no_declare=True)
            with KombuConsumer(channel, queues=[queue], callbacks=[reply], accept=["json"]):
                ready.set()
                while not stop.is_set():
                    try:
                        connection.drain_events(timeout=0.2)
                    except TimeoutError:
                        continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield answered
    finally:
        stop.set()
        thread.join(10)


def test_documents_acts_only_on_a_grant_clients_signed(harness, platform, insider):
    """Someone answers clients.authorize in clients' place: documents still shows nothing."""
    owner = harness.provider()
    client = harness.new_client(owner)
    harness.upload(owner, client["id"])
    stranger = harness.provider()
    assert stranger.get(f"/clients/{client['id']}/documents").status_code == 403

    forged_key = Ed25519PrivateKey.generate()
    grants = iter(["not a grant", None, "forged-signature"])

    def allowed(key, body):
        if key != "clients.authorize":
            return []  # the retention timer asks too: it hears of nothing to remove
        grant = next(grants, "forged-signature")
        if grant == "forged-signature":
            # everything right (her provider id and session, the client, the action) but
            # the key: only the signature can give it away
            claims = jwt.decode(body["args"][0], options={"verify_signature": False})
            who = Principal(**{f: claims[f] for f in Principal.__dataclass_fields__})
            grant = sign_grant(who, body["args"][1], body["args"][2], forged_key)
        return {"id": body["args"][1], "name": "Jansen", "due_date": None, "grant": grant}

    platform.stop("clients")
    try:
        with impostor_answering(insider, "clients", allowed) as answered:
            for _ in range(3):
                response = stranger.get(f"/clients/{client['id']}/documents")
                assert response.status_code == 403, response.text
                assert "documents" not in response.json()
        # the impostor did answer every call (the retention timer's calls to clients too)
        assert answered.count("clients.authorize") == 3
    finally:
        platform.start_again("clients")
        pools.reset()
    listed = owner.get(f"/clients/{client['id']}/documents")
    assert listed.status_code == 200 and len(listed.json()["documents"]) == 1


def test_a_callers_token_is_good_for_the_one_call_it_names(harness, insider_rpc):
    """A token taken from the bus cannot be spent elsewhere: a listing's on a deletion."""
    api = harness.provider()
    client = harness.new_client(api)
    key = config.private_key("system")  # retention's real key: only the call it names differs
    listing = sign_system_token("retention", key, call="clients.deletion_candidates")
    assert isinstance(insider_rpc.clients.deletion_candidates(listing, "2000-01-01", None, 1), list)
    for token in (listing, sign_system_token("retention", key)):
        with pytest.raises(Unauthenticated):
            insider_rpc.clients.delete_clients(token, [client["id"]], "stolen token")
    assert api.get(f"/clients/{client['id']}/documents").status_code == 200
