"""File bodies stream: a large document goes through whole and never lands on local disk."""

from __future__ import annotations

import hashlib

from tests.support import pdf

MiB = 1024 * 1024


def test_a_100_mib_document_goes_through_whole_and_leaves_no_file(harness, platform):
    api = harness.provider()
    client = harness.new_client(api)
    body = pdf(100 * MiB)
    response = harness.upload(api, client["id"], body, filename="groot.pdf")
    assert response.status_code == 201, response.text
    document = response.json()
    assert document["size"] == len(body)
    assert document["sha256"] == hashlib.sha256(body).hexdigest()

    with api.get(f"/documents/{document['id']}/content", stream=True) as download:
        assert download.status_code == 200
        digest = hashlib.sha256()
        for chunk in download.iter_content(MiB):
            digest.update(chunk)
    assert digest.hexdigest() == document["sha256"]

    # every process of the platform has TMPDIR here: a spooled upload would have left a file
    assert list((platform.var / "tmp").iterdir()) == []
