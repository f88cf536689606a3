"""AMQP over TLS, as production runs it: a private RabbitMQ node with a TLS listener.

The components take the broker's CA from OVERDRACHT_AMQP_CA_FILE and check its
certificate; a broker whose certificate the CA did not sign is refused.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kombu import Connection, Exchange, Queue, pools
from nameko.amqp.publish import Publisher

from ops.platform import port_in_use
from ops.private import rabbitmq_node
from ops.sandbox import free_port_base
from overdracht import config


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _authority(directory: Path, name: str, host: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """A CA and a server certificate for host signed by it: (ca, cert, key) files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(issuer)
        .issuer_name(issuer)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(host))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = (directory / f"{name}-ca.pem", directory / f"{name}.pem", directory / f"{name}.key")
    files[0].write_bytes(_pem(ca))
    files[1].write_bytes(_pem(server))
    files[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return files


@pytest.fixture(scope="module")
def tls_broker() -> Iterator[tuple[str, Path]]:
    """A private node (never the machine's own) with a TLS listener: (amqps URI, its CA)."""
    # not under pytest's tmp_path: the rabbitmq user must be able to read the certificates
    certs = Path(tempfile.mkdtemp(prefix="overdracht-tls-certs-"))
    certs.chmod(0o755)
    ca, cert, key = _authority(certs, "broker")
    for path in (ca, cert, key):
        path.chmod(0o644)
    base = free_port_base()
    plain, tls, dist = base, base + 1, base + 2
    listener = (
        f"listeners.ssl.default = {tls}\n"
        f"ssl_options.cacertfile = {ca}\nssl_options.certfile = {cert}\n"
        f"ssl_options.keyfile = {key}\nssl_options.verify = verify_none\n"
    )
    try:
        with rabbitmq_node(plain, dist, listener) as node:
            deadline = time.monotonic() + 60
            while not port_in_use(tls):
                assert time.monotonic() < deadline, "the TLS listener did not open"
                time.sleep(0.3)
            node.ctl("add_user", "tls-user", "tls-password")
            node.ctl("set_permissions", "tls-user", ".*", ".*", ".*")
            yield f"amqps://tls-user:tls-password@127.0.0.1:{tls}/", ca
    finally:
        shutil.rmtree(certs, ignore_errors=True)


@pytest.fixture
def tls_settings(monkeypatch, tmp_path):
    def apply(ca: Path) -> None:
        monkeypatch.setenv("OVERDRACHT_ENV_FILE", str(tmp_path / "no-env-file"))
        monkeypatch.setenv("OVERDRACHT_AMQP_CA_FILE", str(ca))
        config._file_values.cache_clear()

    yield apply
    config._file_values.cache_clear()


def test_events_travel_over_tls_with_the_components_settings(tls_broker, tls_settings):
    uri, ca = tls_broker
    tls_settings(ca)
    exchange = Exchange("tls.events", type="topic", durable=True)
    queue = Queue("tls-audit", exchange=exchange, routing_key="#", durable=True)
    with Connection(uri, ssl=config.amqp_ssl()) as connection:
        queue(connection.default_channel).declare()
        # the publisher every service's outbox uses, with the TLS options they are given
        Publisher(uri, ssl=config.amqp_ssl(), use_confirms=True, mandatory=True).publish(
            {"event": "tls.checked"}, exchange=exchange, routing_key="tls.checked"
        )
        message = queue(connection.default_channel).get(no_ack=True)
        assert message is not None
        assert json.loads(message.body) == {"event": "tls.checked"}
        assert type(connection.connection.sock).__name__ == "SSLSocket"
    pools.reset()  # the publisher's connection lives in kombu's shared pool: close it


def test_a_broker_the_ca_did_not_sign_is_refused(tls_broker, tls_settings, tmp_path):
    uri, _ = tls_broker
    other_ca, _, _ = _authority(tmp_path, "impostor")
    tls_settings(other_ca)
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):  # noqa: PT011
        with Connection(uri, ssl=config.amqp_ssl(), connect_timeout=5) as connection:
            connection.connect()


def test_a_certificate_for_another_name_is_refused(tls_broker, tls_settings):
    """The broker answers on 127.0.0.2 too, with its certificate for 127.0.0.1: refused."""
    uri, ca = tls_broker
    tls_settings(ca)
    elsewhere = uri.replace("@127.0.0.1:", "@127.0.0.2:")
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):  # noqa: PT011
        with Connection(elsewhere, ssl=config.amqp_ssl(), connect_timeout=5) as connection:
            connection.connect()
