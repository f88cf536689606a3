"""documents' HTTP port (file bodies) as an insider on the network would try it.

Only a one-time ticket, issued to the gateway over the bus after every check, opens it.
Without one the answer comes before a byte of the body is read: a stranger cannot make
documents read, store or wait for anything.
"""

from __future__ import annotations

import socket
import time

import pytest
import requests


def _put_headers_only(port: int, ticket: str | None, length: int) -> tuple[bytes, float]:
    """Send a PUT's headers announcing length bytes, none of the body; return the answer."""
    headers = [
        "PUT /internal/uploads HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        f"Content-Length: {length}",
        "Content-Type: application/octet-stream",
    ]
    if ticket is not None:
        headers.append(f"X-Overdracht-Ticket: {ticket}")
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())
        answer = sock.recv(4096)
    return answer, time.monotonic() - started


@pytest.mark.parametrize("ticket", [None, "", "forged-ticket-" + "x" * 30])
def test_an_upload_without_a_valid_ticket_is_refused_before_its_body(platform, ticket):
    answer, seconds = _put_headers_only(platform.ports.documents, ticket, 50 * 1024 * 1024)
    assert answer.startswith(b"HTTP/1.1 404"), answer[:200]
    assert b'"code": "not_found"' in answer or b'"code":"not_found"' in answer, answer
    assert seconds < 5  # answered while the body never came: it was not waited for


@pytest.mark.parametrize("ticket", [None, "forged-ticket-" + "x" * 30])
def test_a_download_without_a_valid_ticket_is_refused(platform, ticket):
    url = f"http://127.0.0.1:{platform.ports.documents}/internal/downloads"
    headers = {} if ticket is None else {"X-Overdracht-Ticket": ticket}
    refused = requests.get(url, headers=headers, timeout=10)
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "not_found"
