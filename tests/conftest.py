"""One real platform per test run (see overdracht/sandbox.py), and the harness over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.platform import Platform
from ops.sandbox import sandbox
from overdracht.bus import component_uri, rabbitmqctl, uri_parts
from tests.support import Clock, Harness

SETTINGS = {
    "OVERDRACHT_SEARCH_LIMIT_PER_HOUR": "1000",
    "OVERDRACHT_OUTBOX_RELAY_SECONDS": "1",
    "OVERDRACHT_RETENTION_INTERVAL_SECONDS": "3",
    "OVERDRACHT_AUDIT_CHECKPOINT_SECONDS": "1",
    # as behind the reverse proxy: login tests come "from" addresses of their own
    # (X-Forwarded-For), so that throttling them throttles no other test
    "OVERDRACHT_TRUSTED_PROXIES": "1",
}


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The whole platform, started once for the run and torn down after it."""
    var = tmp_path_factory.mktemp("var")
    # auth's clock, shifted by tests of locks and throttles (overdracht/clock.py)
    settings = {**SETTINGS, "OVERDRACHT_CLOCK_FILE": str(var / "clock-offset")}
    with sandbox(var, settings) as running_platform:
        yield running_platform


@pytest.fixture(scope="session")
def harness(platform: Platform) -> Harness:
    return Harness(platform)


@pytest.fixture
def auth_clock(platform: Platform, harness: Harness) -> Iterator[Clock]:
    """auth's clock, to move on in a test; put back after it."""
    moved = Clock(Path(platform.env["OVERDRACHT_CLOCK_FILE"]), harness)
    try:
        yield moved
    finally:
        moved.reset()


@pytest.fixture(scope="session")
def insider(platform: Platform) -> Iterator[str]:
    """A broker login on the platform's vhost with every right: the bus boundary has fallen.

    Tests of the layers behind the bus use it to show that each holds on its own.
    """
    user, password, vhost = uri_parts(platform.env["OVERDRACHT_GATEWAY_AMQP_URI"])
    name = f"{user.rsplit('-', 1)[0]}-insider"
    rabbitmqctl("add_user", name, "insider-password")
    try:
        rabbitmqctl("set_permissions", "-p", vhost, name, ".*", ".*", ".*")
        yield component_uri("127.0.0.1:5672", name, "insider-password", vhost)
    finally:
        rabbitmqctl("delete_user", name, check=False)
