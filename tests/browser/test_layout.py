"""Every page a role can reach, at phone width (390 px) and at 1280 px, in Chromium,
and in English at phone width.

No page scrolls sideways, and axe-core finds no serious or critical accessibility
violation; in English, no page shows Dutch. The pages come from the one table of routes
(tests/routes.py).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

from overdracht.contracts import ROLES
from tests.routes import ROUTES, resource_ids, role_sessions

PHONE = {"width": 390, "height": 844}
#: how each page is looked at: its width, and the language chosen
VIEWS = {
    "phone": (PHONE, "nl"),
    "desktop": ({"width": 1280, "height": 900}, "nl"),
    "phone-english": (PHONE, "en"),
}
#: words that are Dutch and never English: a page in English that shows one still has a
#: Dutch text somewhere (names and values typed by the tests avoid them)
DUTCH = frozenset(
    "het een uw niet van voor naar geen wordt zijn bij deze dit welke wilt kunt heeft nog "
    "ook maar wanneer waar wie u".split()
)
#: pages anyone may open, without a session
ANONYMOUS = ["/inloggen", "/activeren"]
axe = Axe()


def pages_of(role: str) -> list[str]:
    """The GET pages of the role (a download or an export is a file, not a page)."""
    return [
        r.path
        for r in ROUTES
        if r.kind == "page" and r.method == "GET" and role in r.allowed
        if not r.path.endswith(("/download", ".csv"))
    ]


@pytest.fixture(scope="module")
def sessions(harness) -> dict[str, Any]:
    return role_sessions(harness)


@pytest.fixture(scope="module")
def ids(harness, sessions) -> dict[str, str]:
    return resource_ids(harness, sessions)


#: the page's text but what is shown in <code> (a key or recovery codes to type over,
#: whose random letters can spell anything)
TEXT_BUT_CODES = """() => {
    let text = document.body.innerText;
    for (const code of document.querySelectorAll("code")) {
        text = text.replace(code.innerText, " ");
    }
    return text;
}"""


def check(page: Page, url: str, language: str) -> list[str]:
    """What is wrong with the page at url: sideways scrolling, serious axe violations,
    another language than the one chosen."""
    response = page.goto(url)
    problems = []
    if response is None or response.status >= 500:
        problems.append(f"{url}: {response and response.status}")
    if page.get_attribute("html", "lang") != language:
        problems.append(f"{url}: lang is {page.get_attribute('html', 'lang')!r}")
    if language == "en":
        words = set(re.findall(r"[a-zà-ÿ]+", page.evaluate(TEXT_BUT_CODES).lower()))
        if words & DUTCH:
            problems.append(f"{url}: Dutch in English: {sorted(words & DUTCH)}")
    if page.evaluate("document.documentElement.scrollWidth > window.innerWidth"):
        problems.append(f"{url}: scrolls sideways")
    for violation in axe.run(page).response["violations"]:
        if violation["impact"] in ("serious", "critical"):
            targets = [node["target"] for node in violation["nodes"]][:3]
            problems.append(f"{url}: {violation['id']} ({violation['impact']}) at {targets}")
    return problems


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("who", [None, *ROLES])
def test_every_page_fits_and_passes_axe(browser, harness, sessions, ids, who, view):
    viewport, language = VIEWS[view]
    context = browser.new_context(viewport=viewport)
    try:
        if language != "nl":
            context.add_cookies([{"name": "taal", "value": language, "url": harness.url}])
        paths = ANONYMOUS
        if who is not None:
            token = sessions[who].headers["Authorization"].removeprefix("Bearer ")
            context.add_cookies(
                [{"name": "overdracht_session", "value": token, "url": harness.url}]
            )
            paths = [p.format(**ids) for p in pages_of(who)]
        page = context.new_page()
        problems = [
            problem for path in paths for problem in check(page, harness.url + path, language)
        ]
    finally:
        context.close()
    assert problems == []
