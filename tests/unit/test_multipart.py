"""The gateway's streaming multipart reader: fields first, then the file, piped on in chunks."""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, request
from werkzeug.test import EnvironBuilder

from gateway import files
from gateway.worker import TooSlow
from overdracht.contracts import InvalidInput, TooLarge

BOUNDARY = "----overdracht-test-boundary-7MA4YWxkTrZu0gW"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
DOCUMENTS_URL = "http://documents.invalid"
MiB = 1024 * 1024


class Recorder:
    """A fake `begin` and a fake `_send`, keeping what they saw and in which order."""

    def __init__(self, stream: io.BytesIO | None = None) -> None:
        self.stream = stream
        self.steps: list[str] = []
        self.fields: dict[str, str] | None = None
        self.consumed_at_begin: int | None = None
        self.grant = {"ticket": "ticket-" + random.randbytes(8).hex()}
        self.sent_to: tuple[str, dict[str, Any]] | None = None
        self.chunks: list[bytes] = []

    def begin(self, fields: dict[str, str]) -> dict[str, Any]:
        self.steps.append("begin")
        self.fields = dict(fields)
        if self.stream is not None:
            self.consumed_at_begin = self.stream.tell()
        return self.grant

    def send(self, documents_url: str, grant: dict[str, Any], body: Iterator[bytes]) -> dict:
        self.steps.append("send")
        self.sent_to = (documents_url, grant)
        for chunk in body:
            self.chunks.append(bytes(chunk))
        return {"id": "doc-1", "size": len(self.received)}

    @property
    def received(self) -> bytes:
        return b"".join(self.chunks)


@pytest.fixture
def recorder(monkeypatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(files, "_send", recorder.send)
    return recorder


def field(name: str, value: str) -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
    ).encode()


def file_part(
    data: bytes, name: str = "file", filename: str = "verslag.pdf", closing: bool = True
) -> bytes:
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()
    return head + data + (b"\r\n" if closing else b"")


END = f"--{BOUNDARY}--\r\n".encode()

FIELDS = field("document_type", "baringsverslag") + field("removal_date", "2026-05-01")


def payload(size: int) -> bytes:
    """Random bytes with CRLFs and near-boundaries in them, which must pass untouched."""
    rng = random.Random(size)
    body = bytearray(rng.randbytes(size))
    tricky = b"\r\n--" + BOUNDARY[:-1].encode() + b"\r\n\r\n--"
    for at in range(0, max(size - len(tricky), 0), max(size // 7, len(tricky))):
        body[at : at + len(tricky)] = tricky
    return bytes(body)


def upload(
    app: Flask,
    recorder: Recorder,
    body: bytes,
    *,
    content_type: str = MULTIPART,
    max_bytes: int = 10 * MiB,
    environ: dict[str, Any] | None = None,
    drop_content_length: bool = False,
) -> dict[str, Any]:
    """Run gateway.files.upload on a real request whose body is `body`."""
    stream = io.BytesIO(body)
    recorder.stream = stream
    builder = EnvironBuilder(
        path="/api/v1/clients/client-1/documents",
        method="POST",
        input_stream=stream,
        content_type=content_type,
        environ_overrides=environ,
    )
    try:
        wsgi_environ = builder.get_environ()
        if drop_content_length:
            del wsgi_environ["CONTENT_LENGTH"]
        with app.request_context(wsgi_environ):
            return files.upload(request, recorder.begin, DOCUMENTS_URL, max_bytes)
    finally:
        builder.close()
        stream.close()


# --- the normal way --------------------------------------------------------------------


def test_fields_reach_begin_before_the_file_is_read(app, recorder):
    data = payload(3 * MiB)
    body = FIELDS + file_part(data) + END

    result = upload(app, recorder, body)

    assert recorder.steps == ["begin", "send"]
    assert recorder.fields == {
        "document_type": "baringsverslag",
        "removal_date": "2026-05-01",
        "filename": "verslag.pdf",
    }
    # begin ran while most of the file was still unread: nothing buffered the whole body
    assert recorder.consumed_at_begin is not None
    assert recorder.consumed_at_begin < len(body) - 2 * MiB
    assert recorder.sent_to == (DOCUMENTS_URL, recorder.grant)
    assert result == {"id": "doc-1", "size": len(data)}


def test_the_file_bytes_arrive_unchanged_in_several_chunks(app, recorder):
    data = payload(2 * MiB + 12345)

    upload(app, recorder, FIELDS + file_part(data) + END)

    assert recorder.received == data
    assert len(recorder.chunks) > 1


def test_an_empty_file_arrives_as_no_bytes(app, recorder):
    upload(app, recorder, FIELDS + file_part(b"") + END)

    assert recorder.steps == ["begin", "send"]
    assert recorder.received == b""


def test_field_values_are_trimmed_and_decoded_as_utf8(app, recorder):
    body = field("document_type", "  lab_uitslag \r\n") + field("note", "één") + file_part(b"x")

    upload(app, recorder, body + END)

    assert recorder.fields == {
        "document_type": "lab_uitslag",
        "note": "één",
        "filename": "verslag.pdf",
    }


def test_a_field_after_the_file_is_not_waited_for(app, recorder):
    data = payload(5000)
    body = field("document_type", "kraambed") + file_part(data) + field("late", "x") + END

    upload(app, recorder, body)

    assert recorder.fields == {"document_type": "kraambed", "filename": "verslag.pdf"}
    assert recorder.received == data


def test_another_file_part_before_the_file_is_skipped(app, recorder):
    other = payload(4000)
    data = payload(6000)
    body = FIELDS + file_part(other, name="bijlage", filename="x.pdf") + file_part(data) + END

    upload(app, recorder, body)

    assert recorder.fields["filename"] == "verslag.pdf"
    assert recorder.received == data


def test_a_body_the_server_terminates_without_content_length_is_read(app, recorder):
    """A chunked request behind gunicorn: no Content-Length, wsgi.input_terminated."""
    data = payload(300_000)

    upload(
        app,
        recorder,
        FIELDS + file_part(data) + END,
        environ={"wsgi.input_terminated": True},
        drop_content_length=True,
    )

    assert recorder.received == data


# --- refused forms ---------------------------------------------------------------------


def test_a_form_without_a_file_part_is_refused(app, recorder):
    with pytest.raises(InvalidInput) as caught:
        upload(app, recorder, FIELDS + END)

    assert caught.value.code == "missing_file"
    assert recorder.steps == []


def test_a_form_whose_only_file_has_another_name_is_refused(app, recorder):
    body = FIELDS + file_part(b"%PDF-1.7", name="bijlage") + END

    with pytest.raises(InvalidInput) as caught:
        upload(app, recorder, body)

    assert caught.value.code == "missing_file"
    assert recorder.steps == []


def test_a_file_part_without_a_filename_is_refused(app, recorder):
    with pytest.raises(InvalidInput) as caught:
        upload(app, recorder, FIELDS + file_part(b"%PDF-1.7", filename="") + END)

    assert caught.value.code == "missing_file"
    assert recorder.steps == []


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data",  # no boundary
        "text/plain; boundary=" + BOUNDARY,
    ],
)
def test_a_body_that_is_not_multipart_is_refused(app, recorder, content_type):
    body = FIELDS + file_part(b"%PDF-1.7") + END

    with pytest.raises(InvalidInput) as caught:
        upload(app, recorder, body, content_type=content_type)

    assert caught.value.code == "not_multipart"
    assert recorder.steps == []


def test_a_field_that_is_too_long_is_refused(app, recorder):
    body = field("document_type", "x" * (files.MAX_FIELD_BYTES + 1)) + file_part(b"x") + END

    with pytest.raises(InvalidInput) as caught:
        upload(app, recorder, body)

    assert caught.value.code == "field_too_long"
    assert recorder.steps == []


# --- size ------------------------------------------------------------------------------


def test_a_file_of_exactly_max_bytes_passes(app, recorder):
    data = payload(4096)

    upload(app, recorder, FIELDS + file_part(data) + END, max_bytes=4096)

    assert recorder.received == data


def test_a_file_over_max_bytes_is_too_large(app, recorder):
    data = payload(4097)

    with pytest.raises(TooLarge) as caught:
        upload(app, recorder, FIELDS + file_part(data) + END, max_bytes=4096)

    assert caught.value.code == "file_too_large"
    assert recorder.steps == ["begin", "send"]
    assert len(recorder.received) > 4096  # the receiver sees the excess and refuses it too


def test_a_large_file_over_max_bytes_stops_streaming(app, recorder):
    data = payload(5 * MiB // 2)
    limit = 2 * MiB  # the declared length is within limit + FORM_OVERHEAD: only streaming tells

    with pytest.raises(TooLarge):
        upload(app, recorder, FIELDS + file_part(data) + END, max_bytes=limit)

    assert recorder.steps == ["begin", "send"]
    assert limit < len(recorder.received) < len(data)
    assert data.startswith(recorder.received)


def test_a_declared_length_far_over_max_bytes_is_refused_before_begin(app, recorder):
    data = payload(files.FORM_OVERHEAD + 2000)

    with pytest.raises(TooLarge):
        upload(app, recorder, FIELDS + file_part(data) + END, max_bytes=1000)

    assert recorder.steps == []


# --- truncated bodies ------------------------------------------------------------------


def test_a_body_that_ends_inside_the_file_is_a_truncated_upload(app, recorder):
    data = payload(600_000)
    body = FIELDS + file_part(data, closing=False)
    cut = body[: len(body) - 200_000]

    with pytest.raises(files.TruncatedUpload):
        upload(app, recorder, cut)

    assert recorder.steps == ["begin", "send"]
    assert data.startswith(recorder.received)
    assert len(recorder.received) < len(data)


def test_a_sender_that_goes_away_inside_the_file_is_a_truncated_upload(app, recorder):
    """Behind gunicorn the server terminates the input: a lost client just ends the stream."""
    data = payload(600_000)
    body = FIELDS + file_part(data) + END
    cut = body[: len(body) // 2]

    with pytest.raises(files.TruncatedUpload):
        upload(
            app,
            recorder,
            cut,
            environ={"wsgi.input_terminated": True, "CONTENT_LENGTH": str(len(body))},
        )

    assert data.startswith(recorder.received)


def test_a_body_that_ends_inside_the_fields_is_a_truncated_upload(app, recorder):
    body = FIELDS + file_part(b"%PDF-1.7") + END
    cut = body[: len(FIELDS) - 10]

    with pytest.raises(files.TruncatedUpload):
        upload(app, recorder, cut)

    assert recorder.steps == []


def test_a_body_without_its_closing_boundary_is_a_truncated_upload(app, recorder):
    data = payload(5000)

    with pytest.raises(files.TruncatedUpload):
        upload(app, recorder, FIELDS + file_part(data))

    # every byte of the file may have gone on; the missing end still fails the upload
    assert data.startswith(recorder.received)


# --- senders cut off (gateway/worker.py) ----------------------------------------------


class CutOff(io.RawIOBase):
    """A request body that raises after `data`, as gunicorn's does under the worker's pace."""

    def __init__(self, data: bytes, error: Exception) -> None:
        self._data = data
        self._error = error

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._data:
            raise self._error
        size = min(len(buffer), len(self._data))
        buffer[:size], self._data = self._data[:size], self._data[size:]
        return size


def _upload_cut_off(app: Flask, recorder: Recorder, sent: bytes, full: int, error: Exception):
    builder = EnvironBuilder(
        path="/api/v1/clients/client-1/documents",
        method="POST",
        environ_overrides={"wsgi.input_terminated": True},
    )
    try:
        environ = builder.get_environ()
        environ.update(
            {
                "wsgi.input": CutOff(sent, error),
                "CONTENT_TYPE": MULTIPART,
                "CONTENT_LENGTH": str(full),
            }
        )
        with app.request_context(environ):
            return files.upload(request, recorder.begin, DOCUMENTS_URL, 10 * MiB)
    finally:
        builder.close()


def test_a_sender_cut_off_for_being_too_slow_is_told_so_and_the_stream_ends(app, recorder):
    data = payload(600_000)
    body = FIELDS + file_part(data) + END

    with pytest.raises(files.StalledUpload) as raised:
        _upload_cut_off(app, recorder, body[: len(body) // 2], len(body), TooSlow("paused"))

    assert raised.value.status == 408
    assert raised.value.code == "upload_too_slow"
    # the body sent on to documents raised instead of ending: documents sees a cut body
    assert recorder.steps == ["begin", "send"]
    assert data.startswith(recorder.received) and len(recorder.received) < len(data)


def test_a_sender_cut_off_before_the_file_never_gets_a_ticket(app, recorder):
    body = FIELDS + file_part(b"%PDF-1.7") + END

    with pytest.raises(files.StalledUpload):
        _upload_cut_off(app, recorder, body[:20], len(body), TooSlow("paused"))

    assert recorder.steps == []


def test_a_connection_that_breaks_is_a_truncated_upload_not_a_store_failure(app, recorder):
    data = payload(600_000)
    body = FIELDS + file_part(data) + END
    reset = ConnectionResetError("connection reset by peer")

    with pytest.raises(files.TruncatedUpload) as raised:
        _upload_cut_off(app, recorder, body[: len(body) // 2], len(body), reset)

    assert type(raised.value) is files.TruncatedUpload
