"""File bodies on their way to the object store: counted, hashed, capped and sniffed."""

from __future__ import annotations

import hashlib
import io
import random

import pytest

from overdracht.contracts import TooLarge
from services.documents.streams import SNIFF_BYTES, BrokenBody, CappedReader, content_type


class Trickle(io.RawIOBase):
    """A source that hands out at most `step` bytes per read, like a socket."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = data
        self._pos = 0
        self._step = step
        self.reads = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        if size < 0:
            size = len(self._data)
        chunk = self._data[self._pos : self._pos + min(size, self._step)]
        self._pos += len(chunk)
        return chunk

    @property
    def consumed(self) -> int:
        return self._pos


class Broken(io.RawIOBase):
    """A sender that went away: every read fails."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        raise self._error


def _body(size: int) -> bytes:
    return random.Random(size).randbytes(size)


def _read_all(reader: CappedReader, size: int = -1) -> bytes:
    parts = []
    while chunk := reader.read(size):
        parts.append(chunk)
    return b"".join(parts)


@pytest.mark.parametrize("size", [0, 1, 1000, SNIFF_BYTES, 3 * 1024 * 1024 + 17])
def test_size_and_hash_are_of_what_passed_through(size):
    body = _body(size)
    reader = CappedReader(io.BytesIO(body), limit=10 * 1024 * 1024)

    assert _read_all(reader) == body
    assert reader.size == size
    assert reader.sha256.hexdigest() == hashlib.sha256(body).hexdigest()


def test_only_what_was_read_is_counted():
    body = _body(5000)
    reader = CappedReader(io.BytesIO(body), limit=10_000)

    assert reader.read(1200) == body[:1200]
    assert reader.size == 1200
    assert reader.sha256.hexdigest() == hashlib.sha256(body[:1200]).hexdigest()


def test_sniff_reads_ahead_and_later_reads_return_the_same_bytes_in_order():
    body = _body(3 * SNIFF_BYTES + 5)
    source = Trickle(body, step=1000)
    reader = CappedReader(source, limit=len(body))

    head = reader.sniff()

    assert head == body[:SNIFF_BYTES]
    assert source.consumed == SNIFF_BYTES  # read ahead through several short reads
    assert reader.size == 0  # sniffing counts nothing yet
    assert reader.sniff() == head  # a second sniff reads nothing more
    assert source.consumed == SNIFF_BYTES
    assert _read_all(reader, 700) == body
    assert reader.size == len(body)
    assert reader.sha256.hexdigest() == hashlib.sha256(body).hexdigest()


def test_a_read_larger_than_the_sniffed_head_returns_the_head_first():
    body = _body(2 * SNIFF_BYTES)
    reader = CappedReader(io.BytesIO(body), limit=len(body))
    reader.sniff()

    first = reader.read(SNIFF_BYTES + 100)
    rest = _read_all(reader)

    assert first == body[:SNIFF_BYTES]
    assert first + rest == body
    assert reader.sha256.hexdigest() == hashlib.sha256(body).hexdigest()


def test_sniffing_a_short_file_returns_all_of_it():
    body = b"%PDF-1.7\n%%EOF\n"
    reader = CappedReader(io.BytesIO(body), limit=1000)

    assert reader.sniff() == body
    assert reader.read() == body
    assert reader.read() == b""
    assert reader.size == len(body)


def test_a_body_of_exactly_the_limit_passes():
    body = _body(4096)
    reader = CappedReader(io.BytesIO(body), limit=4096)

    assert _read_all(reader, 1000) == body
    assert reader.size == 4096


def test_a_body_past_the_limit_raises_too_large():
    body = _body(4097)
    reader = CappedReader(io.BytesIO(body), limit=4096)

    with pytest.raises(TooLarge) as caught:
        _read_all(reader, 1000)
    assert caught.value.code == "file_too_large"


def test_the_limit_holds_for_bytes_that_were_sniffed_first():
    body = _body(SNIFF_BYTES)
    reader = CappedReader(io.BytesIO(body), limit=100)
    reader.sniff()

    with pytest.raises(TooLarge):
        reader.read()


def test_too_large_does_not_hash_the_bytes_past_the_limit():
    body = _body(3000)
    reader = CappedReader(io.BytesIO(body), limit=2500)
    assert reader.read(2000) == body[:2000]

    with pytest.raises(TooLarge):
        reader.read(1000)
    assert reader.sha256.hexdigest() == hashlib.sha256(body[:2000]).hexdigest()


def test_drain_reads_and_discards_within_its_budget():
    body = _body(10_000)
    source = Trickle(body, step=3000)
    reader = CappedReader(source, limit=100)

    reader.drain(budget=6000)

    assert source.consumed == 6000
    assert reader.size == 0


def test_drain_stops_at_the_end_of_the_body():
    body = _body(10_000)
    source = io.BytesIO(body)
    reader = CappedReader(source, limit=100)

    reader.drain(budget=1024 * 1024 * 1024)

    assert source.tell() == len(body)
    assert source.read() == b""


@pytest.mark.parametrize("error", [OSError("connection reset"), ValueError("I/O on closed file")])
def test_drain_gives_up_quietly_when_the_sender_went_away(error):
    reader = CappedReader(Broken(error), limit=100)

    reader.drain(budget=1000)  # raises nothing


def test_drain_after_too_large_empties_the_rest():
    body = _body(10_000)
    source = io.BytesIO(body)
    reader = CappedReader(source, limit=1000)
    with pytest.raises(TooLarge):
        _read_all(reader, 800)

    reader.drain(budget=len(body))

    assert source.read() == b""


class BreaksOff(io.RawIOBase):
    """A body that stops part way: its connection closed, or its read timed out."""

    def __init__(self, data: bytes, error: Exception) -> None:
        self._data = data
        self._error = error
        self.reads_after = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._data:
            chunk, self._data = self._data[:size], self._data[size:]
            return chunk
        self.reads_after += 1
        raise self._error


@pytest.mark.parametrize(
    "error",
    [
        OSError("unexpected end of file while parsing chunked data"),
        TimeoutError("timed out"),
        ValueError("invalid literal for int() with base 16"),  # eventlet's ChunkReadError
    ],
)
def test_a_body_that_breaks_off_is_a_broken_body_and_is_not_drained(error):
    source = BreaksOff(_body(SNIFF_BYTES + 800), error)
    reader = CappedReader(source, limit=100_000)
    assert len(reader.sniff()) == SNIFF_BYTES
    with pytest.raises(BrokenBody) as broken:
        _read_all(reader, 1000)
    assert broken.value.__cause__ is error
    assert reader.broken

    reader.drain(budget=1000)  # nobody to answer: not waited for again

    assert source.reads_after == 1


# --- content type --------------------------------------------------------------------


def test_pdf_magic_bytes_are_recognised():
    assert content_type(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n") == "application/pdf"


def test_png_magic_bytes_are_recognised():
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06"

    assert content_type(png) == "image/png"


def test_jpeg_magic_bytes_are_recognised():
    assert content_type(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01") == "image/jpeg"


@pytest.mark.parametrize(
    "head",
    [b"Dit is gewoon tekst, geen document.\n", b"", b"PDF-1.7 without its percent sign"],
)
def test_text_and_unknown_bytes_give_none(head):
    assert content_type(head) is None
