"""Errors mapped once: remote exception types to HTTP status codes and the API's error shape.

The API answers in Dutch; a page (or a page's script) shows the same error in its own
language: the texts here are marked with N_ and translated only for a page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask, jsonify, render_template, request
from flask_babel import gettext
from kombu.exceptions import KombuError
from nameko.exceptions import RemoteError, RpcTimeout, UnknownService
from werkzeug.exceptions import HTTPException

from gateway.i18n import api_request, error_text
from overdracht.contracts import N_, UNAVAILABLE_MESSAGE, InvalidInput, OverdrachtError

log = logging.getLogger(__name__)

INTERNAL = N_("Er ging iets mis. Probeer het later opnieuw.")
#: what an HTTP error says (Dutch, as the API answers; translated for a page)
HTTP_MESSAGES = {
    404: N_("Niet gevonden."),
    405: N_("Deze methode is hier niet toegestaan."),
    413: N_("Het verzoek is te groot."),
    400: N_("Ongeldig verzoek."),
}


class MalformedRequest(InvalidInput):
    """A body that is not what the endpoint reads (bad JSON): 400, not 422."""

    code = "malformed_request"


def status_of(exc: OverdrachtError) -> int:
    return 400 if isinstance(exc, MalformedRequest) else exc.status


#: page routes a script calls, answered in the API's error shape too
JSON_PAGES = frozenset({"pages.keep_session"})
#: page routes answered in JSON when the page's script sends them (X-Requested-With)
SCRIPTED_PAGES = frozenset({"pages.upload"})


def wants_json() -> bool:
    return (
        request.path.startswith("/api/")
        or request.endpoint in JSON_PAGES
        or (
            request.endpoint in SCRIPTED_PAGES
            and request.headers.get("X-Requested-With") == "fetch"
        )
    )


def respond(status: int, code: str, message: str, shown: Callable[[], str] | None = None):
    """The error in the API's shape or as the error page.

    message is the Dutch text, as the API answers it; a page, and the JSON a page's script
    reads (the upload's), show shown() instead, the text in the page's language (by
    default the message translated, for a text marked with N_ without values).
    """
    if api_request():
        return jsonify(error={"code": code, "message": message}), status
    text = shown() if shown is not None else gettext(message)
    if wants_json():
        return jsonify(error={"code": code, "message": text}), status
    return render_template("error.html", status=status, message=text), status


def with_retry_after(result, exc: Exception):
    """A throttled answer says when to try again (Retry-After, in seconds)."""
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is None:
        return result
    body, status = result
    return body, status, {"Retry-After": str(retry_after)}


def register(app: Flask) -> None:
    @app.errorhandler(OverdrachtError)
    def overdracht_error(exc: OverdrachtError):
        answer = respond(status_of(exc), exc.code, exc.message, lambda: error_text(exc))
        return with_retry_after(answer, exc)

    @app.errorhandler(RpcTimeout)
    @app.errorhandler(UnknownService)
    @app.errorhandler(KombuError)
    @app.errorhandler(OSError)
    def unavailable(exc: Exception):
        log.error("service unavailable: %s", type(exc).__name__)
        return respond(503, "unavailable", UNAVAILABLE_MESSAGE)

    @app.errorhandler(RemoteError)
    def remote_error(exc: RemoteError):
        log.error("service error: %s", exc.exc_type)
        return respond(500, "internal_error", INTERNAL)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        return respond(exc.code or 500, code, HTTP_MESSAGES.get(exc.code or 500, INTERNAL))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unexpected error")
        return respond(500, "internal_error", INTERNAL)
