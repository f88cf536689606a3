"""Post/Redirect/Get for every page form, also when it is refused.

A POST is never answered with a page: Back and refresh would then offer to send it
again. A refused form redirects to its own page, and what she typed (never a password or
a code) and what was wrong wait in the sealed session cookie (gateway/cookie.py) for that
page's next GET, which shows them once. Nothing of it goes into a URL.
"""

from __future__ import annotations

from typing import Any

from flask import redirect, request, session, url_for

_KEY = "refused"


def refused(page: str, errors: dict[str, str], form: dict[str, Any] | None = None, **values):
    """Redirect to page (an endpoint), leaving it the errors and what was typed."""
    session[_KEY] = {"page": page, "errors": dict(errors), "form": dict(form or {})}
    return redirect(url_for(page, **values))


def refusal(page: str) -> tuple[dict[str, Any], dict[str, str]]:
    """(what was typed, errors) a refused POST left for this page; empty ones otherwise."""
    left = session.get(_KEY)
    if isinstance(left, dict) and left.get("page") == page:
        session.pop(_KEY)
        return left.get("form") or {}, left.get("errors") or {}
    return {}, {}


def forget_refusal() -> None:
    """What a refused form left waits for its own page only: any other page drops it."""
    left = session.get(_KEY)
    if left is not None and request.endpoint not in (left.get("page"), "static"):
        session.pop(_KEY)
