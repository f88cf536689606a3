"""File bodies through the gateway: multipart in, parsed as it arrives, piped to documents.

Flask's `request.files` spools anything over 500 KB to a temporary file; a document
must never touch local disk, so the form is decoded incrementally here and the file
part goes straight on to the documents service, chunk by chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import requests
from flask import Request
from werkzeug.exceptions import ClientDisconnected
from werkzeug.sansio.multipart import (
    NEED_DATA,
    Data,
    Epilogue,
    Field,
    File,
    MultipartDecoder,
)

from gateway.worker import BODY_PIECE, TooSlow
from overdracht.contracts import (
    N_,
    TICKET_HEADER,
    IntegrityFailure,
    InvalidInput,
    TooLarge,
    Unavailable,
    error_for_status,
)

CHUNK = BODY_PIECE
#: a download is passed on in pieces this large: a quarter of the per-piece work of CHUNK
RELAY_CHUNK = 1024 * 1024
STORE_AWAY = N_("De documentenopslag is niet bereikbaar.")
TRUNCATED = N_("Het verzenden is afgebroken; probeer het opnieuw.")
TOO_SLOW = N_("Het verzenden stond te lang stil of ging te traag; probeer het opnieuw.")
MAX_FIELD_BYTES = 4096
#: multipart framing and the small fields around the file
FORM_OVERHEAD = 1024 * 1024


class TruncatedUpload(InvalidInput):
    """The sender went away before the form ended.

    Not an OSError on purpose: raised inside the body that requests streams to documents,
    an OSError would be taken for documents failing.
    """

    code = "truncated_upload"


class StalledUpload(TruncatedUpload):
    """The sender paused too long or sent too slowly, and was cut off (gateway/worker.py)."""

    status = 408
    code = "upload_too_slow"


def _read(stream: Any, size: int) -> bytes:
    """A piece of the body; a sender that broke off or was cut off is a truncated upload."""
    try:
        return stream.read(size)
    except (ClientDisconnected, OSError) as exc:
        cause = exc if isinstance(exc, OSError) else exc.__context__
        if isinstance(cause, TooSlow):
            raise StalledUpload(TOO_SLOW) from None
        raise TruncatedUpload(TRUNCATED) from None


def _too_large(limit: int) -> TooLarge:
    return TooLarge(
        "Het bestand is groter dan %(mebibytes)s MiB.",
        "file_too_large",
        params={"mebibytes": limit // (1024 * 1024)},
    )


class MultipartStream:
    """Decoder events for a request body, read from the socket only as they are needed."""

    def __init__(self, request: Request) -> None:
        if request.mimetype != "multipart/form-data" or "boundary" not in request.mimetype_params:
            raise InvalidInput("Verstuur het document als multipart/form-data.", "not_multipart")
        self._stream = request.stream
        # what the decoder holds between events stays small (fields are capped again in
        # _field_value); the cap only stops a part header that never ends
        self._decoder = MultipartDecoder(
            request.mimetype_params["boundary"].encode(),
            max_form_memory_size=4 * CHUNK,
            max_parts=20,
        )

    def events(self) -> Iterator[Any]:
        ended = False
        while True:
            try:
                event = self._decoder.next_event()
            except ValueError as exc:  # werkzeug's word for a form it cannot read on
                if ended:
                    raise TruncatedUpload(TRUNCATED) from exc
                raise InvalidInput(
                    "Het formulier is niet goed opgebouwd.", "bad_multipart"
                ) from exc
            if event is NEED_DATA:
                if ended:
                    raise TruncatedUpload(TRUNCATED)
                chunk = _read(self._stream, CHUNK)
                ended = not chunk
                self._decoder.receive_data(chunk or None)
            elif isinstance(event, Epilogue):
                return
            else:
                yield event


def _part_bytes(events: Iterator[Any]) -> Iterator[bytes]:
    """The data of the current part, up to its last Data event."""
    for event in events:
        if not isinstance(event, Data):
            raise InvalidInput("Onverwachte opbouw van het formulier.", "bad_multipart")
        if event.data:
            yield event.data
        if not event.more_data:
            return
    raise TruncatedUpload(TRUNCATED)


def _field_value(events: Iterator[Any]) -> str:
    value = bytearray()
    for data in _part_bytes(events):
        value += data
        if len(value) > MAX_FIELD_BYTES:
            raise InvalidInput("Formulierveld te lang.", "field_too_long")
    return value.decode("utf-8", errors="replace").strip()


def _capped(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    """Pass chunks on; past the cap, pass that chunk too (the receiver refuses it), then stop."""
    sent = 0
    for chunk in chunks:
        sent += len(chunk)
        yield chunk
        if sent > limit:
            raise _too_large(limit)


def upload(
    request: Request,
    begin: Callable[[dict[str, str]], dict[str, Any]],
    documents_url: str,
    max_bytes: int,
) -> dict[str, Any]:
    """Read the form's fields, ask documents for a ticket, then stream the file part to it.

    The fields must come before the file part, as browsers and `curl -F` send them when
    the form lists them first; the file is never held back to wait for them.
    """
    if request.content_length is not None and request.content_length > max_bytes + FORM_OVERHEAD:
        raise _too_large(max_bytes)
    allow_upload_body(request, max_bytes)
    events = MultipartStream(request).events()
    fields: dict[str, str] = {}
    for event in events:
        if isinstance(event, Field):
            fields[event.name] = _field_value(events)
        elif isinstance(event, File) and event.name == "file":
            if not event.filename:
                raise InvalidInput("Kies een bestand.", "missing_file")
            grant = begin({**fields, "filename": event.filename})
            result = _send(documents_url, grant, _capped(_part_bytes(events), max_bytes))
            for _ in events:  # the rest of the form: nothing more is expected
                pass
            return result
        elif isinstance(event, File):
            for _ in _part_bytes(events):
                pass
    raise InvalidInput("Het formulier bevat geen bestand (veld 'file').", "missing_file")


def allow_upload_body(request: Request, max_bytes: int) -> None:
    """Raise the app's cap for small bodies to a document's, before anything reads the body.

    Set first thing: a refusal before the file (no session, auth away) still drains the
    body to be heard, and under the small cap that read would turn it into a 413.
    """
    request.max_content_length = max_bytes + FORM_OVERHEAD


def discard_rest(request: Request, max_bytes: int) -> None:
    """Read and drop what a refused upload still has on its way, so the sender hears why.

    Answering while a browser is still sending, and closing the connection, shows it
    "connection reset" instead of the message. Nothing read here is kept; a body whose
    declared length is over the limit was refused without reading and is left alone.
    """
    limit = max_bytes + FORM_OVERHEAD
    if request.content_length is not None and request.content_length > limit:
        return
    read = 0
    try:
        while read <= limit:
            chunk = request.stream.read(CHUNK)
            if not chunk:
                return
            read += len(chunk)
    except (OSError, ClientDisconnected):
        return  # the sender went away or was cut off: nobody is waiting for the answer


def _send(documents_url: str, grant: dict[str, Any], body: Iterator[bytes]) -> dict[str, Any]:
    try:
        response = requests.put(
            f"{documents_url}/internal/uploads",
            data=body,
            headers={TICKET_HEADER: grant["ticket"]},
            timeout=(5, 300),
        )
    except requests.RequestException as exc:
        raise Unavailable(STORE_AWAY) from exc
    return _answer(response)


def _answer(response: requests.Response) -> dict[str, Any]:
    if response.status_code in (200, 201):
        return response.json()
    _raise_refusal(response)


def _raise_refusal(response: requests.Response) -> NoReturn:
    """Raise the error documents answered with, in the API's error shape."""
    try:
        error = response.json()["error"]
        code, message = error["code"], error["message"]
        template, params = error.get("template", message), error.get("params") or {}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise Unavailable("De documentenopslag gaf een fout.") from None
    if not isinstance(template, str) or not isinstance(params, dict):
        template, params = message, {}
    if response.status_code == IntegrityFailure.status:  # altered bytes: not "try again later"
        raise IntegrityFailure(template, code, params=params)
    raise error_for_status(response.status_code)(template, code, params=params)


def download(documents_url: str, ticket: str) -> requests.Response:
    """Open the document's byte stream at documents; the caller iterates and closes it."""
    try:
        response = requests.get(
            f"{documents_url}/internal/downloads",
            headers={TICKET_HEADER: ticket},
            stream=True,
            timeout=(5, 300),
        )
    except requests.RequestException as exc:
        raise Unavailable(STORE_AWAY) from exc
    if response.status_code != 200:
        with response:
            _raise_refusal(response)
    return response


class Relay:
    """Documents' answer passed on to the browser, chunk by chunk (a WSGI body).

    The server closes it when it is done, also when the browser went away mid-stream or
    before the first chunk: that closes the connection to documents, which then records
    the download as interrupted instead of handing its remaining bytes to nobody.
    """

    def __init__(self, upstream: requests.Response, chunk_size: int = RELAY_CHUNK) -> None:
        self._upstream = upstream
        self._chunk_size = chunk_size

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._upstream.iter_content(self._chunk_size)
        finally:
            self.close()

    def close(self) -> None:
        self._upstream.close()
