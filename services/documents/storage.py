"""The object store behind one small interface: put a stream, get a stream, remove.

It stores bytes as they are given: the documents service encrypts before it puts and
decrypts after it gets (crypto.py), so what is here is what the store holds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any, BinaryIO

import urllib3
import urllib3.connection
from eventlet.semaphore import Semaphore
from minio import Minio
from minio.error import S3Error
from nameko.extensions import DependencyProvider

from overdracht import config
from services.documents.streams import Hashing, RawReader, Stored

PART_SIZE = 8 * 1024 * 1024


class _Connection(urllib3.connection.HTTPConnection):
    """Sends a body as a memoryview of its bytes.

    eventlet's sendall sends `data[sent:]` after every partial send, and for bytes that is
    a copy of all that is left: every part went out as a series of copies of its rest,
    in documents' CPU and memory. A memoryview's slices copy nothing. (Without eventlet,
    as in the benchmark's direct transfers, sendall never copied.)
    """

    def send(self, data: Any) -> None:
        super().send(memoryview(data) if isinstance(data, bytes) else data)


class _SecureConnection(urllib3.connection.HTTPSConnection):
    send = _Connection.send


class _Pool(urllib3.HTTPConnectionPool):
    ConnectionCls = _Connection


class _SecurePool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _SecureConnection


def make_client() -> Minio:
    # fail within seconds when the store is away, instead of minio's long default retrying
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=5, read=120),
        retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)),
    )
    http.pool_classes_by_scheme = {"http": _Pool, "https": _SecurePool}
    return Minio(
        config.get("OVERDRACHT_S3_ENDPOINT"),
        http_client=http,
        access_key=config.get("OVERDRACHT_S3_ACCESS_KEY"),
        secret_key=config.get("OVERDRACHT_S3_SECRET_KEY"),
        secure=config.get_bool("OVERDRACHT_S3_SECURE"),
        region=config.get("OVERDRACHT_S3_REGION"),
    )


class BlobStore:
    def __init__(self, client: Minio, bucket: str, puts: Any = None) -> None:
        """puts: a semaphore every put holds while it runs (a cap on puts at once), or None."""
        self.client = client
        self.bucket = bucket
        self._puts = puts if puts is not None else contextlib.nullcontext()

    def ensure_bucket(self) -> None:
        if not self.client.bucket_exists(self.bucket):
            self.client.make_bucket(self.bucket)

    def put(self, key: str, stream: BinaryIO, digest: bool = False) -> Stored | None:
        """Store a stream of unknown length; a failed read aborts the multipart upload.

        With digest, returns the SHA-256 and the length of the bytes stored (documents
        holds a large object against them as it serves it).
        """
        source = Hashing(stream) if digest else stream
        with self._puts:
            self.client.put_object(
                self.bucket, key, source, length=-1, part_size=PART_SIZE, num_parallel_uploads=1
            )
        return source.stored() if isinstance(source, Hashing) else None

    def get(self, key: str, chunk_size: int = 256 * 1024) -> Iterator[bytes]:
        """Stream an object's bytes; the connection is released when the iterator ends."""
        response = self.client.get_object(self.bucket, key)

        def chunks() -> Iterator[bytes]:
            try:
                yield from response.stream(chunk_size)
            finally:
                response.close()
                response.release_conn()

        return chunks()

    def open(self, key: str, etag: str | None = None) -> ObjectReader:
        """An object as a readable file; with etag, only that version of it (If-Match)."""
        headers = {"If-Match": etag} if etag else None
        return ObjectReader(self.client.get_object(self.bucket, key, request_headers=headers))

    def remove(self, key: str) -> None:
        """Remove an object; removing one that is already gone is not an error."""
        self.client.remove_object(self.bucket, key)

    def exists(self, key: str) -> bool:
        try:
            self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in {"NoSuchKey", "NoSuchObject"}:
                return False
            raise
        return True

    def objects(self, prefix: str) -> Iterator[tuple[str, datetime | None]]:
        """(key, last modified) of every object under prefix, page by page."""
        for found in self.client.list_objects(self.bucket, prefix=prefix, recursive=True):
            if not found.is_dir and found.object_name.startswith(prefix):
                yield found.object_name, found.last_modified

    def unfinished_uploads(self, prefix: str) -> Iterator[tuple[str, str, datetime | None]]:
        """(key, upload id, initiated) of every multipart upload under prefix never completed.

        minio has no public call for S3's ListMultipartUploads, only this low-level one;
        and its result drops the next upload-id marker (a misspelt attribute in 7.2), so
        it is read where it lands.
        """
        key_marker = upload_marker = None
        while True:
            page = self.client._list_multipart_uploads(  # noqa: SLF001 - see above
                self.bucket,
                prefix=prefix,
                key_marker=key_marker,
                upload_id_marker=upload_marker,
                max_uploads=1000,
            )
            for upload in page.uploads:
                if upload.object_name.startswith(prefix) and upload.upload_id:
                    yield upload.object_name, upload.upload_id, upload.initiated_time
            key_marker = page.next_key_marker
            upload_marker = page.next_upload_id_marker or getattr(
                page, "self._next_upload_id_marker", None
            )
            if not page.is_truncated or not key_marker:
                return

    def abort_upload(self, key: str, upload_id: str) -> None:
        """Abort an unfinished multipart upload: its parts are freed."""
        self.client._abort_multipart_upload(self.bucket, key, upload_id)  # noqa: SLF001


class ObjectReader(RawReader):
    """An object's bytes, read as they arrive; closing it releases the connection."""

    def __init__(self, response: Any) -> None:
        super().__init__()
        self._response = response
        self.etag: str | None = response.headers.get("ETag")
        length = response.headers.get("Content-Length")
        self.length: int | None = int(length) if length and length.isdigit() else None

    def read(self, size: int = -1) -> bytes:
        return self._response.read(None if size < 0 else size)

    def close(self) -> None:
        if not self.closed:
            self._response.close()
            self._response.release_conn()
        super().close()


class Storage(DependencyProvider):
    """Injects the BlobStore on the configured bucket.

    At most OVERDRACHT_STORE_PUTS puts run at once: each holds a part of up to PART_SIZE
    in memory (a larger document's part twice for a moment: minio slices it), plus Tink's
    buffers, and ten transfer workers all uploading grew documents by 120 MiB. An upload
    beyond the cap waits before it reads more than its first 8 KiB; its sender's bytes
    wait in the gateway's socket meanwhile, which costs the sender none of its pace.
    """

    def setup(self) -> None:
        puts = Semaphore(config.get_int("OVERDRACHT_STORE_PUTS"))
        self.store = BlobStore(make_client(), config.get("OVERDRACHT_S3_BUCKET"), puts)

    def get_dependency(self, worker_ctx: Any) -> BlobStore:
        return self.store
