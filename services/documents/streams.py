"""File bodies on their way to the object store: counted, hashed, capped, never on disk."""

from __future__ import annotations

import hashlib
import io
from typing import Any, BinaryIO, NamedTuple

import filetype

from overdracht.contracts import N_, InvalidInput, TooLarge

#: filetype looks at most this far into a file
SNIFF_BYTES = 8192


class BrokenBody(InvalidInput):
    """The body stopped before its end: its sender went away, or sent nothing for too long."""

    code = "truncated_upload"


class CappedReader:
    """Read a stream through SHA-256 and a byte cap; raise TooLarge past the cap.

    A source that fails (the connection closed mid-body, or its read timed out) raises
    BrokenBody: what was begun with the body must be given up, and nobody is listening.
    """

    def __init__(self, source: BinaryIO, limit: int) -> None:
        self._source = source
        self._limit = limit
        self._head = b""
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.broken = False

    def _read_source(self, size: int) -> bytes:
        try:
            return self._source.read(size)
        except (OSError, ValueError) as exc:  # eventlet's word for a cut chunked body
            self.broken = True
            raise BrokenBody(N_("Het verzenden is afgebroken.")) from exc

    def sniff(self) -> bytes:
        """Read ahead far enough to recognise the file type; later reads return it first."""
        while len(self._head) < SNIFF_BYTES:
            chunk = self._read_source(SNIFF_BYTES - len(self._head))
            if not chunk:
                break
            self._head += chunk
        return self._head

    def read(self, size: int = -1) -> bytes:
        if self._head:
            data, self._head = self._head, b""
            if 0 <= size < len(data):
                data, self._head = data[:size], data[size:]
        else:
            data = self._read_source(size if size >= 0 else 1024 * 1024)
        self.size += len(data)
        if self.size > self._limit:
            raise TooLarge(
                "Het bestand is groter dan %(mebibytes)s MiB.",
                "file_too_large",
                params={"mebibytes": self._limit // (1024 * 1024)},
            )
        self.sha256.update(data)
        return data

    def drain(self, budget: int) -> None:
        """Read and discard what the sender still sends, so it hears our answer."""
        if self.broken:
            return
        try:
            while budget > 0:
                chunk = self._source.read(min(budget, 1024 * 1024))
                if not chunk:
                    return
                budget -= len(chunk)
        except (OSError, ValueError):
            return  # the sender gave up first: there is nobody left to answer


def content_type(head: bytes) -> str | None:
    """The content type the magic bytes show, or None when they show nothing known."""
    kind = filetype.guess(head)
    return kind.mime if kind else None


class RawReader(io.RawIOBase):
    """A readable raw stream whose subclasses only say how to read(size)."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class Stored(NamedTuple):
    """Bytes as they were stored (or read): their SHA-256 and their length."""

    sha256: str
    size: int


class Hashing:
    """A stream passed through SHA-256, and counted, as it is read."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._sha256 = hashlib.sha256()
        self._size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._sha256.update(data)
        self._size += len(data)
        return data

    def close(self) -> None:
        self._stream.close()

    def stored(self) -> Stored:
        return Stored(self._sha256.hexdigest(), self._size)
