"""The audit log tells a delivered download from one whose bytes never arrived.

Access is recorded before the first byte (`document.downloaded`, the grant); how the
download ended follows as `document.delivery`, naming the grant. The auditor's API and
page mark a download without a `delivered` follow-up as not delivered.
"""

from __future__ import annotations

import io
import re
import socket
import time

import pytest
import requests

from overdracht import config
from services.documents.service import INLINE_BYTES
from services.documents.storage import BlobStore, make_client
from tests.support import pdf

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def store() -> BlobStore:
    return BlobStore(make_client(), config.get("OVERDRACHT_S3_BUCKET"))


def _grant_and_delivery(harness, client_id: str) -> tuple[dict, dict | None]:
    """The client's one download record and the delivery record naming it (once there)."""
    events = harness.audit_until(
        lambda es: any(e["event"] == "document.delivery" for e in es),
        timeout=30,
        client_id=client_id,
    )
    grants = [e for e in events if e["event"] == "document.downloaded"]
    assert len(grants) == 1, events
    deliveries = [e for e in events if e["event"] == "document.delivery"]
    assert len(deliveries) <= 1, deliveries
    return grants[0], (deliveries[0] if deliveries else None)


def _page_row(harness, client_id: str, seq: int) -> str:
    """The auditor's web page (Dutch), the table row of the record with this seq."""
    response = requests.get(
        f"{harness.url}/audit",
        params={"client_id": client_id},
        headers={"Authorization": harness.auditor.headers["Authorization"]},
        timeout=30,
    )
    assert response.status_code == 200, response.text[:300]
    for row in re.findall(r"<tr data-event=[^>]*>(.*?)</tr>", response.text, re.DOTALL):
        if re.search(rf'<td class="hint">{seq}</td>\s*$', row):
            return row
    raise AssertionError(f"no row for record {seq} on the audit page")


@pytest.mark.parametrize("size", [20_000, INLINE_BYTES + 2 * MiB], ids=["small", "large"])
def test_a_download_that_arrives_whole_is_recorded_delivered(harness, size):
    api = harness.provider()
    client = harness.new_client(api)
    body = pdf(size)
    document = harness.upload(api, client["id"], body).json()
    download = api.get(f"/documents/{document['id']}/content")
    assert download.status_code == 200 and download.content == body

    grant, delivery = _grant_and_delivery(harness, client["id"])
    assert delivery is not None
    assert delivery["outcome"] == "delivered"
    assert delivery["detail"]["grant_event_id"] == grant["event_id"]
    assert delivery["detail"]["bytes_sent"] == delivery["detail"]["size"] == size
    assert "reason" not in delivery["detail"]
    assert delivery["object"] == grant["object"] and delivery["actor"] == grant["actor"]
    assert delivery["subject"] == client["id"]
    assert grant["delivered"] is True and grant["delivery"] == "delivered"

    row = _page_row(harness, client["id"], grant["seq"])
    assert 'data-delivery="delivered"' in row
    assert "afgeleverd" in row and "niet afgeleverd" not in row


def test_a_download_while_the_store_is_down_is_failed_never_delivered(harness, platform):
    api = harness.provider()
    client = harness.new_client(api)
    document = harness.upload(api, client["id"], pdf(30_000)).json()

    platform.stop("seaweedfs")
    try:
        refused = api.get(f"/documents/{document['id']}/content")
        assert refused.status_code == 503
        grant, delivery = _grant_and_delivery(harness, client["id"])
    finally:
        platform.start_object_store()

    assert delivery is not None
    assert delivery["outcome"] == "failed"
    assert delivery["detail"]["grant_event_id"] == grant["event_id"]
    assert delivery["detail"]["reason"] == "store_unavailable"
    assert delivery["detail"]["bytes_sent"] == 0
    assert grant["delivered"] is False and grant["delivery"] == "failed"

    row = _page_row(harness, client["id"], grant["seq"])
    assert 'data-delivery="failed"' in row
    assert "niet afgeleverd (mislukt)" in row


def test_a_download_of_an_altered_object_is_failed_never_delivered(harness, store):
    api = harness.provider()
    client = harness.new_client(api)
    document = harness.upload(api, client["id"], pdf(50_000)).json()
    key = f"documents/{document['id']}"
    altered = bytearray(b"".join(store.get(key)))
    altered[1000] ^= 0x20
    store.put(key, io.BytesIO(bytes(altered)))

    refused = api.get(f"/documents/{document['id']}/content")
    assert refused.status_code == 502
    grant, delivery = _grant_and_delivery(harness, client["id"])
    assert delivery is not None
    assert delivery["outcome"] == "failed"
    assert delivery["detail"]["grant_event_id"] == grant["event_id"]
    assert delivery["detail"]["reason"] == "integrity_failure"
    assert grant["delivered"] is False
    assert "niet afgeleverd (mislukt)" in _page_row(harness, client["id"], grant["seq"])


def test_a_download_the_client_cuts_off_is_interrupted_never_delivered(harness):
    api = harness.provider()
    client = harness.new_client(api)
    size = 64 * MiB  # far more than every socket buffer between documents and the client
    document = harness.upload(api, client["id"], pdf(size)).json()

    # a browser that reads the start of the answer, then goes away (a plain socket, so
    # that nothing but the test decides when it is closed)
    port = int(harness.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as browser:
        browser.sendall(
            (
                f"GET /api/v1/documents/{document['id']}/content HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{port}\r\n"
                f"Authorization: {api.headers['Authorization']}\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
        )
        received = b""
        while len(received) < MiB:
            chunk = browser.recv(64 * 1024)
            assert chunk, received[:300]
            received += chunk
        assert received.startswith(b"HTTP/1.1 200")
        time.sleep(0.5)  # the pipes fill up behind the reader that stopped reading
        # unread bytes still waiting: closing now resets the connection
    grant, delivery = _grant_and_delivery(harness, client["id"])

    assert delivery is not None, "documents did not notice the download was cut off"
    assert delivery["outcome"] in ("interrupted", "failed")
    assert delivery["detail"]["grant_event_id"] == grant["event_id"]
    assert delivery["detail"]["bytes_sent"] < size
    assert grant["delivered"] is False and grant["delivery"] == delivery["outcome"]
    row = _page_row(harness, client["id"], grant["seq"])
    assert "niet afgeleverd" in row and 'data-delivery="delivered"' not in row

    # and the same document, downloaded whole, is delivered: the cut was the difference
    with api.get(f"/documents/{document['id']}/content", stream=True) as again:
        assert again.status_code == 200
        assert sum(len(c) for c in again.iter_content(MiB)) == size
    events = harness.audit_until(
        lambda es: sum(e["event"] == "document.delivery" for e in es) == 2,
        timeout=30,
        client_id=client["id"],
    )
    outcomes = sorted(
        (e["seq"], e.get("delivered")) for e in events if e["event"] == "document.downloaded"
    )
    assert [delivered for _, delivered in outcomes] == [False, True]
