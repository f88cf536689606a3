"""BlobStore.put: the digest it returns is that of the bytes the store received."""

from __future__ import annotations

import hashlib
import io

import pytest

from services.documents.storage import PART_SIZE, BlobStore


class Client:
    """minio's put_object against memory: reads the stream as minio does, in parts."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.objects: dict[str, bytes] = {}
        self.fail_after = fail_after

    def put_object(self, bucket, key, data, length, part_size, num_parallel_uploads):
        assert length == -1 and part_size == PART_SIZE
        received = b""
        while chunk := data.read(part_size):
            received += chunk
            if self.fail_after is not None and len(received) > self.fail_after:
                raise ConnectionResetError("store away")
        self.objects[key] = received


@pytest.mark.parametrize("size", [0, 1000, PART_SIZE, PART_SIZE * 2 + 5])
def test_the_digest_is_that_of_what_was_stored(size):
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    client = Client()
    stored = BlobStore(client, "bucket").put("documents/a", io.BytesIO(body), digest=True)
    assert client.objects["documents/a"] == body
    assert stored == (hashlib.sha256(body).hexdigest(), size)


def test_without_digest_nothing_is_hashed():
    client = Client()
    assert BlobStore(client, "bucket").put("documents/a", io.BytesIO(b"abc")) is None
    assert client.objects["documents/a"] == b"abc"


def test_a_failed_store_raises_and_returns_no_digest():
    client = Client(fail_after=10)
    with pytest.raises(ConnectionResetError):
        BlobStore(client, "bucket").put("documents/a", io.BytesIO(b"y" * 100), digest=True)
    assert client.objects == {}
