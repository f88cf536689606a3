"""CPU time spent during a benchmark's transfers, by who spent it.

On a machine whose cores are all busy, transfers at once are bound by the CPU they cost,
not by their bytes' way through the network: if 20 raw PUTs cost the machine R seconds of
CPU and 20 uploads through the platform cost P, the uploads cannot reach more than R / P
of the raw PUTs' throughput on it, however the work is spread. The meter adds up, for
each kind of transfer, the CPU time (user and system, from /proc/<pid>/stat) of:

- the object store, and the platform's own processes (each with its descendants);
- the machine's message broker and database, found by their process names;
- the benchmark itself (the client, on both sides of a comparison);
- the whole machine (/proc/stat, not counting idle, I/O wait and time stolen by the
  hypervisor), which also holds the kernel's work and anything else running.

Linux only; nothing but /proc is read.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from bench.rss import tree

PROC = Path("/proc")
TICK = os.sysconf("SC_CLK_TCK")
#: the machine's own servers, by process name (`comm`)
SERVERS = {"broker": {"beam.smp", "erl_child_setup"}, "database": {"postgres"}}
CLIENT = "client"
MACHINE = "machine"


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far; 0 when it is gone."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_seconds() -> float:
    """CPU time the whole machine spent busy, over all its cores."""
    values = [int(v) for v in (PROC / "stat").read_text().split("\n", 1)[0].split()[1:]]
    idle, iowait, steal = values[3], values[4], values[7]
    return (sum(values[:8]) - idle - iowait - steal) / TICK


def _servers() -> dict[str, float]:
    """The CPU time of the machine's own servers so far, by SERVERS' names."""
    spent = dict.fromkeys(SERVERS, 0.0)
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                comm = (entry / "comm").read_text().strip()
                for name, comms in SERVERS.items():
                    if comm in comms:
                        spent[name] += cpu_seconds(int(entry.name))
    return spent


class CpuMeter:
    """CPU seconds by spender, summed per kind of transfer over every window of it."""

    def __init__(self, roots: list[tuple[str, int]]) -> None:
        self._roots = roots
        #: kind -> spender -> seconds, and how many windows of each kind
        self.spent: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.windows: dict[str, int] = defaultdict(int)

    def _now(self) -> dict[str, float]:
        """Every spender's CPU time so far (processes found anew: a worker may restart)."""
        now = {name: sum(cpu_seconds(pid) for pid in tree(root)) for name, root in self._roots}
        now.update(_servers())
        now[CLIENT] = time.process_time()
        now[MACHINE] = machine_seconds()
        return now

    @contextlib.contextmanager
    def window(self, kind: str) -> Iterator[None]:
        before = self._now()
        try:
            yield
        finally:
            after = self._now()
            for spender, seconds in after.items():
                # a process that restarted meanwhile counts from zero again: never below it
                self.spent[kind][spender] += max(0.0, seconds - before.get(spender, 0.0))
            self.windows[kind] += 1

    def per_window(self, kind: str) -> dict[str, float]:
        """The mean CPU seconds of one window of kind, by spender."""
        count = self.windows[kind] or 1
        return {spender: seconds / count for spender, seconds in self.spent[kind].items()}
