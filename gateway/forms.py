"""Post/Redirect/Get for every page form, also when it is refused.

A POST is never answered with a page: Back and refresh would then offer to send it
again. A refused form redirects to its own page, and what she typed (never a password or
a code) and what was wrong wait in the sealed session cookie (gateway/cookie.py) for that
page's next GET, which shows them once. They are left for one address (a client's page,
not every client's), and any other page drops them. Nothing of it goes into a URL.
"""

from __future__ import annotations

from typing import Any

from flask import redirect, request, session, url_for

_KEY = "left_for"


def typed(*names: str) -> dict[str, str]:
    """What she typed into these fields of the posted form, trimmed."""
    return {name: request.form.get(name, "").strip() for name in names}


def leave(page: str, data: dict[str, Any], **values: Any):
    """Redirect to page (an endpoint and its values), leaving it data for its next GET."""
    address = url_for(page, **values)
    session[_KEY] = {"path": address, "data": data}
    return redirect(address)


def left() -> dict[str, Any]:
    """What a POST left for this very page (once), or nothing."""
    waiting = session.get(_KEY)
    if isinstance(waiting, dict) and waiting.get("path") == request.path:
        session.pop(_KEY)
        return waiting.get("data") or {}
    return {}


def refused(page: str, errors: dict[str, Any], form: dict[str, Any] | None = None, **values):
    """Redirect to page, leaving it the errors (texts in the page's language, made plain
    str: a lazy text cannot go into the cookie) and what was typed."""
    texts = {name: str(text) for name, text in errors.items()}
    return leave(page, {"errors": texts, "form": dict(form or {})}, **values)


def refusal() -> tuple[dict[str, Any], dict[str, str]]:
    """(what was typed, errors) a refused POST left for this page; empty ones otherwise."""
    data = left()
    return data.get("form") or {}, data.get("errors") or {}


def forget_left() -> None:
    """What a POST left waits for its own page only: any other page drops it."""
    waiting = session.get(_KEY)
    if waiting is not None and request.endpoint != "static":
        if not isinstance(waiting, dict) or waiting.get("path") != request.path:
            session.pop(_KEY)
