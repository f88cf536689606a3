"""The main flow through the Dutch web pages, in Debian's Chromium.

Provider A logs in with password and SMS code, searches a client who is not there, adds
her, places a PDF for her and downloads it again. Provider B from another region finds her
by birth date and phone, confirms her name (the treatment relationship) and downloads the
same bytes.
"""

from __future__ import annotations

import random
import string
from datetime import date, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from overdracht import config
from tests.support import Account, Harness, in_weeks, mobile, pdf, valid_bsn

SCREENSHOT = Path("/tmp/overdracht-client-page.png")


def _maiden_name() -> str:
    return "Visser-" + "".join(random.choices(string.ascii_lowercase, k=8)).capitalize()


def _birth_date() -> str:
    return (date(1980, 1, 1) + timedelta(days=random.randrange(20 * 365))).isoformat()


def _nav(page: Page, name: str) -> Locator:
    return page.get_by_role("navigation").get_by_role("link", name=name, exact=True)


def _profile(page: Page, label: str) -> Locator:
    """The value next to a label in the overview's list of personal details."""
    return page.locator("dl.profile").locator(f"dt:text-is('{label}') + dd")


def _log_in(page: Page, harness: Harness, account: Account) -> None:
    page.goto(harness.url + "/inloggen")
    expect(page.get_by_role("heading", name="Inloggen")).to_be_visible()
    page.get_by_label("Gebruikersnaam").fill(account.username)
    page.get_by_label("Wachtwoord").fill(account.password)
    page.get_by_role("button", name="Volgende").click()

    expect(page.get_by_role("heading", name="Sms-code")).to_be_visible()
    page.get_by_label("Code uit de sms").fill(harness.sms_code(account.phone))
    page.get_by_role("button", name="Inloggen").click()

    expect(page.get_by_role("heading", name=f"Welkom, {account.full_name}")).to_be_visible()
    expect(page.get_by_role("banner")).to_contain_text(account.full_name)
    for label, value in (
        ("Gebruikersnaam", account.username),
        ("Naam", account.full_name),
        ("Telefoon", account.phone),
        ("E-mail", account.email),
        ("Regio", account.region),
    ):
        expect(_profile(page, label)).to_have_text(value)
    expect(_profile(page, "Rol")).to_contain_text(account.role.capitalize())


def _check_document(
    page: Page,
    filename: str,
    document_type: str,
    uploader: str,
    removal_date: str,
    body: bytes,
    folder: Path,
) -> None:
    """Its row in the list says what it is; the browser saves the same bytes as were placed."""
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=filename))
    expect(row).to_have_count(1)
    expect(row).to_contain_text(document_type)
    expect(row).to_contain_text(uploader)
    expect(row.locator(f"time[datetime='{removal_date}']")).to_be_visible()

    with page.expect_download() as info:
        page.get_by_role("link", name=filename, exact=True).click()
    download = info.value
    assert download.failure() is None
    assert download.suggested_filename == filename
    saved = folder / f"download-{len(list(folder.iterdir()))}.pdf"
    download.save_as(saved)
    assert saved.read_bytes() == body


@pytest.mark.browser
def test_handover_in_the_browser(harness: Harness, browser: Browser, tmp_path: Path) -> None:
    provider_a = harness.account(region="Regio Noord")
    provider_b = harness.account(region="Regio Zuid")
    maiden_name, born, bsn, phone = _maiden_name(), _birth_date(), valid_bsn(), mobile()
    due_date, removal_date = in_weeks(12), in_weeks(16)
    document_type = random.choice(list(config.document_types().values()))
    body = pdf(40 * 1024)
    upload = tmp_path / "zwangerschapskaart.pdf"
    upload.write_bytes(body)

    context = browser.new_context(locale="nl-NL", viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()

        # --- provider A: log in, search in vain, add her, place a document -----------------
        _log_in(page, harness, provider_a)

        _nav(page, "Zoek cliënt").click()
        expect(page.get_by_role("heading", name="Zoek cliënt")).to_be_visible()
        page.get_by_label("Geboortedatum").fill(born)
        page.get_by_label("BSN").fill(bsn)
        page.get_by_role("button", name="Zoeken").click()
        results = page.locator("#results")
        expect(results.get_by_role("heading", name="Niet gevonden")).to_be_visible()
        expect(results).not_to_contain_text(maiden_name)

        _nav(page, "Cliënt toevoegen").click()
        expect(page.get_by_role("heading", name="Cliënt toevoegen")).to_be_visible()
        page.get_by_label("Geboortenaam").fill(maiden_name)
        page.get_by_label("Geboortedatum").fill(born)
        page.get_by_label("BSN").fill(bsn)
        page.get_by_label("Telefoonnummer").fill(phone)
        page.get_by_label("Uitgerekende datum").fill(due_date)
        page.get_by_role("button", name="Toevoegen").click()

        expect(page.get_by_role("status")).to_contain_text("De cliënt is toegevoegd")
        expect(page.get_by_role("heading", name=f"Documenten van {maiden_name}")).to_be_visible()
        expect(page.get_by_text("Er zijn nog geen documenten.")).to_be_visible()

        page.get_by_label("Type").select_option(label=document_type)
        page.get_by_label("Verwijderdatum").fill(removal_date)
        page.get_by_label("Bestand").set_input_files(upload)
        page.get_by_role("button", name="Plaatsen").click()

        expect(page.locator("#placed")).to_contain_text("Het document is geplaatst")
        expect(page.locator("#placed")).to_contain_text("prullenbak")
        page.screenshot(path=SCREENSHOT, full_page=True)
        _check_document(
            page, upload.name, document_type, provider_a.full_name, removal_date, body, tmp_path
        )

        page.get_by_role("button", name="Uitloggen").click()
        expect(page.get_by_role("status")).to_contain_text("U bent uitgelogd")
        expect(page.get_by_role("heading", name="Inloggen")).to_be_visible()
        page.goto(harness.url + "/overzicht")  # the old session is gone, not just hidden
        expect(page.get_by_role("alert")).to_contain_text("U bent niet ingelogd")
        expect(page.get_by_role("heading", name="Inloggen")).to_be_visible()

        # --- provider B: find her by birth date and phone, confirm her name, download ------
        _log_in(page, harness, provider_b)

        _nav(page, "Zoek cliënt").click()
        page.get_by_label("Geboortedatum").fill(born)
        page.get_by_label("Telefoonnummer").fill(phone)
        page.get_by_role("button", name="Zoeken").click()
        results = page.locator("#results")
        expect(results.get_by_role("heading", name="Gevonden")).to_be_visible()
        found = results.get_by_role("listitem").filter(has_text=maiden_name)
        expect(found).to_have_count(1)
        found.get_by_role("button", name="Naam klopt").click()

        expect(page.get_by_role("heading", name=f"Documenten van {maiden_name}")).to_be_visible()
        _check_document(
            page, upload.name, document_type, provider_a.full_name, removal_date, body, tmp_path
        )
    finally:
        context.close()
