"""Several documents at once from the client page, in Chromium: chosen or dropped, each
with its own type and progress bar, then named with the reminder to remove them."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.support import in_weeks, pdf


def open_client(browser, harness):
    api = harness.provider()
    client = harness.new_client(api)
    context = browser.new_context()
    token = api.headers["Authorization"].removeprefix("Bearer ")
    context.add_cookies([{"name": "overdracht_session", "value": token, "url": harness.url}])
    page = context.new_page()
    page.goto(harness.url + f"/clienten/{client['id']}")
    return context, page, api, client


def test_several_files_each_with_its_own_type_are_placed_and_named(browser, harness):
    context, page, api, client = open_client(browser, harness)
    try:
        page.get_by_label("Verwijderdatum", exact=True).fill(in_weeks(4))
        page.get_by_label("Bestand (PDF").set_input_files(
            [
                {"name": "kaart.pdf", "mimeType": "application/pdf", "buffer": pdf()},
                {"name": "bloed.pdf", "mimeType": "application/pdf", "buffer": pdf(4096)},
            ]
        )
        expect(page.locator("#queue tbody tr")).to_have_count(2)
        expect(page.get_by_label("Voortgang van bloed.pdf")).to_be_visible()
        page.get_by_label("Type van kaart.pdf").select_option(label="Zwangerschapskaart")
        page.get_by_label("Type van bloed.pdf").select_option(label="Labuitslag")
        page.get_by_role("button", name="Plaatsen").click()

        placed = page.locator("#placed")
        expect(placed).to_contain_text("2 documenten zijn geplaatst")
        expect(placed).to_contain_text("kaart.pdf (Zwangerschapskaart)")
        expect(placed).to_contain_text("bloed.pdf (Labuitslag)")
        expect(placed).to_contain_text("prullenbak")
        listed = api.get(f"/clients/{client['id']}/documents").json()["documents"]
        assert {(d["filename"], d["document_type"]) for d in listed} == {
            ("kaart.pdf", "zwangerschapskaart"),
            ("bloed.pdf", "lab_uitslag"),
        }
        page.reload()
        expect(page.locator("#placed")).to_have_count(0)  # said once
    finally:
        context.close()


def test_a_dropped_empty_file_is_named_and_the_others_go(browser, harness):
    context, page, api, client = open_client(browser, harness)
    try:
        page.get_by_label("Verwijderdatum", exact=True).fill(in_weeks(4))
        page.evaluate(
            """([body]) => {
                const files = new DataTransfer();
                const kind = {type: "application/pdf"};
                files.items.add(new File([new Uint8Array(body)], "echo.pdf", kind));
                files.items.add(new File([], "leeg.pdf", kind));
                const zone = document.getElementById("dropzone");
                zone.dispatchEvent(new DragEvent("drop", {dataTransfer: files, bubbles: true}));
            }""",
            [list(pdf())],
        )
        rows = page.locator("#queue tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.nth(1)).to_contain_text("Dit bestand is leeg")
        page.get_by_role("button", name="Plaatsen").click()

        expect(rows.nth(0)).to_contain_text("Geplaatst")
        assert page.get_by_label("Voortgang van echo.pdf").evaluate("bar => bar.value") == 100
        expect(rows.nth(1)).to_contain_text("Dit bestand is leeg")  # not sent, still there
        listed = api.get(f"/clients/{client['id']}/documents").json()["documents"]
        assert [d["filename"] for d in listed] == ["echo.pdf"]

        page.get_by_role("button", name="Weghalen leeg.pdf").click()
        page.get_by_role("button", name="Plaatsen").click()  # nothing left to send but
        expect(page.locator("#placed")).to_contain_text("echo.pdf")  # the page reloads
    finally:
        context.close()
