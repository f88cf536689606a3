"""The definitions file and broker settings, without a broker."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import ssl

import pytest

from ops import provision
from overdracht import bus, config
from overdracht.contracts import EVENT_SOURCES
from overdracht.nameko_cli import broker_settings


@pytest.fixture
def settings(monkeypatch, tmp_path) -> dict[str, str]:
    monkeypatch.setenv("OVERDRACHT_ENV_FILE", str(tmp_path / "no-env-file"))
    generated = provision.generate("ovdunit")
    for name, value in generated.items():
        monkeypatch.setenv(name, value)
    config._file_values.cache_clear()
    yield generated
    config._file_values.cache_clear()


def _definitions(settings):
    return bus.definitions(bus.component_uris(settings))


def _matches(pattern: str, name: str) -> bool:
    return re.search(pattern, name) is not None


def test_every_component_gets_a_user_with_a_verifiable_password_hash(settings):
    defs = _definitions(settings)
    assert [u["name"] for u in defs["users"]] == [f"ovdunit-{c}" for c in bus.COMPONENTS]
    for user in defs["users"]:
        component = user["name"].removeprefix("ovdunit-")
        _, password, _ = bus.uri_parts(settings[f"OVERDRACHT_{component.upper()}_AMQP_URI"])
        raw = base64.b64decode(user["password_hash"])
        assert hashlib.sha256(raw[:4] + password.encode()).digest() == raw[4:]
        assert password not in json.dumps(defs)  # only hashes leave


def test_no_component_may_configure_anything_shared(settings):
    for permission in _definitions(settings)["permissions"]:
        for shared in (
            "nameko-rpc",
            "rpc-clients",
            *(bus.event_exchange(s) for s in EVENT_SOURCES),
        ):
            assert not _matches(permission["configure"], shared), permission


def test_topic_permissions_never_allow_a_wildcard_binding_on_the_rpc_exchange(settings):
    for topic in _definitions(settings)["topic_permissions"]:
        if topic["exchange"] == bus.RPC_EXCHANGE:
            for key in ("#", "*", "clients.*", "#.authorize"):
                assert not _matches(topic["read"], key), topic


def test_a_permission_names_the_whole_key_not_a_prefix(settings):
    for topic in _definitions(settings)["topic_permissions"]:
        if topic["user"] == "ovdunit-documents" and topic["exchange"] == bus.RPC_EXCHANGE:
            assert _matches(topic["write"], "clients.authorize")
            for key in ("clients.authorize\n", "clients.authorizeX", "xclients.authorize"):
                assert not _matches(topic["write"], key)


def test_only_audit_reads_the_event_queues(settings):
    for permission in _definitions(settings)["permissions"]:
        reads = any(_matches(permission["read"], bus.audit_queue(s)) for s in EVENT_SOURCES)
        assert reads == (permission["user"] == "ovdunit-audit")


def test_every_uri_must_name_the_same_vhost(settings):
    uris = bus.component_uris(settings)
    uris["cli"] = uris["cli"].rsplit("/", 1)[0] + "/elsewhere"
    with pytest.raises(ValueError, match="same vhost"):
        bus.definitions(uris)


def test_a_service_runs_with_its_own_broker_user(settings):
    chosen = broker_settings(["run", "--config", "deploy/nameko.yaml", "services.audit.service"])
    assert chosen["OVERDRACHT_NAMEKO_AMQP_URI"] == settings["OVERDRACHT_AUDIT_AMQP_URI"]
    assert json.loads(chosen["OVERDRACHT_NAMEKO_AMQP_SSL"]) is None
    with pytest.raises(SystemExit):
        broker_settings(["run", "services.audit.service", "services.auth.service"])


def test_amqps_checks_the_brokers_certificate(settings, monkeypatch):
    monkeypatch.setenv("OVERDRACHT_AMQP_CA_FILE", "/etc/overdracht/ca.pem")
    monkeypatch.setenv("OVERDRACHT_AMQP_CERT_FILE", "/etc/overdracht/client.pem")
    monkeypatch.setenv("OVERDRACHT_AMQP_KEY_FILE", "/etc/overdracht/client.key")
    assert config.amqp_ssl() == {
        "ca_certs": "/etc/overdracht/ca.pem",
        "cert_reqs": ssl.CERT_REQUIRED,
        "server_hostname": None,  # kombu fills in the broker's host name: it is checked
        "certfile": "/etc/overdracht/client.pem",
        "keyfile": "/etc/overdracht/client.key",
    }
    assert config.nameko_config("gateway")["AMQP_SSL"]["cert_reqs"] == ssl.CERT_REQUIRED
