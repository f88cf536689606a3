"""Per-request plumbing: RPC proxies, who is calling, and from where."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from flask import current_app, g, request, session

from overdracht.contracts import Unauthenticated, sign_system_token

COOKIE = "overdracht_session"

log = logging.getLogger(__name__)


@contextmanager
def services() -> Iterator[Any]:
    """A cluster proxy for this request: `with services() as rpc: rpc.auth.…`."""
    with current_app.extensions["rpc"].cluster() as proxy:
        yield proxy


#: a call to auth needs no longer than this; the token is good for that one method only
CALLER_TOKEN_TTL = timedelta(seconds=60)


def caller_token(call: str) -> str:
    """This gateway's signature for one call it makes before anyone is logged in (auth's)."""
    return sign_system_token("gateway", current_app.config["CALLER_KEY"], CALLER_TOKEN_TTL, call)


def access_point() -> dict[str, str]:
    """Where the request came from, for the audit log (NEN 7513: access point)."""
    return {
        "ip": request.remote_addr or "",
        "user_agent": (request.user_agent.string or "")[:300],
    }


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def session_token() -> str | None:
    """The bearer token, else the session cookie.

    Through the API a cookie alone may only read: a change needs the bearer token or the
    X-Requested-With header, which no other site's page can add without CORS (CSRF).
    """
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    token = request.cookies.get(COOKIE) or None
    if (
        token
        and request.path.startswith("/api/")
        and request.method not in SAFE_METHODS
        and not request.headers.get("X-Requested-With")
    ):
        return None
    return token


def current() -> dict[str, Any]:
    """Ask auth who holds this session; raises Unauthenticated. Cached for the request."""
    if "caller" not in g:
        token = session_token()
        if not token:
            raise Unauthenticated("U bent niet ingelogd.", "unauthenticated")
        with services() as rpc:
            g.caller = rpc.auth.authenticate(caller_token("auth.authenticate"), token)
    return g.caller


def principal() -> str:
    return current()["principal"]


def csrf_token() -> str:
    """Bound to the session token; before login, to a random value in the signed cookie."""
    token = session_token()
    if token is None:
        token = session.setdefault("visitor", secrets.token_urlsafe(32))
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"csrf:{token}".encode(), hashlib.sha256).hexdigest()


def csrf_ok(submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(submitted, csrf_token())


def set_session_cookie(response: Any, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        secure=current_app.config["SECURE_COOKIES"],
        path="/",
    )


def clear_session_cookie(response: Any) -> None:
    response.delete_cookie(COOKIE, path="/", samesite="Strict")


def record_refusal(reason: str) -> None:
    """Have the audit log record a refusal the gateway makes itself (a page for another
    role, a form without its CSRF value), as the services record theirs.

    Only for someone logged in: a request without a session names no one, and recording
    those would let anyone grow the log without bound. The refusal stands whether or not
    the record could be made.
    """
    try:
        who = principal()
        with services() as rpc:
            rpc.audit.record_refusal(who, request.endpoint or request.path, reason, access_point())
    except Unauthenticated:
        return
    except Exception as exc:  # noqa: BLE001 - the refusal is answered anyway; said in the log
        log.warning("refusal not recorded in the audit log: %s", type(exc).__name__)
