"""Document bodies are encrypted before they leave the documents service.

Envelope encryption with Tink. Every document gets its own streaming-AEAD data key
(Tink's AES256_GCM_HKDF_1MB with segments of 256 KiB: AES-256-GCM in segments, each
authenticated, the last one marked as last). The data key is wrapped by a master key
from configuration, a Tink AEAD keyset named by a key id, and kept with that key id in
the document's row; the object store only ever holds ciphertext. The document id is the
associated data of both the wrapping and the stream, so neither a wrapped key nor an
object put under another document decrypts. Deleting the row destroys the only copy of the data key.

Nothing here touches local disk: ciphertext is produced as the uploader's bytes arrive
and pulled by the object store client; plaintext is produced as the object is read.
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

import sqlalchemy as sa
import tink
from eventlet.semaphore import Semaphore
from nameko.extensions import DependencyProvider
from sqlalchemy.orm import Session
from tink import aead, json_proto_keyset_format, proto_keyset_format, secret_key_access
from tink import streaming_aead as tink_streaming
from tink.proto import aes_gcm_hkdf_streaming_pb2, tink_pb2

from overdracht import config
from services.documents.streams import Hashing, RawReader

aead.register()
tink_streaming.register()

StreamingAead = tink_streaming.StreamingAead

#: a new data key's ciphertext segment. Tink holds about a segment of ciphertext and one of
#: plaintext for every open stream: with 1 MiB segments, 20 decrypting streams took 58 MiB
#: and encrypting in pieces of 256 KiB was three times slower (see docs/design.md). A data
#: key's keyset names its own segment size: objects written in 1 MiB segments still decrypt.
SEGMENT = 256 * 1024


def _data_key_template(segment: int) -> tink_pb2.KeyTemplate:
    """Tink's AES256_GCM_HKDF_1MB (AES-256-GCM, keys derived per object by HKDF-SHA256)
    with another segment size; Tink's own function for this is deprecated."""
    base = tink_streaming.streaming_aead_key_templates.AES256_GCM_HKDF_1MB
    key_format = aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingKeyFormat.FromString(base.value)
    key_format.params.ciphertext_segment_size = segment
    return tink_pb2.KeyTemplate(
        type_url=base.type_url,
        value=key_format.SerializeToString(),
        output_prefix_type=base.output_prefix_type,
    )


#: a document's data key: AES-256-GCM, HKDF-derived per object, authenticated segments
DATA_KEY_TEMPLATE = _data_key_template(SEGMENT)
#: a master key, for wrapping data keys
MASTER_KEY_TEMPLATE = aead.aead_key_templates.AES256_GCM
#: plaintext is encrypted, and decrypted plaintext handed on, in pieces of this size. A
#: download holds the piece it read and the one held back: with pieces of 1 MiB, 20
#: downloads at once grew documents 13 MiB more, for no less CPU
CHUNK = 256 * 1024
#: the most ciphertext an encrypting reader prepares for one read (minio asks for a part,
#: 8 MiB, and a byte): one large read instead of many small ones it would concatenate
MAX_READ = 9 * 1024 * 1024
#: the stored object is read this much at a time to check it against its recorded SHA-256
VERIFY_READ = 1024 * 1024
#: what a master key id may look like (it is stored in every document's row)
KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class KeyConfigError(ValueError):
    """The master keys in the configuration are unusable (never says what they hold)."""


class MissingMasterKey(KeyConfigError):
    """A data key is wrapped by a master key the configuration no longer has."""

    def __init__(self, key_ids: Iterable[str]) -> None:
        self.key_ids = sorted(key_ids)
        super().__init__(
            f"hoofdsleutel {', '.join(self.key_ids)} ontbreekt in OVERDRACHT_MASTER_KEYS"
        )


class IntegrityError(Exception):
    """Stored bytes (an object, a wrapped key) fail authentication or differ from the row."""


def associated_data(document_id: uuid.UUID | str) -> bytes:
    """What binds a wrapped key and an object to their document: its id, canonical form."""
    return str(uuid.UUID(str(document_id))).encode()


@dataclass(frozen=True)
class WrappedKey:
    """A document's data key as stored: encrypted by the master key named master_key_id."""

    master_key_id: str
    wrapped: bytes


class MasterKeys:
    """The configured master keys: the current one wraps, any configured one unwraps."""

    def __init__(self, current: str, keysets: Mapping[str, Any]) -> None:
        if not isinstance(current, str) or not KEY_ID.fullmatch(current):
            raise KeyConfigError("OVERDRACHT_MASTER_KEY_ID is not a valid key id")
        self._aeads: dict[str, aead.Aead] = {}
        for key_id, keyset in keysets.items():
            if not KEY_ID.fullmatch(key_id):
                raise KeyConfigError(f"OVERDRACHT_MASTER_KEYS: {key_id!r} is not a valid key id")
            text = keyset if isinstance(keyset, str) else json.dumps(keyset)
            try:
                handle = json_proto_keyset_format.parse(text, secret_key_access.TOKEN)
                self._aeads[key_id] = handle.primitive(aead.Aead)
            except (tink.TinkError, ValueError, TypeError) as exc:
                raise KeyConfigError(
                    f"OVERDRACHT_MASTER_KEYS: {key_id!r} is not a Tink AEAD keyset in JSON"
                ) from exc
        if current not in self._aeads:
            raise MissingMasterKey([current])
        self.current = current

    @classmethod
    def from_config(cls) -> MasterKeys:
        current, keysets = config.master_keys()
        return cls(current, keysets)

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self._aeads)

    def new_data_key(self, document_id: uuid.UUID) -> tuple[StreamingAead, WrappedKey]:
        """A fresh data key for one document, and how it is stored (wrapped by the current key)."""
        handle = tink.new_keyset_handle(DATA_KEY_TEMPLATE)
        return handle.primitive(StreamingAead), self._wrap(handle, document_id)

    def data_key(self, key: WrappedKey, document_id: uuid.UUID) -> StreamingAead:
        """Unwrap a document's data key; IntegrityError when it was altered or moved."""
        return self._unwrap(key, document_id).primitive(StreamingAead)

    def rewrap(self, key: WrappedKey, document_id: uuid.UUID) -> WrappedKey:
        """The same data key, wrapped by the current master key."""
        return self._wrap(self._unwrap(key, document_id), document_id)

    def _wrap(self, handle: tink.KeysetHandle, document_id: uuid.UUID) -> WrappedKey:
        wrapped = proto_keyset_format.serialize_encrypted(
            handle, self._aeads[self.current], associated_data(document_id)
        )
        return WrappedKey(self.current, wrapped)

    def _unwrap(self, key: WrappedKey, document_id: uuid.UUID) -> tink.KeysetHandle:
        master = self._aeads.get(key.master_key_id)
        if master is None:
            raise MissingMasterKey([key.master_key_id])
        try:
            return proto_keyset_format.parse_encrypted(
                key.wrapped, master, associated_data(document_id)
            )
        except tink.TinkError as exc:
            raise IntegrityError("the wrapped data key does not decrypt") from exc


def new_master_keyset() -> dict[str, Any]:
    """A fresh master key: a Tink AEAD keyset (AES-256-GCM), as Tink's JSON."""
    handle = tink.new_keyset_handle(MASTER_KEY_TEMPLATE)
    return json.loads(json_proto_keyset_format.serialize(handle, secret_key_access.TOKEN))


def master_key_settings(keysets: Mapping[str, Any], current: str) -> dict[str, str]:
    """OVERDRACHT_MASTER_KEYS (one line of JSON, fit for a dotenv file) and _MASTER_KEY_ID."""
    return {
        "OVERDRACHT_MASTER_KEYS": json.dumps(dict(keysets), separators=(",", ":")),
        "OVERDRACHT_MASTER_KEY_ID": current,
    }


def generate_master_keys(key_id: str = "k1") -> dict[str, str]:
    """Settings with one fresh master key, for a development or test platform."""
    return master_key_settings({key_id: new_master_keyset()}, key_id)


# --- streams -------------------------------------------------------------------------------


class _Ciphertext(io.RawIOBase):
    """Where Tink writes ciphertext: a queue the encrypting reader hands on from."""

    def __init__(self) -> None:
        super().__init__()
        self.pieces: collections.deque[bytes] = collections.deque()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.pieces.append(bytes(data))
        self.size += len(data)
        return len(data)

    def take(self, size: int) -> bytes:
        """Up to size bytes from the front of the queue."""
        taken: list[bytes] = []
        while self.pieces and size > 0:
            piece = self.pieces.popleft()
            if len(piece) > size:
                self.pieces.appendleft(piece[size:])
                piece = piece[:size]
            taken.append(piece)
            size -= len(piece)
            self.size -= len(piece)
        return taken[0] if len(taken) == 1 else b"".join(taken)


class EncryptingReader:
    """Ciphertext of a plaintext stream, to be pulled with read(): what an S3 upload reads.

    Tink's encrypting stream is pushed (plaintext is written in, ciphertext comes out at its
    destination); the object store client pulls. Each read(size) feeds the plaintext on in
    CHUNK pieces until size bytes of ciphertext are ready (at most MAX_READ) or the
    plaintext ends, so what is held is what the reader asked for, plus a segment and a
    chunk. Errors of the plaintext stream (TooLarge) pass through unchanged.
    """

    def __init__(self, plaintext: BinaryIO, data_key: StreamingAead, document_id: uuid.UUID):
        self._plaintext = plaintext
        self._out = _Ciphertext()
        self._encrypting = data_key.new_encrypting_stream(self._out, associated_data(document_id))
        self._finished = False

    def read(self, size: int = -1) -> bytes:
        ready = min(size, MAX_READ) if size >= 0 else None
        while not self._finished and (ready is None or self._out.size < ready):
            chunk = self._plaintext.read(CHUNK)
            if chunk:
                self._encrypting.write(chunk)
            else:
                self._encrypting.close()  # writes the last segment (and closes _out)
                self._finished = True
        return self._out.take(size if size >= 0 else self._out.size)


class _Source(RawReader):
    """A ciphertext source for Tink that remembers its own failure.

    Tink calls read() from C++ and turns any exception raised there into a TinkError, which
    would make a store that went away look like altered bytes. The original is kept here.
    """

    def __init__(self, source: BinaryIO) -> None:
        super().__init__()
        self._source = source
        self.failure: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            return self._source.read(size)
        except BaseException as exc:
            self.failure = exc
            raise

    def close(self) -> None:
        if not self.closed:
            self._source.close()
        super().close()


#: Tink's bindings (pybind11) keep a per-thread stack of call frames. A read of the
#: source from inside Tink may switch greenlets (a green socket read); were another
#: greenlet then to call into Tink and be suspended there too, the first would return
#: out of order and pybind11 aborts the whole process ("loader_life_support: internal
#: error", seen under the fault suite's load). So one greenlet at a time decrypts.
_IN_TINK = Semaphore(1)


def decrypt(data_key: StreamingAead, source: BinaryIO, document_id: uuid.UUID) -> Iterator[bytes]:
    """The plaintext of an object, in CHUNK pieces, each from authenticated segments only.

    Raises IntegrityError when a segment fails authentication or the stream was cut short
    (possibly after earlier pieces: check a whole object first, see verify()), and the
    source's own error when reading the source failed. Closes the source when done.
    """
    wrapped = _Source(source)
    try:
        try:
            with _IN_TINK:
                stream = data_key.new_decrypting_stream(wrapped, associated_data(document_id))
            while True:
                with _IN_TINK:  # released between pieces: other downloads take turns
                    chunk = stream.read(CHUNK)
                if not chunk:
                    break
                yield chunk
        except tink.TinkError as exc:
            if wrapped.failure is not None:
                raise wrapped.failure from exc
            raise IntegrityError("the stored object fails authentication") from exc
    finally:
        wrapped.close()


def verify(
    data_key: StreamingAead,
    source: BinaryIO,
    document_id: uuid.UUID,
    size: int,
    sha256: str,
    keep: bool = False,
) -> list[bytes] | None:
    """Decrypt a whole object once and hold it against its row's size and SHA-256.

    Returns the plaintext pieces when keep (small documents: what was checked is what is
    served), else None; raises IntegrityError when anything does not match.
    """
    kept: list[bytes] | None = [] if keep else None
    digest = hashlib.sha256()
    seen = 0
    for chunk in decrypt(data_key, source, document_id):
        seen += len(chunk)
        if seen > size:
            raise IntegrityError("the stored object is longer than the document")
        digest.update(chunk)
        if kept is not None:
            kept.append(chunk)
    if seen != size:
        raise IntegrityError("the stored object is shorter than the document")
    if digest.hexdigest() != sha256:
        raise IntegrityError("the stored object's SHA-256 differs from the document's")
    return kept


def ciphertext_bound(size: int) -> int:
    """More than the ciphertext of size bytes of plaintext can be: 40 bytes of header and
    16 per segment (of 256 KiB, or 1 MiB for older objects), with room to spare. A stored
    object longer than this is refused without reading the rest of it."""
    return size + size // 4096 + 4096


def verify_ciphertext(source: BinaryIO, size: int, sha256: str) -> None:
    """Hold a whole stored object against the SHA-256 of the ciphertext written at upload.

    Equal digests mean the object is, byte for byte, the ciphertext that was stored: what it
    decrypts to is what was uploaded (whose size and SHA-256 the row also holds). Cheaper
    than decrypting it (SHA-256 only, in large reads); the download that follows still
    authenticates every segment as it decrypts. Raises IntegrityError when it differs; the
    source's own error when reading it fails. Closes the source.
    """
    bound = ciphertext_bound(size)
    digest = hashlib.sha256()
    seen = 0
    try:
        while chunk := source.read(VERIFY_READ):
            seen += len(chunk)
            if seen > bound:
                raise IntegrityError("the stored object is longer than the document")
            digest.update(chunk)
    finally:
        source.close()
    if digest.hexdigest() != sha256:
        raise IntegrityError("the stored object differs from the ciphertext stored at upload")


def decrypt_held(
    data_key: StreamingAead,
    source: BinaryIO,
    document_id: uuid.UUID,
    size: int,
    stored: tuple[str, int],
) -> Iterator[bytes]:
    """Decrypt a whole object in one read, its last piece held back until the object is
    known to be, byte for byte, what the upload stored (`stored`: its SHA-256 and length).

    Every piece passed on is authenticated (Tink, segment by segment) and the plaintext
    must come to size bytes; so an object changed anywhere ends in IntegrityError before
    its last piece: never in a whole document. Closes the source.
    """
    read = Hashing(source)
    held = None
    for chunk in counted(decrypt(data_key, read, document_id), size):
        if held is not None:
            yield held
        held = chunk
    if read.stored() != tuple(stored):
        raise IntegrityError("the stored object differs from the ciphertext stored at upload")
    if held is not None:
        yield held


def counted(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Pass plaintext on; raise IntegrityError if it does not come to exactly size bytes."""
    seen = 0
    for chunk in chunks:
        seen += len(chunk)
        if seen > size:
            raise IntegrityError("the stored object is longer than the document")
        yield chunk
    if seen != size:
        raise IntegrityError("the stored object is shorter than the document")


# --- rotation ------------------------------------------------------------------------------


def rewrap_all(engine: sa.Engine, keys: MasterKeys, batch_size: int = 200) -> dict[str, Any]:
    """Re-wrap every data key not wrapped by the current master key; returns counts.

    Refuses (MissingMasterKey, nothing changed) when a master key some document needs is
    not configured. Works in batches, one transaction each, in id order. A row changed or
    deleted meanwhile is left as it is; a row whose wrapped key does not decrypt is
    reported in "failed" and left as it is. Running it again changes nothing more.
    """
    from services.documents.models import Document

    with Session(engine) as session:
        before = dict(
            session.execute(
                sa.select(Document.master_key_id, sa.func.count()).group_by(Document.master_key_id)
            ).all()
        )
    missing = {key_id for key_id in before if key_id not in keys.ids}
    if missing:
        raise MissingMasterKey(missing)
    rewrapped, failed = 0, []
    last: uuid.UUID | None = None
    while True:
        with Session(engine) as session, session.begin():
            query = (
                sa.select(Document.id, Document.master_key_id, Document.wrapped_key)
                .where(Document.master_key_id != keys.current)
                .order_by(Document.id)
                .limit(batch_size)
            )
            if last is not None:
                query = query.where(Document.id > last)
            rows = session.execute(query).all()
            for document_id, master_key_id, wrapped in rows:
                old = WrappedKey(master_key_id, wrapped)
                try:
                    new = keys.rewrap(old, document_id)
                except IntegrityError:
                    failed.append(str(document_id))
                    continue
                rewrapped += session.execute(
                    sa.update(Document)
                    .where(
                        Document.id == document_id,
                        Document.master_key_id == old.master_key_id,
                        Document.wrapped_key == old.wrapped,
                    )
                    .values(master_key_id=new.master_key_id, wrapped_key=new.wrapped)
                ).rowcount
        if len(rows) < batch_size:
            break
        last = rows[-1][0]
    return {
        "master_key_id": keys.current,
        "documents": sum(before.values()),
        "already_current": before.get(keys.current, 0),
        "rewrapped": rewrapped,
        "failed": failed,
    }


class Keys(DependencyProvider):
    """Injects the configured MasterKeys; a service with unusable keys does not start."""

    def setup(self) -> None:
        self.keys = MasterKeys.from_config()

    def get_dependency(self, worker_ctx: Any) -> MasterKeys:
        return self.keys
