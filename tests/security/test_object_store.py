"""The object store, attacked behind S3's back: every SeaweedFS port refuses a stranger.

An insider on the machine (or the network) tries what SeaweedFS allows by default: a write
token from the master's /dir/assign, reading and overwriting a document's needle on the
volume server, reading and deleting it through the filer, anonymous S3, and the gRPC port
of each. Only S3 signed with the platform's keys gets in; what it holds is ciphertext.
"""

from __future__ import annotations

import socket
import ssl

import pytest
import requests

from overdracht import config
from services.documents.storage import BlobStore, make_client
from tests.support import pdf

# the stranger checks no certificate: verify=False is the point, not an oversight
pytestmark = pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")


@pytest.fixture(scope="module")
def stored(harness):
    """A document the platform stored, and its object key."""
    api = harness.provider()
    client = harness.new_client(api)
    body = pdf(4000)
    document = harness.upload(api, client["id"], body).json()
    return body, f"documents/{document['id']}"


def _answer(method: str, url: str, **kwargs) -> int | str:
    """The status a request gets without credentials, or why it got none."""
    try:
        return requests.request(method, url, timeout=5, verify=False, **kwargs).status_code  # noqa: S501
    except requests.RequestException as exc:
        return type(exc).__name__


def _refused(answer: int | str) -> bool:
    return isinstance(answer, str) or answer in (400, 401, 403, 404, 405)


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize(
    ("port", "method", "path"),
    [
        ("master", "GET", "/dir/assign"),
        ("master", "POST", "/dir/assign"),
        ("master", "GET", "/dir/lookup?volumeId=1"),
        ("master", "GET", "/cluster/status"),
        ("master", "GET", "/vol/status"),
        ("master", "POST", "/submit"),
        ("volume", "GET", "/status"),
        ("volume", "GET", "/1,0123456789"),
        ("volume", "POST", "/1,0123456789"),
        ("volume", "DELETE", "/1,0123456789"),
        ("filer", "GET", "/"),
        ("filer", "GET", "/buckets/"),
        ("filer", "PUT", "/buckets/planted.txt"),
        ("filer", "DELETE", "/buckets/"),
    ],
)
def test_the_master_volume_and_filer_refuse_a_stranger(platform, scheme, port, method, path):
    url = f"{scheme}://127.0.0.1:{getattr(platform.ports, port)}{path}"
    answer = _answer(method, url, data=b"x" if method in ("POST", "PUT") else None)
    assert _refused(answer), f"{method} {url} answered {answer}"


def test_the_documents_needle_cannot_be_read_or_deleted_through_the_filer(platform, stored):
    body, key = stored
    bucket = config.get("OVERDRACHT_S3_BUCKET")
    for scheme in ("http", "https"):
        url = f"{scheme}://127.0.0.1:{platform.ports.filer}/buckets/{bucket}/{key}"
        for method in ("GET", "DELETE", "PUT"):
            assert _refused(_answer(method, url, data=b"altered")), f"{method} {url}"
    store = BlobStore(make_client(), bucket)
    assert store.exists(key)  # still there, untouched


def _grpc_hello(platform, port: str, certificate: str | None) -> bytes:
    """Open TLS to a gRPC port (HTTP port + 10000), send the HTTP/2 preface, read a byte."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the server's identity is not what is tested here
    if certificate:
        tls_dir = platform.var / "seaweedfs-security" / "tls"
        context.load_cert_chain(tls_dir / f"{certificate}.crt", tls_dir / f"{certificate}.key")
    address = ("127.0.0.1", getattr(platform.ports, port) + 10000)
    with socket.create_connection(address, timeout=5) as raw, context.wrap_socket(raw) as tls:
        tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        return tls.recv(9)  # TLS 1.3 tells of a missing certificate only here, on first use


@pytest.mark.parametrize("port", ["master", "volume", "filer", "s3"])
def test_no_grpc_port_talks_to_a_client_without_a_certificate(platform, port):
    with pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED"):
        _grpc_hello(platform, port, certificate=None)
    # the control: with a certificate from the store's own CA, the port answers HTTP/2
    assert _grpc_hello(platform, port, certificate="client")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_anonymous_s3_is_refused(platform, stored, method):
    _, key = stored
    bucket = config.get("OVERDRACHT_S3_BUCKET")
    url = f"http://127.0.0.1:{platform.ports.s3}/{bucket}/{key}"
    assert _answer(method, url, data=b"altered" if method == "PUT" else None) == 403


def test_with_the_platforms_keys_s3_holds_only_ciphertext(stored):
    body, key = stored
    store = BlobStore(make_client(), config.get("OVERDRACHT_S3_BUCKET"))
    stored_bytes = b"".join(store.get(key))
    assert body[:64] not in stored_bytes and body[-64:] not in stored_bytes
