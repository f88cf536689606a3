"""Peak resident memory of every process of a platform while a benchmark runs.

A thread reads VmRSS from /proc/<pid>/status for each process the platform started and
each of their descendants (gunicorn's workers are children of its master), every few
milliseconds, and keeps the first and the highest value per process: growth is the
highest minus the first. Within a window (`with sampler.window("platform"): ...`) it also
keeps each process's largest growth over its value when the window began, per kind of
window: the object store grows during direct S3 transfers too, and this tells them apart.
Linux only; nothing but /proc is read.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")


@dataclass
class Sample:
    name: str
    first: int  # bytes
    peak: int
    #: kind of window -> the largest growth within one window of that kind
    within: dict[str, int] = field(default_factory=dict)
    latest: int = 0

    @property
    def growth(self) -> int:
        return self.peak - self.first


def rss(pid: int) -> int | None:
    """A process's resident set size in bytes, or None when it is gone."""
    try:
        with open(PROC / str(pid) / "status", "rb") as status:
            for line in status:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def children(pid: int) -> list[int]:
    """The direct children of a process (every one of its threads may have some)."""
    found: list[int] = []
    # a process that exited meanwhile has no children left to count
    with contextlib.suppress(OSError):
        for task in (PROC / str(pid) / "task").iterdir():
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def tree(root: int) -> list[int]:
    """A process and all its descendants."""
    pids, pending = [], [root]
    while pending:
        pid = pending.pop()
        pids.append(pid)
        pending += children(pid)
    return pids


class RssSampler:
    """Samples the resident memory of named processes and their descendants until stopped."""

    def __init__(self, roots: list[tuple[str, int]], interval: float = 0.02) -> None:
        self._roots = roots
        self._interval = interval
        self._names: dict[int, str] = {}
        self.samples: dict[int, Sample] = {}
        self._lock = threading.Lock()
        self._window: tuple[str, dict[int, int]] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._discover()
        self._sample()  # the first value of each process is taken before anything runs
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @contextlib.contextmanager
    def window(self, kind: str) -> Iterator[None]:
        """Attribute growth from here to the end of the block to kind (besides the run)."""
        with self._lock:
            self._sample()
            self._window = (kind, {pid: s.latest for pid, s in self.samples.items()})
        try:
            yield
        finally:
            with self._lock:
                self._sample()
                self._window = None

    def _discover(self) -> None:
        """Name every process under the roots: `gateway`, `gateway worker 1234`, ..."""
        for name, root in self._roots:
            for pid in tree(root):
                self._names.setdefault(pid, name if pid == root else f"{name} worker {pid}")

    def _sample(self) -> None:
        for pid, name in list(self._names.items()):
            value = rss(pid)
            if value is None:
                continue
            sample = self.samples.get(pid)
            if sample is None:
                sample = self.samples[pid] = Sample(name, value, value)
            sample.peak = max(sample.peak, value)
            sample.latest = value
            if self._window is not None:
                kind, start = self._window
                growth = value - start.get(pid, value)
                sample.within[kind] = max(sample.within.get(kind, 0), growth)

    def _run(self) -> None:
        last_discovery = time.monotonic()
        while not self._stop.wait(self._interval):
            with self._lock:
                if time.monotonic() - last_discovery > 1:  # a worker started again, say
                    self._discover()
                    last_discovery = time.monotonic()
                self._sample()
        with self._lock:
            self._sample()
