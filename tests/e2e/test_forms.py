"""The client forms as a browser posts them: every error beside its field, all at once,
what was typed kept, and a search answered Post/Redirect/Get with nothing in its URL."""

from __future__ import annotations

import re

import pytest
import requests

from gateway.pages import days_left, dutch_time
from overdracht import config
from tests.support import in_weeks, mobile, pdf, shown_again, valid_bsn


@pytest.fixture
def browser(harness) -> tuple[requests.Session, str]:
    """A page session of a zorgverlener (her token as the cookie) and its CSRF value."""
    api = harness.provider()
    session = requests.Session()
    session.cookies.set("overdracht_session", api.headers["Authorization"].removeprefix("Bearer "))
    page = session.get(harness.url + "/clienten/nieuw")
    return session, re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def field(page: str, name: str) -> str:
    return re.search(rf"<input name=\"{name}\"[^>]*>", page).group(0)


def test_a_new_client_form_shows_every_error_beside_its_field_and_keeps_what_was_typed(
    harness, browser
):
    session, csrf = browser
    typed = {"maiden_name": "Jansen", "birth_date": "1990-05-04", "bsn": "123456789"}
    typed["phone"] = "0612"
    response = session.post(harness.url + "/clienten/nieuw", data={"csrf": csrf, **typed})

    assert shown_again(response, "/clienten/nieuw")  # Post/Redirect/Get, also when refused
    assert typed["bsn"] not in response.history[0].headers["Location"]
    for name in ("bsn", "phone"):
        tag = field(response.text, name)
        assert 'aria-invalid="true"' in tag and f'aria-describedby="{name}-error"' in tag
        assert re.search(rf'<p class="field-error" id="{name}-error" role="alert">', response.text)
    for name, value in typed.items():  # BSN and phone included
        assert f'value="{value}"' in field(response.text, name)
    assert "aria-invalid" not in field(response.text, "maiden_name")
    # a refresh shows the empty form: what she typed was shown once, and the cookie
    # that carried it across the redirect never held it readable
    assert typed["bsn"] not in session.get(harness.url + "/clienten/nieuw").text
    assert typed["bsn"] not in response.history[0].headers["Set-Cookie"]


def test_a_search_is_answered_by_a_redirect_and_shown_once(harness, browser):
    session, csrf = browser
    bsn, phone = valid_bsn(), mobile()
    data = {"maiden_name": "Visser", "birth_date": "1991-02-03", "bsn": bsn, "phone": phone}
    created = session.post(
        harness.url + "/clienten/nieuw", data={"csrf": csrf, **data}, allow_redirects=False
    )
    assert created.status_code == 302

    searched = session.post(
        harness.url + "/clienten/zoeken",
        data={"csrf": csrf, "birth_date": data["birth_date"], "bsn": bsn},
        allow_redirects=False,
    )
    assert searched.status_code == 302
    location = searched.headers["Location"]
    assert location.endswith("/clienten/zoeken") and bsn not in location
    shown = session.get(harness.url + location)
    assert "Visser" in shown.text
    # a refresh shows the form again, not the results, and searches nothing
    assert "Visser" not in session.get(harness.url + location).text


def test_a_search_without_bsn_or_phone_says_so_beside_them_and_keeps_the_date(harness, browser):
    session, csrf = browser
    response = session.post(
        harness.url + "/clienten/zoeken", data={"csrf": csrf, "birth_date": "1990-01-01"}
    )
    assert shown_again(response, "/clienten/zoeken")
    assert 'aria-invalid="true"' in field(response.text, "bsn")
    assert 'value="1990-01-01"' in field(response.text, "birth_date")


def test_nobody_found_opens_the_add_client_form_with_what_was_typed_once(harness, browser):
    session, csrf = browser
    typed = {"birth_date": "1988-08-08", "bsn": valid_bsn(), "phone": mobile()}
    searched = session.post(harness.url + "/clienten/zoeken", data={"csrf": csrf, **typed})
    assert "Niet gevonden" in searched.text
    form = session.get(harness.url + "/clienten/nieuw").text
    for name, value in typed.items():
        assert f'value="{value}"' in field(form, name)
    again = session.get(harness.url + "/clienten/nieuw").text
    assert typed["bsn"] not in again


def test_the_document_list_says_who_placed_what_when_and_how_long_it_stays(harness):
    api = harness.provider()  # a verloskundige
    client = harness.new_client(api)
    placed = harness.upload(api, client["id"], removal_date=in_weeks(3)).json()
    listed = api.get(f"/clients/{client['id']}/documents").json()["documents"]
    assert listed[0]["uploaded_by_profession"] == "verloskundige"

    page = api_page(harness, api, f"/clienten/{client['id']}")
    row = re.search(r"<tr>\s*<td class=\"nowrap\">Zwangerschapskaart.*?</tr>", page, re.S).group(0)
    assert "2,0\N{NO-BREAK SPACE}kB" in row
    assert api.account.full_name in row and "verloskundige" in row
    assert dutch_time(placed["uploaded_at"]) in row
    assert days_left(placed["removal_date"]) in row and "nog 2" in row  # about 21 days
    assert '<details class="confirm">' in row and "Ja, verwijderen" in row


def api_page(harness, api, path: str) -> str:
    session = requests.Session()
    session.cookies.set("overdracht_session", api.headers["Authorization"].removeprefix("Bearer "))
    response = session.get(harness.url + path)
    assert response.status_code == 200, response.text[:300]
    return response.text


def _csrf(page: requests.Response) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def test_after_logging_in_again_she_returns_to_her_page_and_a_lost_upload_says_so(harness):
    account = harness.account()
    owner = harness.login(account)
    client = harness.new_client(owner)
    page = f"/clienten/{client['id']}"
    browser = requests.Session()
    browser.cookies.set("overdracht_session", "verlopen-sessie")  # her session ran out

    sent = browser.post(
        harness.url + page + "/documenten",
        data={"document_type": "zwangerschapskaart", "removal_date": in_weeks(4)},
        files={"file": ("kaart.pdf", b"%PDF-1.4 not placed")},
    )
    assert "Uw document is niet geplaatst: uw sessie was verlopen" in sent.text
    assert owner.get(f"/clients/{client['id']}/documents").json()["documents"] == []

    login = browser.get(harness.url + "/inloggen")
    browser.post(
        harness.url + "/inloggen",
        data={"csrf": _csrf(login), "username": account.username, "password": account.password},
    )
    code_page = browser.get(harness.url + "/inloggen/code")
    back = browser.post(
        harness.url + "/inloggen/code",
        data={"csrf": _csrf(code_page), "code": harness.sms_code(account.phone)},
        allow_redirects=False,
    )
    assert back.status_code == 302 and back.headers["Location"] == page


def test_an_empty_file_gets_its_own_message_and_the_chooser_offers_the_allowed_types(harness):
    api = harness.provider()
    client = harness.new_client(api)
    empty = harness.upload(api, client["id"], body=b"")
    assert empty.status_code == 422
    assert empty.json()["error"]["code"] == "empty_file"
    assert "leeg" in empty.json()["error"]["message"]

    chooser = re.search(
        r'<input name="file"[^>]*>', api_page(harness, api, f"/clienten/{client['id']}")
    )
    accept = re.search(r'accept="([^"]+)"', chooser.group(0)).group(1).split(",")
    assert {"application/pdf", ".pdf", ".docx", "image/jpeg", ".jpeg"} <= set(accept)


def test_blijf_ingelogd_extends_the_session_and_says_for_how_long(harness, browser, auth_clock):
    session, csrf = browser
    idle = int(config.get("OVERDRACHT_SESSION_IDLE_MINUTES")) * 60
    auth_clock.shift(seconds=idle - 100)  # 100 s were left: the warning would be showing
    kept = session.post(harness.url + "/sessie", data={"csrf": csrf})
    assert kept.status_code == 200
    assert idle - 5 <= kept.json()["seconds_left"] <= idle  # a whole idle period again
    assert kept.json()["renewable"] is True
    page = session.get(harness.url + "/overzicht").text
    assert re.search(r'id="session-warning" class="session-warning" hidden', page)

    assert session.post(harness.url + "/sessie", data={}).status_code == 400  # no CSRF
    ended = requests.Session()  # a session that ran out meanwhile
    ended.cookies.set("overdracht_session", "verlopen-sessie")
    login = ended.get(harness.url + "/inloggen")
    gone = ended.post(harness.url + "/sessie", data={"csrf": _csrf(login)})
    assert gone.status_code == 401 and gone.json()["error"]["code"] == "session_expired"


def test_a_list_from_the_region_page_is_answered_by_a_redirect_naming_its_first_bad_rows(
    harness,
):
    coordinator = harness.provider(role="coordinator", region=f"VSV Formulier {valid_bsn()}")
    page = requests.Session()
    page.cookies.set(
        "overdracht_session", coordinator.headers["Authorization"].removeprefix("Bearer ")
    )
    token = _csrf(page.get(harness.url + "/regio"))
    good = f"Eva Goed;eva-{valid_bsn()}@vsv-test.nl;{mobile()};verloskundige"
    bad = [f"Rij {n};geen-adres;{mobile()};verloskundige" for n in range(20)]
    content = "\r\n".join(["Naam;E-mail;Mobiel;Beroep", good, *bad]).encode()

    sent = page.post(
        harness.url + "/regio",
        data={"csrf": token},
        files={"file": ("lijst.csv", content, "text/csv")},
    )

    assert shown_again(sent, "/regio")
    assert "1 zorgverlener(s) aangemeld, 20 regel(s) niet overgenomen" in sent.text
    assert len(re.findall(r"<tr><td>\d+</td>", sent.text)) == 12
    assert "En nog 8 regel(s) met fouten" in sent.text
    assert "niet overgenomen" not in page.get(harness.url + "/regio").text  # shown once


def test_a_refused_upload_says_why_beside_its_field_and_keeps_type_and_date(harness, browser):
    session, csrf = browser
    api = harness.provider()
    client = harness.new_client(api)
    session.cookies.set("overdracht_session", api.headers["Authorization"].removeprefix("Bearer "))
    page = f"/clienten/{client['id']}"
    csrf = _csrf(session.get(harness.url + page))
    form = {"csrf": csrf, "document_type": "lab_uitslag", "removal_date": in_weeks(80)}

    refused = session.post(
        harness.url + page + "/documenten", data=form, files={"file": ("a.pdf", pdf())}
    )

    assert shown_again(refused, page)
    assert 'id="removal_date-error" role="alert">De verwijderdatum mag niet na' in refused.text
    assert f'value="{in_weeks(80)}"' in refused.text
    assert '<option value="lab_uitslag" selected>' in refused.text

    placed = session.post(
        harness.url + page + "/documenten",
        data={**form, "removal_date": in_weeks(4)},
        files={"file": ("uitslag.pdf", pdf())},
    )
    assert shown_again(placed, page)
    assert "uitslag.pdf (Labuitslag)" in placed.text and "prullenbak" in placed.text


def test_the_page_script_gets_json_answers_for_each_file(harness, browser):
    session, _ = browser
    api = harness.provider()
    client = harness.new_client(api)
    session.cookies.set("overdracht_session", api.headers["Authorization"].removeprefix("Bearer "))
    page = f"/clienten/{client['id']}"
    csrf = _csrf(session.get(harness.url + page))
    url = harness.url + page + "/documenten"
    scripted = {"X-Requested-With": "fetch"}
    form = {"csrf": csrf, "document_type": "lab_uitslag", "removal_date": in_weeks(4)}

    placed = session.post(url, data=form, files={"file": ("a.pdf", pdf())}, headers=scripted)
    assert placed.status_code == 201 and placed.json()["filename"] == "a.pdf"
    empty = session.post(url, data=form, files={"file": ("b.pdf", b"")}, headers=scripted)
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "empty_file"
    ended = requests.Session()
    ended.cookies.set("overdracht_session", "verlopen-sessie")
    gone = ended.post(url, data=form, files={"file": ("c.pdf", pdf())}, headers=scripted)
    assert gone.status_code == 401
    assert [
        d["filename"] for d in api.get(f"/clients/{client['id']}/documents").json()["documents"]
    ] == ["a.pdf"]
