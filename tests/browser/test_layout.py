"""Every page a role can reach, at phone width (390 px) and at 1280 px, in Chromium.

No page scrolls sideways, and axe-core finds no serious or critical accessibility
violation. The pages come from the one table of routes (tests/routes.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

from overdracht.contracts import ROLES
from tests.routes import ROUTES, resource_ids, role_sessions

WIDTHS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}
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


def check(page: Page, url: str) -> list[str]:
    """What is wrong with the page at url: sideways scrolling, serious axe violations."""
    response = page.goto(url)
    problems = []
    if response is None or response.status >= 500:
        problems.append(f"{url}: {response and response.status}")
    if page.evaluate("document.documentElement.scrollWidth > window.innerWidth"):
        problems.append(f"{url}: scrolls sideways")
    for violation in axe.run(page).response["violations"]:
        if violation["impact"] in ("serious", "critical"):
            targets = [node["target"] for node in violation["nodes"]][:3]
            problems.append(f"{url}: {violation['id']} ({violation['impact']}) at {targets}")
    return problems


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("who", [None, *ROLES])
def test_every_page_fits_and_passes_axe(browser, harness, sessions, ids, who, width):
    context = browser.new_context(viewport=WIDTHS[width])
    try:
        paths = ANONYMOUS
        if who is not None:
            token = sessions[who].headers["Authorization"].removeprefix("Bearer ")
            context.add_cookies(
                [{"name": "overdracht_session", "value": token, "url": harness.url}]
            )
            paths = [p.format(**ids) for p in pages_of(who)]
        page = context.new_page()
        problems = [problem for path in paths for problem in check(page, harness.url + path)]
    finally:
        context.close()
    assert problems == []
