"""Every route of the gateway (API and pages) and the roles that may use it: one table.

The access matrix (tests/e2e/test_access_matrix.py) checks every cell of it, and that it
covers the gateway's route map; the browser's layout test opens every page in it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from overdracht.contracts import ROLES
from tests.support import in_weeks, pdf

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
    api("GET", "/clients", {Z}),
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
    api("PATCH", "/documents/{document}", {Z}, json={"removal_date": in_weeks(3)}),
    api("GET", "/audit/events", {A}),
    api("POST", "/provider-lists", {C}, files={"file": ("lijst.csv", CSV)}),
    api("GET", "/region/accounts", {C}),
    api("GET", "/provider-lists", {B}),
    api("GET", "/provider-lists/{list}", {B}),
    api("POST", "/provider-lists/{list}/register", {B}),
    api("POST", "/provider-lists/{list}/reject", {B}),
    api("GET", "/accounts", {B}),
    api("POST", "/accounts", {B}, json={"role": Z, "full_name": ""}),
    api("POST", "/accounts/{target}/unlock", {B}),
    api("POST", "/accounts/{target}/reset", {B}),
    api("POST", "/accounts/{target}/deactivate", {B}),
    page("GET", "/overzicht", EVERYONE),
    page("POST", "/sessie", EVERYONE),
    page("GET", "/wachtwoord", EVERYONE),
    page("POST", "/wachtwoord", EVERYONE, data={"current_password": "x" * 12}),
    page("GET", "/authenticator", EVERYONE),
    page("POST", "/authenticator", EVERYONE, data={"code": "000000"}),
    page("GET", "/authenticator/herstelcodes", EVERYONE),
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
    page("POST", "/documenten/{document}/verwijderdatum", {Z}, data={"removal_date": in_weeks(3)}),
    page("GET", "/audit", {A}),
    page("GET", "/audit/export.csv", {A}),
    page("POST", "/audit/client", {A}, data={"birth_date": "1990-01-01", "bsn": "111222333"}),
    page("GET", "/audit/clienten/{client}", {A}),
    page("GET", "/regio", {C}),
    page("POST", "/regio", {C}, files={"file": ("lijst.csv", CSV)}),
    page("GET", "/beheer", {B}),
    page("GET", "/beheer/nieuw", {B}),
    page("POST", "/beheer/nieuw", {B}, data={"role": Z}),
    page("GET", "/beheer/lijsten", {B}),
    page("GET", "/beheer/lijsten/{list}", {B}),
    page("POST", "/beheer/lijsten/{list}/registreren", {B}),
    page("POST", "/beheer/lijsten/{list}/afwijzen", {B}),
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


def role_sessions(harness: Any) -> dict[str, Any]:
    """One logged-in API session per role."""
    return {
        role: harness.provider(role=role, region="Regio Matrix", profession="verloskundige")
        for role in ROLES
    }


def resource_ids(harness: Any, sessions: dict[str, Any]) -> dict[str, str]:
    """What the paths name: the zorgverlener's own client and document, a submitted list,
    and a username nobody has."""
    client = harness.new_client(sessions[Z])
    document = harness.upload(sessions[Z], client["id"]).json()
    listing = CSV.replace(b"anna-matrix", uuid.uuid4().hex[:8].encode())
    submitted = sessions[C].post("/provider-lists", files={"file": ("matrix.csv", listing)})
    return {
        "client": client["id"],
        "document": document["id"],
        "list": submitted.json()["list_id"],
        "target": f"niemand-{uuid.uuid4().hex[:6]}",
    }
