"""A region goes live through the pages, in Chromium.

The coördinator uploads her region's list from Excel (one row wrong), the beheerder
reviews and registers it, and a provider on it opens the activation link from her e-mail
(the Maildir outbox), confirms the SMS code, chooses her password and logs in.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from datetime import UTC, datetime

import pyotp
from playwright.sync_api import Page, expect

from tests.servers import Smtp
from tests.support import Account, Harness, mobile, restarted

PASSWORD = "zeeuwse klei en blauwe reigers"


def log_in(page: Page, harness: Harness, account: Account) -> None:
    page.goto(harness.url + "/inloggen")
    page.get_by_label("Gebruikersnaam").fill(account.username)
    page.get_by_label("Wachtwoord").fill(account.password)
    page.get_by_role("button", name="Volgende").click()
    page.get_by_label("Code uit de sms").fill(harness.sms_code(account.phone))
    page.get_by_role("button", name="Inloggen").click()
    expect(page.get_by_role("heading", name=f"Welkom, {account.full_name}")).to_be_visible()


def log_out(page: Page) -> None:
    page.get_by_role("button", name="Uitloggen").click()
    expect(page.get_by_role("heading", name="Inloggen")).to_be_visible()


def test_coordinator_list_to_beheerder_to_an_activated_provider(browser, harness, tmp_path):
    region = f"VSV Zeeland {uuid.uuid4().hex[:4]}"
    coordinator = harness.account(role="coordinator", region=region)
    beheerder = harness.account(role="beheerder", region="Landelijk")
    name = f"Sanne de Smet {uuid.uuid4().hex[:4]}"
    email = f"sanne-{uuid.uuid4().hex[:8]}@vsv-test.nl"
    phone = mobile()
    listing = tmp_path / "zorgverleners.csv"
    listing.write_bytes(
        (
            "\ufeffNaam;E-mail;Mobiel;Beroep;Organisatie;AGB-code\r\n"
            f"{name};{email};{phone};Verloskundige;Verloskundigen Walcheren;01234567\r\n"
            "Tineke Tol;tineke@;0612;verloskundige;;\r\n"
        ).encode()
    )
    page = browser.new_page()

    # the coördinator submits the list; the wrong row is named by its line in Excel
    log_in(page, harness, coordinator)
    page.get_by_role("navigation").get_by_role("link", name="Regio").click()
    page.get_by_label("CSV-bestand").set_input_files(str(listing))
    page.get_by_role("button", name="Lijst aanmelden").click()
    expect(page.get_by_role("status").filter(has_text="aangemeld")).to_contain_text(
        "1 zorgverlener(s) aangemeld, 1 regel(s) niet overgenomen"
    )
    errors = page.locator("#list-errors")
    expect(errors.get_by_role("row").nth(1)).to_contain_text("3")
    expect(errors).to_contain_text("Ongeldig e-mailadres")
    expect(page.locator("#region-accounts")).to_contain_text(name)
    expect(page.locator("#region-accounts")).to_contain_text("Aangemeld")
    expect(page.locator("#region-accounts")).not_to_contain_text("Tineke")
    log_out(page)

    # the beheerder reviews it and registers it in one step
    log_in(page, harness, beheerder)
    page.get_by_role("navigation").get_by_role("link", name="Lijsten").click()
    page.get_by_role("row").filter(has_text=region).get_by_role("link").click()
    expect(page.locator("#list-rows")).to_contain_text(name)
    page.get_by_role("button", name="Alle 1 registreren").click()
    expect(page.get_by_role("status").first).to_contain_text("1 zorgverlener(s) geregistreerd")
    expect(page.locator("#list-rows")).to_contain_text("Uitgenodigd")
    log_out(page)

    # she opens the link in her e-mail, gets a code and chooses her password
    mail = harness.mail_to(email).get_content()
    link = re.search(r"http://\S+/activeren\?token=\S+", mail).group(0)
    username = re.search(r"Uw gebruikersnaam: (\S+)", mail).group(1)
    page.goto(link)
    expect(page.locator("#activation-username")).to_have_text(username)
    page.get_by_role("button", name="Stuur mij een code").click()
    expect(page.get_by_role("status").first).to_contain_text(f"06-****{phone[-4:]}")
    page.get_by_label("Code uit de sms").fill(harness.sms_code(phone))
    # long enough for the browser's own check, but guessable: auth refuses it
    page.get_by_label("Kies een wachtwoord").fill("password1234")
    page.get_by_label("Herhaal het wachtwoord").fill("password1234")
    page.get_by_role("button", name="Account activeren").click()
    password_field = page.get_by_label("Kies een wachtwoord")
    expect(password_field).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#password-error")).to_contain_text("te makkelijk te raden")
    page.get_by_label("Code uit de sms").fill(harness.sms_code(phone))
    password_field.fill(PASSWORD)
    page.get_by_label("Herhaal het wachtwoord").fill(PASSWORD)
    page.get_by_role("button", name="Account activeren").click()
    expect(page.get_by_role("status").first).to_contain_text("Uw account is geactiveerd")

    account = Account(username, PASSWORD, phone, "zorgverlener", region, name, email)
    log_in(page, harness, account)
    expect(page.get_by_role("navigation").get_by_role("link", name="Zoek cliënt")).to_be_visible()

    # the link works once
    page.goto(link)
    expect(page.get_by_role("alert")).to_contain_text("al gebruikt")


def test_a_provider_sets_up_the_authenticator_app_from_her_overview(browser, harness):
    account = harness.account()
    page = browser.new_page()
    log_in(page, harness, account)
    page.get_by_role("link", name="Authenticator-app instellen").click()
    expect(page.get_by_role("img", name="QR-code voor uw authenticator-app")).to_be_visible()
    app = pyotp.TOTP(page.locator("#totp-secret").inner_text())
    page.get_by_label("Code uit de app").fill(app.now())
    page.get_by_label("Uw wachtwoord").fill(account.password)
    page.get_by_role("button", name="App instellen").click()
    expect(page.locator("#recovery-codes li")).to_have_count(10)
    page.go_back()  # Back and refresh neither resubmit nor show the codes again
    page.go_forward()
    expect(page.locator("#recovery-codes li")).to_have_count(0)
    page.reload()
    expect(page.locator("#second-factor")).to_contain_text("authenticator-app")
    expect(page.locator("#second-factor")).to_contain_text("authenticator-app")
    log_out(page)

    page.get_by_label("Gebruikersnaam").fill(account.username)
    page.get_by_label("Wachtwoord").fill(account.password)
    page.get_by_role("button", name="Volgende").click()
    expect(page.get_by_role("heading", name="Code uit de app")).to_be_visible()
    expect(page.get_by_role("button", name="Code opnieuw sturen")).to_have_count(0)
    next_step = app.at(datetime.now(UTC).timestamp() + 30)  # this step's code was spent
    page.get_by_label("Code uit uw authenticator-app").fill(next_step)
    page.get_by_role("button", name="Inloggen").click()
    expect(page.get_by_role("heading", name=f"Welkom, {account.full_name}")).to_be_visible()


def test_a_beheerder_rejects_a_list_after_confirming(browser, harness):
    region = f"VSV Afgewezen {uuid.uuid4().hex[:4]}"
    coordinator = harness.provider(role="coordinator", region=region)
    name = f"Iris Ijsselstein {uuid.uuid4().hex[:4]}"
    email = f"iris-{uuid.uuid4().hex[:6]}@vsv-test.nl"
    listing = f"Naam;E-mail;Mobiel;Beroep\r\n{name};{email};{mobile()};arts\r\n"
    submitted = coordinator.post("/provider-lists", files={"file": ("lijst.csv", listing.encode())})
    assert submitted.status_code == 201, submitted.text
    beheerder = harness.account(role="beheerder", region="Landelijk")
    page = browser.new_page()
    log_in(page, harness, beheerder)
    page.get_by_role("navigation").get_by_role("link", name="Lijsten").click()
    page.get_by_role("row").filter(has_text=region).get_by_role("link").click()
    expect(page.locator("#list-rows")).to_contain_text(name)

    # nothing happens until she confirms
    confirm = page.get_by_role("button", name="Ja, afwijzen")
    expect(confirm).to_be_hidden()
    page.get_by_text("Lijst afwijzen").click()
    confirm.click()
    expect(page.get_by_role("status").first).to_contain_text("Lijst afgewezen; 1 regel(s)")
    row = page.get_by_role("row").filter(has_text=region)
    expect(row).to_contain_text("Afgewezen")
    row.get_by_role("link").click()
    expect(page.locator("#list-rows")).not_to_contain_text(name)
    expect(page.get_by_role("button", name="Ja, afwijzen")).to_have_count(0)


def test_a_long_list_is_registered_part_by_part_from_its_page(browser, harness, platform):
    """A mail server that takes its time: each press of the button registers what fits in
    the gateway's wait, the page says how many rows are left, and the next press goes on."""
    region = f"VSV Lang {uuid.uuid4().hex[:4]}"
    emails = [f"stap-{uuid.uuid4().hex[:8]}@vsv-test.nl" for _ in range(16)]
    rows = [
        f"Romy {n}ent;{e};{mobile()};verloskundige"
        for n, e in zip("BDFHKLMNPRSTVWZJ", emails, strict=True)
    ]
    listing = "\r\n".join(["Naam;E-mail;Mobiel;Beroep", *rows]) + "\r\n"
    coordinator = harness.provider(role="coordinator", region=region)
    submitted = coordinator.post("/provider-lists", files={"file": ("lang.csv", listing.encode())})
    assert submitted.status_code == 201, submitted.text
    beheerder = harness.account(role="beheerder", region="Landelijk")
    smtp = Smtp()
    smtp.start()
    smtp.recorder.delay = 0.3  # 16 invitations take about 5 s; the gateway waits 4
    mail = {
        "OVERDRACHT_MAIL_PROVIDER": "smtp",
        "OVERDRACHT_SMTP_HOST": "127.0.0.1",
        "OVERDRACHT_SMTP_PORT": str(smtp.port),
        "OVERDRACHT_SMTP_STARTTLS": "false",
    }
    with contextlib.ExitStack() as stack:
        stack.callback(smtp.stop)
        stack.enter_context(restarted(platform, "auth", mail))
        stack.enter_context(restarted(platform, "gateway", {"OVERDRACHT_RPC_TIMEOUT": "4"}))
        page = browser.new_page()
        log_in(page, harness, beheerder)
        page.get_by_role("navigation").get_by_role("link", name="Lijsten").click()
        page.get_by_role("row").filter(has_text=region).get_by_role("link").click()
        counts = []
        button = page.get_by_role("button", name=re.compile(r"^Alle \d+ registreren$"))
        while button.count() and len(counts) < 6:
            button.click()
            summary = page.get_by_text(re.compile(r"\d+ van 16 geregistreerd"))
            done = int(re.search(r"(\d+) van 16", summary.inner_text()).group(1))
            counts.append(done)
            if done < 16:
                left = page.get_by_role("status").filter(has_text="te gaan")
                expect(left).to_contain_text(f"Nog {16 - done} regel(s) te gaan")
                expect(button).to_have_text(f"Alle {16 - done} registreren")
        assert len(counts) >= 2 and counts == sorted(counts) and counts[-1] == 16, counts
        expect(page.get_by_role("button", name=re.compile("registreren"))).to_have_count(0)
        expect(page.locator("#list-rows")).not_to_contain_text("Aangemeld")
    assert all(len(smtp.mails_to(e)) == 1 for e in emails)
