"""Two minutes before her session would end for lack of activity, the page offers
"blijf ingelogd"; taking it extends the session on the server. Playwright's clock runs
the page's timers forward; the session itself is real."""

from __future__ import annotations

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from overdracht import config

MINUTE_MS = 60_000


def test_two_minutes_before_idle_expiry_she_may_stay_logged_in(browser, harness, auth_clock):
    api = harness.provider()
    context = browser.new_context(viewport={"width": 390, "height": 844})
    token = api.headers["Authorization"].removeprefix("Bearer ")
    context.add_cookies([{"name": "overdracht_session", "value": token, "url": harness.url}])
    page = context.new_page()
    page.clock.install()
    idle_ms = config.get_int("OVERDRACHT_SESSION_IDLE_MINUTES") * MINUTE_MS
    try:
        page.goto(harness.url + "/overzicht")
        warning = page.locator("#session-warning")
        stay = page.get_by_role("button", name="Blijf ingelogd")
        expect(warning).to_be_hidden()

        page.clock.run_for(idle_ms - 3 * MINUTE_MS)
        expect(warning).to_be_hidden()
        page.clock.run_for(MINUTE_MS + 1000)  # 2 minutes before the end
        expect(warning).to_contain_text("Uw sessie verloopt over 2 minuten")
        expect(stay).to_be_focused()
        serious = [
            v["id"]
            for v in Axe().run(page).response["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert serious == []

        auth_clock.shift(seconds=idle_ms / 1000 - 150)  # the server's clock is as late too
        with page.expect_response(lambda r: r.url.endswith("/sessie")) as answer:
            stay.click()
        assert answer.value.status == 200
        assert answer.value.json()["seconds_left"] > idle_ms / 1000 - 60  # extended
        expect(warning).to_be_hidden()

        # the session was extended: the warning comes again a whole idle period later
        page.clock.run_for(idle_ms - 3 * MINUTE_MS)
        expect(warning).to_be_hidden()
        page.clock.run_for(3 * MINUTE_MS + 1000)  # past the end, nothing done
        expect(warning).to_contain_text("Uw sessie is verlopen")
        expect(page.get_by_role("link", name="Opnieuw inloggen")).to_be_visible()
        expect(stay).to_be_hidden()
    finally:
        context.close()
