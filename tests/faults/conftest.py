"""A platform on a private RabbitMQ node and a private PostgreSQL cluster, to break at will.

The machine's own broker and database are never stopped: these are the platform's
servers here, pointed at with the settings an operator uses for any other servers. The
platform is supervised as `make run` supervises it: what exits is started again.

Each fault's row goes into a table printed at the end of the run (`make faults`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ops.platform import Platform, supervised
from ops.private import PostgresCluster, RabbitNode, postgres_cluster, rabbitmq_node
from ops.sandbox import free_port_base, sandbox
from tests.conftest import SETTINGS
from tests.faults.steady import Row
from tests.support import Harness

#: how long a fault lasts: `make faults` runs the issue's 30 s, `make test` a short version
FAULT_SECONDS = float(os.environ.get("OVERDRACHT_FAULT_SECONDS", "10"))

#: the pause (s) after which the gateway cuts a slow sender off, on the fault platform
READ_TIMEOUT = 5

ROWS: list[Row] = []

#: the components that run twice in the fault suite; auth and audit run once, so killing
#: them shows recovery by restart alone
SCALE = "gateway=2 documents=2 clients=2 retention=2"


@pytest.fixture(scope="package")
def broker() -> Iterator[RabbitNode]:
    base = free_port_base()
    with rabbitmq_node(base, base + 1) as node:
        yield node


@pytest.fixture(scope="package")
def database() -> Iterator[PostgresCluster]:
    with postgres_cluster(free_port_base()) as cluster:
        yield cluster


@pytest.fixture(scope="package")
def breakable(tmp_path_factory, broker, database) -> Iterator[Platform]:
    """The whole platform, on servers the tests may stop, crash and bring back."""
    settings = {
        **SETTINGS,
        **broker.settings(),
        **database.settings(),
        # what a fault leaves in the store is cleared by the next sweep, not an hour later
        "OVERDRACHT_LEFTOVER_GRACE_MINUTES": "0",
        # slow senders are cut off within a fault's length (test_slow_clients.py); the
        # steady load sends every body at once and never pauses
        "OVERDRACHT_REQUEST_READ_TIMEOUT": str(READ_TIMEOUT),
        # scaled out as ops would: one instance of these killed, the others carry on
        "OVERDRACHT_SCALE": SCALE,
    }
    with sandbox(tmp_path_factory.mktemp("breakable"), settings) as platform:
        with supervised(platform):
            yield platform


@pytest.fixture(scope="package")
def breakable_harness(breakable: Platform) -> Harness:
    return Harness(breakable)


def pytest_terminal_summary(terminalreporter) -> None:
    if ROWS:
        terminalreporter.section(f"faults under steady load ({FAULT_SECONDS:.0f} s each)")
        terminalreporter.write_line(Row.HEADER)
        for row in ROWS:
            terminalreporter.write_line(row.line())
            for note in row.notes:
                terminalreporter.write_line(f"    {note}")
