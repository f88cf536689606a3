"""The pages' catalogue is whole, and a language is chosen per browser, not per request
to the API."""

from __future__ import annotations

from flask import Flask
from flask_babel import force_locale, gettext

from gateway import i18n
from ops import translations
from overdracht.contracts import InvalidInput


def test_every_text_is_in_the_catalogue_translated_and_compiled():
    assert translations.problems() == []


def english(app: Flask, text: str) -> str:
    with app.test_request_context(), force_locale("en"):
        return gettext(text)


def test_pages_are_dutch_until_english_is_chosen_and_then_stay_english(app):
    client = app.test_client()
    page = client.get("/inloggen").get_data(as_text=True)
    assert '<html lang="nl">' in page and "Wachtwoord" in page

    switched = client.get("/inloggen?lang=en")
    assert switched.status_code == 302 and switched.location == "/inloggen"
    assert client.get_cookie("taal").value == "en"
    page = client.get("/inloggen").get_data(as_text=True)
    assert '<html lang="en">' in page
    assert english(app, "Wachtwoord") != "Wachtwoord"
    assert english(app, "Wachtwoord") in page and "Wachtwoord" not in page
    # every page offers the way back
    assert 'href="/inloggen?lang=nl"' in page and "Nederlands" in page

    client.get("/inloggen?lang=nl")
    assert '<html lang="nl">' in client.get("/inloggen").get_data(as_text=True)


def test_choosing_keeps_the_rest_of_the_address_and_ignores_unknown_languages(app):
    client = app.test_client()
    kept = client.get("/activeren?token=abc&lang=en")
    assert kept.location == "/activeren?token=abc"
    client = app.test_client()
    refused = client.get("/inloggen?lang=xx")
    assert refused.location == "/inloggen" and client.get_cookie("taal") is None
    assert '<html lang="nl">' in client.get("/inloggen").get_data(as_text=True)


def test_the_api_answers_in_dutch_whatever_the_browser_chose(app):
    client = app.test_client()
    client.set_cookie("taal", "en")
    answer = client.get("/api/v1/me?lang=en")
    assert answer.status_code == 401  # not redirected: the parameter means nothing here
    assert answer.get_json()["error"]["message"] == "U bent niet ingelogd."


def test_a_services_error_is_shown_translated_with_its_values_put_in_afterwards(app):
    error = InvalidInput("Kies een datum na %(day)s.", "late", params={"day": "01-02-2027"})
    assert error.message == "Kies een datum na 01-02-2027."
    with app.test_request_context():
        assert i18n.error_text(error) == "Kies een datum na 01-02-2027."  # Dutch by default
        # a text the catalogue lacks is shown as it came, values and all
        with force_locale("en"):
            assert i18n.error_text(error) == "Kies een datum na 01-02-2027."


def test_a_list_of_texts_in_an_error_is_translated_and_listed_as_the_language_lists(app):
    reasons = ["bevat een jaartal of datum", "bevat een reeks (zoals abcd of 1234)"]
    error = InvalidInput(
        "Dit wachtwoord is te makkelijk te raden: het %(reasons)s. "
        "Kies bijvoorbeeld een zin van vier of meer ongewone woorden.",
        "weak_password",
        params={"reasons": reasons},
    )
    assert error.message.startswith(
        f"Dit wachtwoord is te makkelijk te raden: het {reasons[0]} en "
    )
    with app.test_request_context():
        assert i18n.error_text(error) == error.message
        with force_locale("en"):
            shown = i18n.error_text(error)
    first, second = (english(app, reason) for reason in reasons)
    assert first != reasons[0]
    assert f"{first} and {second}" in shown
    assert " en " not in shown
