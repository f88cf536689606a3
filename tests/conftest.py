"""One real platform per test run (see overdracht/sandbox.py), and the harness over it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from overdracht.platform import Platform
from overdracht.sandbox import sandbox
from tests.support import Harness

SETTINGS = {
    "OVERDRACHT_SEARCH_LIMIT_PER_HOUR": "1000",
    "OVERDRACHT_OUTBOX_RELAY_SECONDS": "1",
    "OVERDRACHT_RETENTION_INTERVAL_SECONDS": "3",
}


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The whole platform, started once for the run and torn down after it."""
    with sandbox(tmp_path_factory.mktemp("var"), SETTINGS) as running_platform:
        yield running_platform


@pytest.fixture(scope="session")
def harness(platform: Platform) -> Harness:
    return Harness(platform)
