"""Document bodies encrypted per document: streams, wrapped data keys, master keys, rotation."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace

import pytest
import tink
from dotenv import dotenv_values
from minio.error import S3Error
from minio.helpers import read_part_data
from tink import json_proto_keyset_format, secret_key_access
from tink import streaming_aead as tink_streaming

from overdracht import config
from overdracht.contracts import TooLarge
from services.documents import crypto
from services.documents.crypto import (
    CHUNK,
    EncryptingReader,
    IntegrityError,
    KeyConfigError,
    MasterKeys,
    MissingMasterKey,
    WrappedKey,
)
from services.documents.delivery import Budget
from services.documents.storage import PART_SIZE
from services.documents.streams import CappedReader
from tests.unit.test_streams import Broken, Trickle

MiB = 1024 * 1024
#: Tink's AES-GCM-HKDF streaming: a 40-byte header (length byte, salt, nonce prefix),
#: 16-byte tags, segments of SEGMENT ciphertext (the first one shorter by the header)
SEGMENT = 256 * 1024
HEADER = 40


def _body(size: int) -> bytes:
    return b"%PDF-1.7\n" + random.Random(size).randbytes(size - 9)


def _keys(current: str = "k1", **keysets: dict) -> MasterKeys:
    return MasterKeys(current, keysets or {current: crypto.new_master_keyset()})


@pytest.fixture(scope="module")
def keys() -> MasterKeys:
    return _keys()


def _encrypt(data_key, body: bytes, document_id: uuid.UUID) -> bytes:
    """Encrypt the way an upload does: CappedReader over a socket-like source, pulled by
    minio's own part reader (part_size + 1 bytes at a time)."""
    reader = EncryptingReader(
        CappedReader(Trickle(body, 64 * 1024), 100 * MiB), data_key, document_id
    )
    parts = []
    while part := read_part_data(reader, PART_SIZE + 1):
        parts.append(part)
    return b"".join(parts)


def _decrypt(data_key, ciphertext: bytes, document_id: uuid.UUID) -> bytes:
    return b"".join(crypto.decrypt(data_key, io.BytesIO(ciphertext), document_id))


@pytest.fixture(scope="module")
def sealed(keys):
    """A 5.5 MiB document, encrypted: (id, data key, wrapped key, body, ciphertext)."""
    document_id = uuid.uuid4()
    data_key, wrapped = keys.new_data_key(document_id)
    body = _body(5 * MiB + MiB // 2)
    return document_id, data_key, wrapped, body, _encrypt(data_key, body, document_id)


def test_a_multi_mib_stream_goes_round_in_chunks(sealed):
    document_id, data_key, _, body, ciphertext = sealed
    assert body[:4096] not in ciphertext and body[-4096:] not in ciphertext
    segments = -(-(len(body) + HEADER) // (SEGMENT - 16))
    assert crypto.SEGMENT == SEGMENT
    assert len(ciphertext) == HEADER + len(body) + 16 * segments  # 23 segments, 408 bytes more
    pieces = list(crypto.decrypt(data_key, io.BytesIO(ciphertext), document_id))
    assert b"".join(pieces) == body
    assert max(map(len, pieces)) == CHUNK


def test_an_object_written_in_1_mib_segments_still_decrypts_and_is_checked(keys, monkeypatch):
    """Documents stored before segments were 256 KiB: their keysets say 1 MiB."""
    document_id = uuid.uuid4()
    old = tink_streaming.streaming_aead_key_templates.AES256_GCM_HKDF_1MB
    monkeypatch.setattr(crypto, "DATA_KEY_TEMPLATE", old)
    _, wrapped = keys.new_data_key(document_id)
    monkeypatch.undo()
    data_key = keys.data_key(wrapped, document_id)  # as a download unwraps it
    body = _body(3 * MiB + 5)
    ciphertext = _encrypt(data_key, body, document_id)
    assert len(ciphertext) == HEADER + len(body) + 16 * 4  # four segments of 1 MiB
    assert _decrypt(data_key, ciphertext, document_id) == body
    sha256 = hashlib.sha256(body).hexdigest()
    kept = crypto.verify(data_key, io.BytesIO(ciphertext), document_id, len(body), sha256, True)
    assert b"".join(kept) == body
    altered = bytearray(ciphertext)
    altered[2 * MiB] ^= 1
    with pytest.raises(IntegrityError):
        crypto.verify(data_key, io.BytesIO(bytes(altered)), document_id, len(body), sha256)


def test_encrypting_holds_little_and_hands_out_what_is_asked():
    keys = _keys()
    document_id = uuid.uuid4()
    data_key, _ = keys.new_data_key(document_id)
    body = _body(40 * MiB)
    reader = EncryptingReader(io.BytesIO(body), data_key, document_id)
    out = []
    for size in [1, 7, 100_000, PART_SIZE + 1, 20 * MiB] * 3 + [-1]:
        chunk = reader.read(size)
        if size >= 0:  # full reads (minio concatenates short ones), never more than asked
            assert min(size, crypto.MAX_READ) <= len(chunk) <= size or reader._finished
        out.append(chunk)
        # never the whole document: what was asked for, and a segment and a chunk more
        assert reader._out.size <= SEGMENT + CHUNK
    assert reader.read(10) == b""
    assert _decrypt(data_key, b"".join(out), document_id) == body


def test_a_too_large_upload_stops_the_encryption_with_its_own_error(keys):
    document_id = uuid.uuid4()
    data_key, _ = keys.new_data_key(document_id)
    reader = EncryptingReader(
        CappedReader(io.BytesIO(_body(3 * MiB)), 2 * MiB), data_key, document_id
    )
    with pytest.raises(TooLarge):
        while read_part_data(reader, PART_SIZE + 1):
            continue  # read parts as minio does until the cap stops the encryption


def test_each_document_has_its_own_data_key(keys):
    body = _body(100_000)
    document_id = uuid.uuid4()
    first, _ = keys.new_data_key(document_id)
    second, _ = keys.new_data_key(document_id)
    ciphertext = _encrypt(first, body, document_id)
    assert ciphertext != _encrypt(first, body, document_id)  # a fresh salt every time
    with pytest.raises(IntegrityError):
        _decrypt(second, ciphertext, document_id)


def test_another_documents_id_as_associated_data_is_refused(sealed):
    _, data_key, _, _, ciphertext = sealed
    with pytest.raises(IntegrityError):
        _decrypt(data_key, ciphertext, uuid.uuid4())


@pytest.mark.parametrize(
    "where",
    [
        0,  # the header's length byte
        HEADER // 2,  # the salt
        HEADER + 10,  # the first segment
        SEGMENT + 5,  # the second segment
        3 * SEGMENT - 1,  # the third segment's tag
        -100,  # the last segment
        -1,  # the last tag's last byte
    ],
)
def test_a_flipped_byte_in_any_segment_is_refused(sealed, where):
    document_id, data_key, _, body, ciphertext = sealed
    altered = bytearray(ciphertext)
    altered[where] ^= 0x01
    served = []
    with pytest.raises(IntegrityError):
        for chunk in crypto.decrypt(data_key, io.BytesIO(bytes(altered)), document_id):
            served.append(chunk)
    # what came out before the failure is authenticated plaintext, never altered bytes
    assert body.startswith(b"".join(served))
    with pytest.raises(IntegrityError):
        crypto.verify(data_key, io.BytesIO(bytes(altered)), document_id, len(body), "x")


@pytest.mark.parametrize(
    "cut",
    [
        lambda c: b"",
        lambda c: c[:HEADER],
        lambda c: c[: SEGMENT - HEADER],
        lambda c: c[:SEGMENT],  # exactly at a segment boundary
        lambda c: c[:-1],
        lambda c: c + b"\x00",
        lambda c: c + c[-SEGMENT:],
    ],
    ids=["empty", "header", "mid-segment", "segment-boundary", "last-byte", "appended", "replay"],
)
def test_a_truncated_or_extended_object_is_refused(sealed, cut):
    document_id, data_key, _, body, ciphertext = sealed
    with pytest.raises(IntegrityError):
        crypto.verify(data_key, io.BytesIO(cut(ciphertext)), document_id, len(body), "x")


def test_verify_holds_the_plaintext_against_the_row(sealed):
    document_id, data_key, _, body, ciphertext = sealed
    sha = hashlib.sha256(body).hexdigest()

    def check(size=None, digest=sha, keep=False):
        size = len(body) if size is None else size
        return crypto.verify(data_key, io.BytesIO(ciphertext), document_id, size, digest, keep)

    assert check() is None
    assert b"".join(check(keep=True)) == body
    for wrong in ({"size": len(body) - 1}, {"size": len(body) + 1}, {"digest": "0" * 64}):
        with pytest.raises(IntegrityError):
            check(**wrong)
    with pytest.raises(IntegrityError):
        list(crypto.counted(iter([body[:10], body[10:]]), len(body) - 1))
    with pytest.raises(IntegrityError):
        list(crypto.counted(iter([body]), len(body) + 1))


def test_a_failing_store_is_not_mistaken_for_altered_bytes(sealed):
    document_id, data_key, _, body, ciphertext = sealed

    class Failing(io.RawIOBase):
        """Hands out two segments, then the connection breaks."""

        def __init__(self) -> None:
            self._data = io.BytesIO(ciphertext)

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            if self._data.tell() >= 2 * SEGMENT:
                raise ConnectionResetError("peer went away")
            return self._data.read(size)

    with pytest.raises(ConnectionResetError):
        crypto.verify(data_key, Failing(), document_id, len(body), "x")
    with pytest.raises(OSError):
        list(crypto.decrypt(data_key, Broken(OSError("store away")), document_id))


def test_a_wrapped_key_needs_its_master_key_and_its_document(keys, sealed):
    document_id, _, wrapped, body, ciphertext = sealed
    assert wrapped.master_key_id == "k1"
    assert _decrypt(keys.data_key(wrapped, document_id), ciphertext, document_id) == body

    impostor = _keys("k1")  # same id, another key
    with pytest.raises(IntegrityError):
        impostor.data_key(wrapped, document_id)
    with pytest.raises(IntegrityError):
        keys.data_key(wrapped, uuid.uuid4())  # moved to another document's row
    altered = bytearray(wrapped.wrapped)
    altered[-3] ^= 0x01
    with pytest.raises(IntegrityError):
        keys.data_key(WrappedKey("k1", bytes(altered)), document_id)
    with pytest.raises(MissingMasterKey) as missing:
        _keys("k2").data_key(wrapped, document_id)
    assert missing.value.key_ids == ["k1"]


def test_rotation_rewraps_the_same_data_key_under_the_new_master_key(sealed):
    document_id, _, _, body, ciphertext = sealed
    old_keyset, new_keyset = crypto.new_master_keyset(), crypto.new_master_keyset()
    before = _keys("k1", k1=old_keyset)
    data_key, wrapped = before.new_data_key(document_id)
    ciphertext = _encrypt(data_key, body, document_id)

    during = _keys("k2", k1=old_keyset, k2=new_keyset)
    assert _decrypt(during.data_key(wrapped, document_id), ciphertext, document_id) == body
    rewrapped = during.rewrap(wrapped, document_id)
    assert rewrapped.master_key_id == "k2" and rewrapped.wrapped != wrapped.wrapped
    assert during.rewrap(rewrapped, document_id).master_key_id == "k2"

    after = _keys("k2", k2=new_keyset)  # the old master key is gone from the configuration
    assert _decrypt(after.data_key(rewrapped, document_id), ciphertext, document_id) == body
    with pytest.raises(MissingMasterKey):
        after.data_key(wrapped, document_id)


def test_master_keys_from_the_configuration(monkeypatch, tmp_path):
    settings = crypto.generate_master_keys("2026-11")
    assert settings["OVERDRACHT_MASTER_KEY_ID"] == "2026-11"
    # one line without blanks: what `make run` writes into var/overdracht.env, unquoted
    env_file = tmp_path / "overdracht.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    assert dotenv_values(env_file) == settings
    monkeypatch.setenv("OVERDRACHT_ENV_FILE", str(env_file))
    monkeypatch.delenv("OVERDRACHT_MASTER_KEYS", raising=False)
    monkeypatch.delenv("OVERDRACHT_MASTER_KEY_ID", raising=False)
    config._file_values.cache_clear()
    try:
        keys = MasterKeys.from_config()
    finally:
        config._file_values.cache_clear()
    assert keys.current == "2026-11" and keys.ids == {"2026-11"}
    document_id = uuid.uuid4()
    data_key, wrapped = keys.new_data_key(document_id)
    assert keys.data_key(wrapped, document_id) is not None


def test_unusable_master_key_settings_are_refused_without_repeating_them(monkeypatch):
    keyset = crypto.new_master_keyset()
    secret = keyset["key"][0]["keyData"]["value"]
    streaming = json.loads(
        json_proto_keyset_format.serialize(
            tink.new_keyset_handle(crypto.DATA_KEY_TEMPLATE), secret_key_access.TOKEN
        )
    )
    for current, keysets in [
        ("k 1", {"k 1": keyset}),  # not a key id
        ("k1", {"k1": {"key": "no keyset"}}),
        ("k1", {"k1": streaming}),  # a keyset, but not an AEAD one
        ("k1", {"k1": keyset, "../k2": keyset}),
    ]:
        with pytest.raises(KeyConfigError) as refused:
            MasterKeys(current, keysets)
        assert secret not in str(refused.value)
    with pytest.raises(MissingMasterKey):
        MasterKeys("k2", {"k1": keyset})

    monkeypatch.setenv("OVERDRACHT_MASTER_KEY_ID", "k1")
    for value in (f'{{"k1": {json.dumps(keyset)}', '["k1"]'):
        monkeypatch.setenv("OVERDRACHT_MASTER_KEYS", value)
        with pytest.raises(ValueError) as refused:
            config.master_keys()
        assert secret not in str(refused.value)


class Versions:
    """An object store whose one object is replaced between reads (ETag ignored, or not)."""

    def __init__(self, *versions: bytes, honours_if_match: bool = False) -> None:
        self._versions = list(versions)
        self._honours_if_match = honours_if_match

    def open(self, key: str, etag: str | None = None) -> io.BytesIO:
        if etag is not None and self._honours_if_match:  # it changed since: 412
            raise S3Error(None, "PreconditionFailed", "changed", key, "r", "h")
        data = self._versions.pop(0)
        reader = io.BytesIO(data)
        reader.etag = '"v1"'
        reader.length = len(data)
        return reader

    @property
    def unread(self) -> int:
        return len(self._versions)


#: how a large document was stored: with the ciphertext's SHA-256 and length (read once),
#: with its SHA-256 only, or before either was recorded (both: checked whole, read again)
ONE_READ, DIGEST_ONLY, NEITHER = "one-read", "ciphertext-digest", "decrypted"
LEGACY = [DIGEST_ONLY, NEITHER]


def _checked_body(
    monkeypatch, keys, sealed, store, stored: str = ONE_READ, inline: int = MiB, held=None
) -> Iterable[bytes]:
    """The download path for a document larger than INLINE_BYTES (lowered to 1 MiB here)."""
    from services.documents import service

    document_id, _, wrapped, body, ciphertext = sealed
    monkeypatch.setattr(service, "INLINE_BYTES", inline)
    document = SimpleNamespace(
        id=document_id,
        master_key_id=wrapped.master_key_id,
        wrapped_key=wrapped.wrapped,
        object_key=f"documents/{document_id}",
        size=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        ciphertext_sha256=hashlib.sha256(ciphertext).hexdigest() if stored != NEITHER else None,
        ciphertext_size=len(ciphertext) if stored == ONE_READ else None,
    )
    worker = SimpleNamespace(keys=keys, storage=store, held=held or Budget(0))
    return service.DocumentsService._checked_body(worker, document)


def test_a_small_document_is_held_within_the_budget_and_gives_its_share_back(
    monkeypatch, keys, sealed
):
    _, _, _, body, ciphertext = sealed
    budget = Budget(2 * len(body))
    served = _checked_body(
        monkeypatch, keys, sealed, Versions(ciphertext), inline=8 * MiB, held=budget
    )
    assert budget.held == len(body)  # checked whole before the answer, held while sent
    assert next(iter(served)) == body[:CHUNK]
    served.close()  # the server is done with it, here before its end
    assert budget.held == 0


def test_a_small_document_the_budget_has_no_room_for_is_read_once_as_it_is_sent(
    monkeypatch, keys, sealed
):
    _, _, _, body, ciphertext = sealed
    budget = Budget(len(body) - 1)
    store = Versions(ciphertext, ciphertext)
    served = _checked_body(monkeypatch, keys, sealed, store, inline=8 * MiB, held=budget)
    assert budget.held == 0
    assert b"".join(served) == body
    assert store.unread == 1  # one read


def test_an_altered_small_document_is_refused_before_the_answer_and_holds_nothing(
    monkeypatch, keys, sealed
):
    _, _, _, body, ciphertext = sealed
    altered = bytearray(ciphertext)
    altered[-100] ^= 1  # the last segment: found only by reading it all
    budget = Budget(8 * MiB)
    with pytest.raises(IntegrityError):
        _checked_body(
            monkeypatch, keys, sealed, Versions(bytes(altered)), inline=8 * MiB, held=budget
        )
    assert budget.held == 0


def test_a_large_document_is_read_once_and_sent_whole(monkeypatch, keys, sealed):
    _, _, _, body, ciphertext = sealed
    store = Versions(ciphertext, ciphertext)
    assert b"".join(_checked_body(monkeypatch, keys, sealed, store)) == body
    assert store.unread == 1


@pytest.mark.parametrize("stored", LEGACY)
def test_a_large_document_stored_before_its_length_is_checked_then_sent_again(
    monkeypatch, keys, sealed, stored
):
    _, _, _, body, ciphertext = sealed
    store = Versions(ciphertext, ciphertext)
    chunks = _checked_body(monkeypatch, keys, sealed, store, stored)
    assert b"".join(chunks) == body and store.unread == 0


def test_read_once_an_object_changed_early_or_of_another_length_is_refused_before_the_answer(
    monkeypatch, keys, sealed
):
    _, _, _, _, ciphertext = sealed
    for where in (5, 100):  # the header, the first segment
        altered = bytearray(ciphertext)
        altered[where] ^= 1
        with pytest.raises(IntegrityError):
            _checked_body(monkeypatch, keys, sealed, Versions(bytes(altered)))
    for cut in (b"", ciphertext[:-1], ciphertext[:SEGMENT], ciphertext + b"\x00"):
        with pytest.raises(IntegrityError):
            _checked_body(monkeypatch, keys, sealed, Versions(cut))


def test_read_once_an_object_changed_late_is_cut_off_before_its_last_piece(
    monkeypatch, keys, sealed
):
    _, _, _, body, ciphertext = sealed
    for where in (-100, -1):  # the last segment, its tag
        altered = bytearray(ciphertext)
        altered[where] ^= 1
        sent = []
        with pytest.raises(IntegrityError):
            for chunk in _checked_body(monkeypatch, keys, sealed, Versions(bytes(altered))):
                sent.append(chunk)
        assert sent and body.startswith(b"".join(sent)) and len(b"".join(sent)) < len(body)


def test_read_once_the_last_piece_waits_for_the_whole_objects_digest(monkeypatch, keys, sealed):
    """Authentic segments that are not the object stored (the digest differs): the last
    piece is not sent. Here the row's digest is what differs, as a forged object would."""
    from services.documents import service

    _, _, _, body, ciphertext = sealed
    monkeypatch.setattr(
        service.crypto, "decrypt_held", _with_other_digest(service.crypto.decrypt_held)
    )
    sent = []
    with pytest.raises(IntegrityError, match="differs from the ciphertext"):
        for chunk in _checked_body(monkeypatch, keys, sealed, Versions(ciphertext)):
            sent.append(chunk)
    assert body.startswith(b"".join(sent)) and len(b"".join(sent)) < len(body)


def _with_other_digest(decrypt_held):
    def held(data_key, source, document_id, size, stored):
        return decrypt_held(data_key, source, document_id, size, ("0" * 64, stored[1]))

    return held


@pytest.mark.parametrize("stored", LEGACY)
def test_a_legacy_large_object_altered_is_refused_before_anything_is_sent(
    monkeypatch, keys, sealed, stored
):
    _, _, _, _, ciphertext = sealed
    for where in (5, 100, -100, -1):
        altered = bytearray(ciphertext)
        altered[where] ^= 1
        with pytest.raises(IntegrityError):
            _checked_body(monkeypatch, keys, sealed, Versions(bytes(altered)), stored)
    for cut in (b"", ciphertext[:-1], ciphertext[:SEGMENT], ciphertext + b"\x00"):
        with pytest.raises(IntegrityError):
            _checked_body(monkeypatch, keys, sealed, Versions(cut), stored)


@pytest.mark.parametrize("stored", LEGACY)
def test_an_object_changed_after_its_check_is_refused_or_cut_off(monkeypatch, keys, sealed, stored):
    _, _, _, body, ciphertext = sealed
    early, late = bytearray(ciphertext), bytearray(ciphertext)
    early[100] ^= 1
    late[-100] ^= 1

    def checked(store):
        return _checked_body(monkeypatch, keys, sealed, store, stored)

    # the store pins the version checked: refused before the answer begins
    with pytest.raises(IntegrityError):
        checked(Versions(ciphertext, ciphertext, honours_if_match=True))
    # a store that ignores If-Match: the first segment is checked before the answer begins
    with pytest.raises(IntegrityError):
        checked(Versions(ciphertext, bytes(early)))
    # and a later one cuts the answer off, after authenticated plaintext only
    sent = []
    with pytest.raises(IntegrityError):
        for chunk in checked(Versions(ciphertext, bytes(late))):
            sent.append(chunk)
    assert sent and body.startswith(b"".join(sent)) and len(b"".join(sent)) < len(body)


class Counting(io.BytesIO):
    """An object whose reads are counted, and whether it was closed."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.read_bytes = 0
        self.was_closed = False

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        self.read_bytes += len(data)
        return data

    def close(self) -> None:
        self.was_closed = True
        super().close()


def test_verify_ciphertext_holds_the_object_against_the_digest_stored_at_upload(sealed):
    _, _, _, body, ciphertext = sealed
    digest = hashlib.sha256(ciphertext).hexdigest()
    for size in (0, 1, SEGMENT, 100 * SEGMENT + 1):  # a ciphertext is never longer than this
        assert crypto.ciphertext_bound(size) >= size + HEADER + 16 * (size // (SEGMENT - 16) + 1)
    source = Counting(ciphertext)
    crypto.verify_ciphertext(source, len(body), digest)
    assert source.read_bytes == len(ciphertext) and source.was_closed
    flipped = bytearray(ciphertext)
    flipped[len(ciphertext) // 2] ^= 1
    for altered in (bytes(flipped), ciphertext[:-1], ciphertext + b"\x00", b""):
        source = Counting(altered)
        with pytest.raises(IntegrityError):
            crypto.verify_ciphertext(source, len(body), digest)
        assert source.was_closed
    # an object grown far past any ciphertext of the document is refused without reading it all
    source = Counting(ciphertext * 3)
    with pytest.raises(IntegrityError, match="longer"):
        crypto.verify_ciphertext(source, len(body), digest)
    assert source.read_bytes < 2 * len(ciphertext)


def test_verify_ciphertext_passes_on_a_failing_store_as_itself(sealed):
    _, _, _, body, ciphertext = sealed
    with pytest.raises(OSError):
        crypto.verify_ciphertext(Broken(OSError("store away")), len(body), "0" * 64)


GREEN_DECRYPTS = """
import eventlet
eventlet.monkey_patch()
import io, uuid
from services.documents import crypto

keys = crypto.MasterKeys("k1", {"k1": crypto.new_master_keyset()})
document_id = uuid.uuid4()
key, _ = keys.new_data_key(document_id)
body = bytes(range(256)) * 4096 * 3
ciphertext = crypto.EncryptingReader(io.BytesIO(body), key, document_id).read(-1)


class GreenSocket(io.BytesIO):
    # a read that lets other greenlets run, as a green socket read of the store does
    def read(self, size=-1):
        eventlet.sleep(0)
        return super().read(4096)


def download(_):
    return b"".join(crypto.decrypt(key, GreenSocket(ciphertext), document_id)) == body


print(all(eventlet.GreenPool().imap(download, range(8))))
"""


def test_downloads_decrypting_at_once_under_eventlet_do_not_abort_the_process(tmp_path):
    """Tink's bindings abort the process when a greenlet suspended inside Tink is
    overtaken by another one suspended there (documents died so under the fault suite)."""
    script = tmp_path / "green_decrypts.py"
    script.write_text(GREEN_DECRYPTS)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(root)},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.strip() == "True"
