"""The gateway's own texts: Dutch as before by default, through the catalogue for English.

The English here comes from a small catalogue made in the test, not the real one: what is
checked is that the pages' Python asks the catalogue, puts the values in after
translating, and keeps the API Dutch.
"""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.mofile import write_mo
from babel.support import Translations
from flask import Flask, session
from flask_babel import lazy_gettext

from gateway import i18n
from gateway.forms import refused
from gateway.labels import EVENT_LABELS, ROLE_LABELS, actor_label, outcome_label, translated
from gateway.pages import audit_csv, days_left, dutch_size
from ops import translations
from overdracht import contracts as c
from overdracht.contracts import Forbidden, InvalidInput
from overdracht.timezone import today

NBSP = "\N{NO-BREAK SPACE}"
ENGLISH = {
    ("nog %(num)d dag", "nog %(num)d dagen"): ("%(num)d day left", "%(num)d days left"),
    "Kies een datum na %(day)s.": "Choose a date after %(day)s.",
    "Document geplaatst": "Document uploaded",
    "Zorgverlener": "Care provider",
    "afgebroken": "interrupted",
    "niet afgeleverd (%(how)s)": "not delivered (%(how)s)",
    "Volgnummer": "Sequence number",
    "Niet gevonden.": "Not found.",
    "Het account van %(name)s is ontgrendeld.": "%(name)s's account is unlocked.",
    "Dit e-mailadres staat al op regel %(line)s.": "Row %(line)s has this email address.",
    "Ongeldig e-mailadres.": "Invalid email address.",
    "Beroep ontbreekt.": "Profession missing.",
}
GATEWAY_FILES = ("pages.py", "onboarding.py", "forms.py", "errors.py", "labels.py", "session.py")


@pytest.fixture
def english(app: Flask) -> Flask:
    """The app with a small English catalogue of its own, whatever the real one holds."""
    catalogue = Catalog(locale="en")
    for dutch, english in ENGLISH.items():
        catalogue.add(dutch, english)
    compiled = io.BytesIO()
    write_mo(compiled, catalogue)
    compiled.seek(0)
    with app.app_context():
        domain = app.extensions["babel"].instance.domain_instance
    domain.cache["en", "messages"] = Translations(compiled)
    return app


def in_english(app: Flask, path: str = "/overzicht"):
    return app.test_request_context(path, headers={"Cookie": f"{i18n.COOKIE}=en"})


def test_the_gateways_texts_are_found_by_extraction(capsys):
    found = set()
    for name in GATEWAY_FILES:
        path = translations.ROOT / "gateway" / name
        messages = extract_from_file("python", path, i18n.KEYWORDS)
        found |= {m[1] if isinstance(m[1], str) else m[1][0] for m in messages}
    assert "Skipping" not in capsys.readouterr().err
    assert {"nog %(num)d dag", "Volgnummer", "Zorgverlener", "Niet gevonden."} <= found


def test_sizes_and_days_are_dutch_as_before_on_a_page(app):
    with app.test_request_context("/overzicht"):
        assert dutch_size(40_000) == f"40,0{NBSP}kB"
        assert dutch_size(1_250_000) == f"1,2{NBSP}MB"
        assert dutch_size(999) == f"999{NBSP}bytes"
        assert days_left((today() + timedelta(days=1)).isoformat()) == "nog 1 dag"
        assert days_left((today() + timedelta(days=12)).isoformat()) == "nog 12 dagen"
        assert days_left(today().isoformat()) == "nog 0 dagen"
        assert days_left("geen datum") == ""


def test_sizes_have_a_decimal_point_in_english(app):
    with in_english(app):
        assert i18n.language() == "en"
        assert dutch_size(40_000) == f"40.0{NBSP}kB"
        assert dutch_size(104_857_600) == f"104.9{NBSP}MB"


def test_days_left_in_english_come_from_the_catalogue_singular_and_plural(english):
    with in_english(english):
        assert days_left((today() + timedelta(days=1)).isoformat()) == "1 day left"
        assert days_left((today() + timedelta(days=12)).isoformat()) == "12 days left"


def test_a_services_error_is_translated_with_its_values_put_in_afterwards(english):
    error = InvalidInput("Kies een datum na %(day)s.", "late", params={"day": "01-02-2027"})
    with english.test_request_context("/overzicht"):
        assert i18n.error_text(error) == error.message == "Kies een datum na 01-02-2027."
    with in_english(english):
        assert i18n.error_text(error) == "Choose a date after 01-02-2027."
        assert i18n.field_texts({"bsn": "Niet gevonden."}) == {"bsn": "Not found."}
    # the message itself stays Dutch: the API answers with it
    assert error.message == "Kies een datum na 01-02-2027."


def test_labels_are_plain_texts_in_the_pages_language(english):
    downloaded = {"event": c.DOCUMENT_DOWNLOADED, "delivery": c.DELIVERY_INTERRUPTED}
    provider = {"name": "Anna de Vries", "role": c.ZORGVERLENER}
    with english.test_request_context("/audit"):
        assert outcome_label(downloaded) == "niet afgeleverd (afgebroken)"
        assert actor_label(provider) == "Anna de Vries (Zorgverlener)"
        assert translated(EVENT_LABELS)[c.DOCUMENT_UPLOADED] == "Document geplaatst"
    with in_english(english, "/audit"):
        assert outcome_label(downloaded) == "not delivered (interrupted)"
        assert actor_label(provider) == "Anna de Vries (Care provider)"
        labels = translated(EVENT_LABELS)
        assert labels[c.DOCUMENT_UPLOADED] == "Document uploaded"
        assert all(type(label) is str for label in labels.values())
        assert type(outcome_label({"outcome": "success"})) is str


def test_labels_work_outside_a_request_in_dutch():
    """As the end-to-end tests use them: no app, no request."""
    assert outcome_label({"event": c.DOCUMENT_DOWNLOADED, "delivered": True}) == "afgeleverd"
    assert outcome_label({"event": c.DOCUMENT_DOWNLOADED}) == "niet afgeleverd"
    assert outcome_label({"withheld": True}) == "niet getoond (geen antwoord gegeven)"
    assert actor_label({"type": "system"}) == "Overdracht (automatisch)"
    assert actor_label({}) == "onbekend"
    assert ROLE_LABELS[c.ZORGVERLENER] == "Zorgverlener"
    assert type(actor_label({"username": "avries", "role": c.AUDITOR})) is str


def test_a_refusal_keeps_plain_texts_in_the_session_cookie(english):
    with in_english(english, "/clienten/nieuw"):
        refused("pages.new_client", {"form": lazy_gettext("Niet gevonden.")}, {"bsn": "1"})
        errors = session["left_for"]["data"]["errors"]
        assert errors == {"form": "Not found."} and type(errors["form"]) is str


def test_the_audit_export_has_its_headers_in_the_pages_language(english):
    event = {"seq": 1, "event": c.DOCUMENT_UPLOADED, "outcome": "success", "event_id": "e1"}
    with english.test_request_context("/audit/export.csv"):
        dutch = audit_csv([event])
    assert dutch.startswith("\ufeffVolgnummer;Tijdstip;") and ";Document geplaatst;" in dutch
    with in_english(english, "/audit/export.csv"):
        text = audit_csv([event])
    assert text.startswith("\ufeffSequence number;") and ";Document uploaded;" in text


def test_an_error_page_is_translated_and_the_api_stays_dutch(english):
    client = english.test_client()
    client.set_cookie(i18n.COOKIE, "en")
    page = client.get("/bestaat-niet")
    assert page.status_code == 404 and "Not found." in page.get_data(as_text=True)
    answer = client.get("/api/v1/bestaat-niet")
    assert answer.status_code == 404
    assert answer.get_json()["error"]["message"] == "Niet gevonden."


def test_a_service_error_on_a_page_is_shown_in_its_language(english):
    @english.get("/test-fout")
    def fails():
        raise InvalidInput("Kies een datum na %(day)s.", "late", params={"day": "01-02-2027"})

    @english.get("/api/v1/test-fout")
    def api_fails():
        raise Forbidden("Kies een datum na %(day)s.", "late", params={"day": "01-02-2027"})

    client = english.test_client()
    client.set_cookie(i18n.COOKIE, "en")
    assert "Choose a date after 01-02-2027." in client.get("/test-fout").get_data(as_text=True)
    answer = client.get("/api/v1/test-fout").get_json()
    assert answer["error"]["message"] == "Kies een datum na 01-02-2027."


def test_a_provider_lists_row_problems_are_shown_in_the_pages_language(english):
    from gateway.onboarding import _rows_translated
    from services.auth import lists

    rows = [
        {
            "line": 3,
            "message": "…",
            "fields": {"email": "Ongeldig e-mailadres.", "profession": "Beroep ontbreekt."},
        },
        {"line": 4, "message": "…", "template": lists.DUPLICATE, "params": {"line": 2}},
        {"line": 5, "message": "Niet gevonden."},
    ]
    with in_english(english):
        shown = _rows_translated(rows, "message")
    assert shown == [
        {"line": 3, "message": "Invalid email address. Profession missing."},
        {"line": 4, "message": "Row 2 has this email address."},
        {"line": 5, "message": "Not found."},
    ]
