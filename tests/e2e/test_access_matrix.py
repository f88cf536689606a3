"""Every role against every endpoint and page, generated from one table.

ROUTES (tests/routes.py) names, for every route of the API and the pages, the roles that
may use it. Each cell (route × anonymous and the four roles) is a test case: nobody gets
in without a session, a role not listed is refused for its role, a role listed is not.
The table is
checked against the gateway's own route map, so a new route without a row fails here.

A role that may use a route may still be refused for other reasons (no treatment
relationship, an unknown id, invalid input): those answers are not a refusal for the role,
which is all this test is about.
"""

from __future__ import annotations

import re

import pytest
import requests

from gateway import create_app
from overdracht.contracts import ROLES
from tests.routes import PUBLIC, ROUTES, Route, Z, resource_ids, role_sessions
from tests.support import Api


def _pattern(rule: str) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", "{}", rule)


def test_the_table_covers_every_route_of_the_gateway(platform):
    """(platform: create_app reads the settings the test platform put in the environment)"""
    table = {
        (
            r.method,
            _pattern(("/api/v1" if r.kind == "api" else "") + re.sub(r"{\w+}", "<x>", r.path)),
        )
        for r in ROUTES
    }
    routes = set()
    for rule in create_app().url_map.iter_rules():
        if rule.endpoint in PUBLIC:
            continue
        path = rule.rule
        if "<action>" in path:  # one route for unlock, reset and deactivate
            paths = [path.replace("<action>", a) for a in ("unlock", "reset", "deactivate")]
        else:
            paths = [path]
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes |= {(method, _pattern(p)) for p in paths}
    assert routes == table


# --- the cells -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sessions(harness) -> dict[str, Api]:
    return role_sessions(harness)


@pytest.fixture(scope="module")
def ids(harness, sessions) -> dict[str, str]:
    return resource_ids(harness, sessions)


def _browser(harness, session: Api | None) -> tuple[requests.Session, str]:
    """A page session with the API session's token as its cookie, and its CSRF value."""
    browser = requests.Session()
    if session is None:
        return browser, ""
    token = session.headers["Authorization"].removeprefix("Bearer ")
    browser.cookies.set("overdracht_session", token)
    overview = browser.get(harness.url + "/overzicht", allow_redirects=False)
    return browser, re.search(r'name="csrf" value="([^"]+)"', overview.text).group(1)


def _call(harness, route: Route, session: Api | None, ids: dict[str, str]) -> requests.Response:
    path = route.path.format(**ids)
    request = dict(route.request)
    if route.kind == "api":
        caller = session if session is not None else harness.anonymous()
        return caller.request(route.method, path, **request)
    browser, csrf = _browser(harness, session)
    if route.method == "POST":
        request["data"] = {"csrf": csrf, **request.get("data", {})}
    return browser.request(route.method, harness.url + path, allow_redirects=False, **request)


def _refused_for_role(response: requests.Response, route: Route) -> bool:
    if route.kind == "api":
        return response.status_code == 403 and response.json()["error"]["code"] == "role"
    return response.status_code == 403


def _refused_without_session(response: requests.Response, route: Route) -> bool:
    if route.kind == "api":
        return response.status_code == 401
    if route.method == "POST":  # no session, no CSRF value: refused before anything else
        return response.status_code == 400 or _to_login(response)
    return _to_login(response)


def _to_login(response: requests.Response) -> bool:
    return response.status_code == 302 and response.headers["Location"].endswith("/inloggen")


CELLS = [(route, who) for route in ROUTES for who in (None, *ROLES)]


@pytest.mark.parametrize(
    ("route", "who"), CELLS, ids=[f"{r.id} as {who or 'anonymous'}" for r, who in CELLS]
)
def test_cell(harness, sessions, ids, route, who):
    response = _call(harness, route, sessions.get(who), ids)
    if who is None:
        assert _refused_without_session(response, route), response.status_code
    elif who in route.allowed:
        assert response.status_code not in (401, 500), response.text[:300]
        assert not _refused_for_role(response, route), response.text[:300]
        assert not _to_login(response)
    else:
        assert _refused_for_role(response, route), (response.status_code, response.text[:300])


FORMS = [r for r in ROUTES if r.kind == "page" and r.method == "POST"]


@pytest.mark.parametrize("route", FORMS, ids=[r.id for r in FORMS])
def test_every_form_refuses_a_post_without_its_csrf_value(harness, sessions, ids, route):
    """Another site's page can make her browser post with her cookie, not with this value."""
    who = next(iter(sorted(route.allowed)))
    browser, _ = _browser(harness, sessions[who])
    request = dict(route.request)
    request["data"] = {**request.get("data", {}), "csrf": "forged"}
    documents = f"/clients/{ids['client']}/documents"
    before = sessions[Z].get(documents).json()["documents"]
    response = browser.post(
        harness.url + route.path.format(**ids), allow_redirects=False, **request
    )
    if route.path.endswith("/documenten"):  # checked once the stream reaches the field
        assert response.status_code == 302
    else:
        assert response.status_code == 400, response.text[:300]
    assert sessions[Z].get(documents).json()["documents"] == before
