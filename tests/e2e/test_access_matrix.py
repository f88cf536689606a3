"""Every role against every endpoint and page, generated from one table.

ROUTES names, for every route of the API and the pages, the roles that may use it. Each
cell (route × anonymous and the four roles) is a test case: nobody gets in without a
session, a role not listed is refused for its role, a role listed is not. The table is
checked against the gateway's own route map, so a new route without a row fails here.

A role that may use a route may still be refused for other reasons (no treatment
relationship, an unknown id, invalid input): those answers are not a refusal for the role,
which is all this test is about.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from gateway import create_app
from overdracht.contracts import ROLES
from tests.support import Api, in_weeks, pdf

Z, C, B, A = ROLES  # zorgverlener, coordinator, beheerder, auditor
EVERYONE = frozenset(ROLES)
CSV = b"Naam;E-mail;Mobiel;Beroep\r\nAnna de Vries;anna-matrix@vsv-test.nl;0612345678;arts\r\n"


@dataclass(frozen=True)
class Route:
    kind: str  # "api" or "page"
    method: str
    path: str  # {client}, {document}, {list}, {target} are filled in
    allowed: frozenset[str]
    request: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def id(self) -> str:
        return f"{self.kind} {self.method} {self.path}"


def api(method: str, path: str, allowed, **request) -> Route:
    return Route("api", method, path, frozenset(allowed), request)


def page(method: str, path: str, allowed, **request) -> Route:
    return Route("page", method, path, frozenset(allowed), request)


ROUTES = [
    api("GET", "/me", EVERYONE),
    api("POST", "/me/password", EVERYONE, json={"current_password": "x" * 12}),
    api("POST", "/me/totp", EVERYONE),
    api("POST", "/me/totp/confirm", EVERYONE, json={"code": "000000"}),
    api("GET", "/second-factor", {B}),
    # no such role: a cell that changes no policy
    api("POST", "/second-factor", {B}, json={"role": "geen-rol", "totp_required": True}),
    api("POST", "/clients/search", {Z}, json={"birth_date": "1990-01-01", "bsn": "111222333"}),
    api("POST", "/clients", {Z}, json={}),
    api("POST", "/clients/{client}/relationship", {Z}),
    api("GET", "/clients/{client}/documents", {Z}),
    api(
        "POST",
        "/clients/{client}/documents",
        {Z},
        data={"document_type": "zwangerschapskaart", "removal_date": in_weeks(4)},
        files={"file": ("a.pdf", pdf())},
    ),
    api("GET", "/documents/{document}/content", {Z}),
    api("DELETE", "/documents/{document}", {Z}),
    api("GET", "/audit/events", {A}),
    api("POST", "/provider-lists", {C}, files={"file": ("lijst.csv", CSV)}),
    api("GET", "/region/accounts", {C}),
    api("GET", "/provider-lists", {B}),
    api("GET", "/provider-lists/{list}", {B}),
    api("POST", "/provider-lists/{list}/register", {B}),
    api("GET", "/accounts", {B}),
    api("POST", "/accounts", {B}, json={"role": Z, "full_name": ""}),
    api("POST", "/accounts/{target}/unlock", {B}),
    api("POST", "/accounts/{target}/reset", {B}),
    api("POST", "/accounts/{target}/deactivate", {B}),
    page("GET", "/overzicht", EVERYONE),
    page("GET", "/wachtwoord", EVERYONE),
    page("POST", "/wachtwoord", EVERYONE, data={"current_password": "x" * 12}),
    page("GET", "/authenticator", EVERYONE),
    page("POST", "/authenticator", EVERYONE, data={"code": "000000"}),
    page("GET", "/beheer/tweestaps", {B}),
    page("POST", "/beheer/tweestaps", {B}, data={"role": "geen-rol", "totp_required": "ja"}),
    page("GET", "/clienten/zoeken", {Z}),
    page("POST", "/clienten/zoeken", {Z}, data={"birth_date": "1990-01-01"}),
    page("GET", "/clienten/nieuw", {Z}),
    page("POST", "/clienten/nieuw", {Z}, data={"maiden_name": ""}),
    page("POST", "/clienten/{client}/behandelrelatie", {Z}),
    page("GET", "/clienten/{client}", {Z}),
    page(
        "POST",
        "/clienten/{client}/documenten",
        {Z},
        files={"file": ("a.pdf", pdf())},
        data={"document_type": "zwangerschapskaart", "removal_date": in_weeks(4)},
    ),
    page("GET", "/documenten/{document}/download", {Z}),
    page("POST", "/documenten/{document}/verwijderen", {Z}),
    page("GET", "/audit", {A}),
    page("GET", "/regio", {C}),
    page("POST", "/regio", {C}, files={"file": ("lijst.csv", CSV)}),
    page("GET", "/beheer", {B}),
    page("GET", "/beheer/nieuw", {B}),
    page("POST", "/beheer/nieuw", {B}, data={"role": Z}),
    page("GET", "/beheer/lijsten", {B}),
    page("GET", "/beheer/lijsten/{list}", {B}),
    page("POST", "/beheer/lijsten/{list}/registreren", {B}),
    page("POST", "/beheer/accounts/{target}/unlock", {B}),
    page("POST", "/beheer/accounts/{target}/reset", {B}),
    page("POST", "/beheer/accounts/{target}/deactivate", {B}),
]

#: open to anyone: logging in and out, activation links, health, the API's description
PUBLIC = {
    "api.openapi",
    "api.login",
    "api.login_resend",
    "api.login_verify",
    "api.logout",
    "api.activation",
    "api.activation_code",
    "api.activation_complete",
    "pages.healthz",
    "pages.index",
    "pages.login",
    "pages.login_code",
    "pages.login_code_again",
    "pages.logout",
    "onboarding.activation",
    "onboarding.activation_code",
    "onboarding.activate",
    "static",
}


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
    """One logged-in session per role."""
    return {
        role: harness.provider(role=role, region="Regio Matrix", profession="verloskundige")
        for role in ROLES
    }


@pytest.fixture(scope="module")
def ids(harness, sessions) -> dict[str, str]:
    """The resources the paths name: the zorgverlener's own client and document, a list."""
    client = harness.new_client(sessions[Z])
    document = harness.upload(sessions[Z], client["id"]).json()
    listing = (
        sessions[C]
        .post(
            "/provider-lists",
            files={
                "file": ("matrix.csv", CSV.replace(b"anna-matrix", uuid.uuid4().hex[:8].encode()))
            },
        )
        .json()
    )
    return {
        "client": client["id"],
        "document": document["id"],
        "list": listing["list_id"],
        "target": f"niemand-{uuid.uuid4().hex[:6]}",
    }


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
