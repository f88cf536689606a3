"""Each fault under a steady load of users: no person needed, nothing lost, nothing extra."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from ops.platform import instances, scale_of
from overdracht.bus import queue_consumers
from tests.faults.conftest import FAULT_SECONDS, ROWS, SCALE
from tests.faults.steady import Row, Steady, books


def _through(
    name: str,
    platform,
    harness,
    inject: Callable[[], None],
    heal: Callable[[], None] | None = None,
) -> tuple[Row, Steady, float, float]:
    """Run the load, inject the fault, heal it (if a person would have to), keep the books.

    Returns the row, the load, when the fault began, and when healing it began
    (time.monotonic()).
    """
    pids = {name: process.pid for name, process in platform.processes}
    load = Steady(harness)
    with load.running():
        time.sleep(3)
        inject()
        began = time.monotonic()
        healing = time.monotonic()
        if heal is not None:
            time.sleep(FAULT_SECONDS)
            healing = time.monotonic()
            heal()
        ended = time.monotonic()
        recovered = load.recovered_after(ended)
        time.sleep(2)
    row = books(platform, load, Row(name, recovered=recovered))
    ROWS.append(row)
    running = {n: p.pid for n, p in platform.processes if p.poll() is None}
    assert set(running) == set(pids), f"not running after {name}: {set(pids) - set(running)}"
    row.restarted = sorted(n for n in pids if running[n] != pids[n])
    return row, load, began, healing


def _nothing_lost(row: Row) -> None:
    assert row.recovered is not None, f"{row.fault}: no recovery within 60 s"
    assert (row.missing, row.extra, row.orphans, row.stuck) == (0, 0, 0, 0), row.line()


def _restarted_only(platform, row: Row, expected: list[str]) -> None:
    """Exactly these components were restarted; any other's last log lines say why it exited."""
    unexpected = [name for name in row.restarted if name not in expected]
    words = {name: _last_lines(platform.log_dir / f"{name}.log") for name in unexpected}
    assert row.restarted == expected, f"{row.fault}: restarted {row.restarted}: {words}"


def _last_lines(log: Path, count: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-count:]) if log.exists() else ""


def _only_clear_errors(load: Steady, in_flight_cut: bool = False) -> None:
    """A user sees 503 (try again later), never a 500 or a hang.

    Where a process dies under a request already answering (a download streaming when
    the object store is killed), that one request is cut off: at most one per user.
    """
    statuses = Counter(a.status for a in load.answers if a.status not in (200, 201))
    assert set(statuses) <= {503, 0}, statuses
    assert statuses[0] <= (load.users if in_flight_cut else 0), statuses


def test_broker_outage(breakable, breakable_harness, broker):
    row, load, began, healing = _through(
        "broker outage", breakable, breakable_harness, broker.stop_app, broker.start_app
    )
    # answered while it was away (one still retrying as it returns may well succeed)
    during = [a for a in load.answers if began <= a.started and a.started + a.seconds < healing]
    assert during and {a.status for a in during} == {503}
    slowest = max(a.seconds for a in during)
    assert slowest <= 5, f"a request waited {slowest:.1f} s for its 503"
    assert row.recovered <= 10, f"recovered {row.recovered:.1f} s after the broker returned"
    _restarted_only(breakable, row, [])  # no process may exit while the broker is away
    _only_clear_errors(load)
    _nothing_lost(row)


def test_database_crash(breakable, breakable_harness, database):
    row, load, _, _ = _through(
        "database crash", breakable, breakable_harness, database.crash, database.start
    )
    _restarted_only(breakable, row, [])
    _only_clear_errors(load)
    _nothing_lost(row)


@pytest.mark.parametrize("service", ["clients", "documents", "auth", "audit", "gateway"])
def test_a_component_killed(breakable, breakable_harness, service):
    """Killed with -9 and restarted by the supervisor; where it runs twice (SCALE), the
    other instance carries on, and only requests in flight on the killed one may fail."""
    twice = scale_of(SCALE)[service] > 1
    row, load, _, _ = _through(
        f"{service} killed -9" + (" (1 of 2)" if twice else ""),
        breakable,
        breakable_harness,
        lambda: breakable.send_signal(service, signal.SIGKILL),
    )
    _restarted_only(breakable, row, [service])
    if twice:
        assert row.errors <= load.users, row.notes
    _nothing_lost(row)


def test_each_instance_consumes_and_the_sweep_runs_once(breakable):
    """Two instances share each scaled service's RPC queue; two retention timers, one sweep."""
    uri = breakable.env["OVERDRACHT_GATEWAY_AMQP_URI"]
    for service, count in scale_of(SCALE).items():
        if service != "gateway":
            assert queue_consumers(uri, f"rpc-{service}") == count, service
    logs = [breakable.log_dir / f"{name}.log" for name in instances("retention", 2)]

    def sweeps() -> int:
        return sum(p.read_text().count("retention sweep removed") for p in logs)

    interval = int(breakable.env["OVERDRACHT_RETENTION_INTERVAL_SECONDS"])
    before = sweeps()
    time.sleep(interval * 6)
    swept = sweeps() - before
    # one sweep per interval between the two timers (7 slots at most in 6 intervals),
    # where each timer sweeping on its own would make about 12
    assert 4 <= swept <= 7, swept


def test_object_store_killed(breakable, breakable_harness):
    row, load, _, _ = _through(
        "object store killed -9",
        breakable,
        breakable_harness,
        lambda: breakable.send_signal("seaweedfs", signal.SIGKILL),
    )
    _only_clear_errors(load, in_flight_cut=True)
    _nothing_lost(row)


def test_a_service_hangs(breakable, breakable_harness):
    row, load, _, _ = _through(
        "clients hangs (SIGSTOP)",
        breakable,
        breakable_harness,
        lambda: breakable.send_signal("clients", signal.SIGSTOP),
        lambda: breakable.send_signal("clients", signal.SIGCONT),
    )
    # a caller that gave up heard 503 within the RPC timeout plus 2 s, and what it asked
    # for had no effect (no extra record below)
    patience = float(breakable.env["OVERDRACHT_RPC_TIMEOUT"]) + 2
    assert row.longest <= patience, f"a request took {row.longest:.1f} s"
    _only_clear_errors(load)
    _nothing_lost(row)
