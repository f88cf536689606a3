"""RPC behind a fallen bus: with every broker right, no call does anything without credentials.

The methods are found by introspection, so a new one cannot be forgotten: each is called
with nothing that proves who calls (every argument None, then forged tokens) by a broker
user allowed to publish anything, and each must refuse before it reads or changes a thing.
"""

from __future__ import annotations

import importlib
import inspect

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kombu import pools
from nameko.rpc import Rpc
from nameko.standalone.rpc import ClusterRpcProxy

from overdracht.bus import SERVICES
from overdracht.contracts import Principal, Unauthenticated, sign_principal, sign_system_token


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
    with ClusterRpcProxy({"AMQP_URI": insider, "serializer": "json"}, timeout=30) as rpc:
        yield rpc
    pools.reset()  # the proxy publishes through kombu's shared pool: close it


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
