"""Throughput through the platform, against the same bytes straight to S3 in the same run.

`make bench` prints, for each path, MB/s, the ratio platform ÷ raw S3 and whether the
issue's target is met: a 100 MiB document uploaded and downloaded (encrypted on the way
in, checked whole and decrypted on the way out) against a raw PUT and GET of the same
bytes, best of 3 rounds each, the rounds interleaved so that a noisy moment hits both;
20 uploads of 5 MiB at once against 20 raw PUTs at once, and those 20 documents downloaded
at once against 20 raw GETs at once (no target of the issue's: it shows what a request
costs besides its bytes); the peak growth of resident memory of every process of the
platform during all of it; and the CPU time each kind of transfer cost, by who spent it,
with the most the transfers at once can reach on this machine's cores for that cost
(bench/cpu.py). It never asserts a timing.

The client does the same for both sides of a comparison: it sends bytes it prepared
beforehand (the multipart form is encoded before the clock starts) and keeps what it
reads in memory, checking it against the original only after the clock stopped.
"""

from __future__ import annotations

import hashlib
import io
import os
import platform as host
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import requests
from urllib3 import encode_multipart_formdata

from bench.cpu import CLIENT, MACHINE, SERVERS, CpuMeter
from bench.rss import RssSampler
from ops.sandbox import sandbox
from overdracht import config
from services.documents.storage import BlobStore, make_client
from tests.support import Harness, in_weeks, pdf

MiB = 1024 * 1024
SIZE = 100 * MiB
ROUNDS = 3
CONCURRENT = 20
CONCURRENT_SIZE = 5 * MiB
#: (what, least acceptable ratio platform ÷ raw S3)
TARGETS = {"upload": 0.7, "download": 0.5, "concurrent": 0.7}
RSS_LIMIT = 64 * MiB
#: the transfers straight to and from S3, the baseline
RAW = {"put", "get", "cput", "cget"}
#: the object store's processes (it grows during the raw transfers too)
STORE = {"seaweedfs"}
T = TypeVar("T")


def timed(times: list[float], action: Callable[[], T]) -> T:
    """Run action, add its seconds to times, return what it returned."""
    started = time.perf_counter()
    result = action()
    times.append(time.perf_counter() - started)
    return result


def rate(size: int, seconds: float) -> float:
    return size / seconds / 1e6


def form(body: bytes) -> tuple[bytes, str]:
    """An upload's multipart body and its content type, fields first (as browsers send it)."""
    return encode_multipart_formdata(
        [
            ("document_type", "zwangerschapskaart"),
            ("removal_date", in_weeks(20)),
            ("file", ("bench.pdf", body, "application/pdf")),
        ]
    )


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    system = f"Linux {host.release()}, Python {host.python_version()}"
    return f"{model}, {os.cpu_count()} cores, {system}"


def verdict(ratio: float, target: float) -> str:
    return "met" if ratio >= target else "NOT met"


def main() -> int:
    body = pdf(SIZE)
    digest = hashlib.sha256(body).digest()
    upload_form = form(body)
    small = pdf(CONCURRENT_SIZE)
    small_digest = hashlib.sha256(small).digest()
    small_form = form(small)
    with tempfile.TemporaryDirectory() as var, sandbox(Path(var)) as platform:
        harness = Harness(platform)
        api = harness.provider()
        client = harness.new_client(api)
        url = f"{harness.api_url}/clients/{client['id']}/documents"
        token = api.headers["Authorization"]
        store = BlobStore(make_client(), config.get("OVERDRACHT_S3_BUCKET"))

        busy: list[int] = []

        def upload(session: requests.Session, encoded: tuple[bytes, str]) -> str:
            """One upload; refused as busy (the gateway's cap on uploads at once), sent again."""
            data, content_type = encoded
            while True:
                response = session.post(url, data=data, headers={"Content-Type": content_type})
                if response.status_code == 503 and response.json()["error"]["code"] == "busy":
                    busy.append(1)
                    time.sleep(0.05)
                    continue
                assert response.status_code == 201, response.text
                return response.json()["id"]

        def download(document_id: str, session: requests.Session | None = None) -> list[bytes]:
            caller = session or api
            path = f"/documents/{document_id}/content"
            url = path if session is None else harness.api_url + path
            with caller.get(url, stream=True) as response:
                assert response.status_code == 200, response.text
                return list(response.iter_content(MiB))

        def raw_get(key: str) -> list[bytes]:
            return list(store.get(key, chunk_size=MiB))

        def check(chunks: list[bytes], expected: bytes = digest) -> None:
            whole = hashlib.sha256()
            for chunk in chunks:
                whole.update(chunk)
            assert whole.digest() == expected, "the bytes that came back differ"

        def at_once(action: Callable[[int], T]) -> list[T]:
            """CONCURRENT actions, started together; what each returned, once all have ended."""
            start = threading.Barrier(CONCURRENT + 1)
            failures: list[BaseException] = []
            results: list = [None] * CONCURRENT

            def run(i: int) -> None:
                start.wait()
                try:
                    results[i] = action(i)
                except BaseException as exc:  # noqa: BLE001 - reported below
                    failures.append(exc)

            threads = [threading.Thread(target=run, args=(i,)) for i in range(CONCURRENT)]
            for thread in threads:
                thread.start()
            start.wait()
            for thread in threads:
                thread.join()
            if failures:
                raise failures[0]
            return results

        sessions = []
        for _ in range(CONCURRENT):
            session = requests.Session()
            session.headers["Authorization"] = token
            sessions.append(session)

        times: dict[str, list[float]] = {
            key: []
            for key in ("put", "upload", "get", "download", "cput", "cupload", "cget", "cdownload")
        }
        roots = [(name, process.pid) for name, process in platform.processes]
        cpu = CpuMeter(roots)
        with RssSampler(roots) as memory:

            def measure(key: str, action: Callable[[], T]) -> T:
                with memory.window("raw" if key in RAW else "platform"), cpu.window(key):
                    return timed(times[key], action)

            for i in range(ROUNDS):
                ids = measure("cupload", lambda: at_once(lambda j: upload(sessions[j], small_form)))
                measure(
                    "cput",
                    lambda i=i: at_once(lambda j: store.put(f"bench/c{i}-{j}", io.BytesIO(small))),
                )
                got = measure(
                    "cdownload", lambda ids=ids: at_once(lambda j: download(ids[j], sessions[j]))
                )
                got += measure("cget", lambda i=i: at_once(lambda j: raw_get(f"bench/c{i}-{j}")))
                for chunks in got:
                    check(chunks, small_digest)
            for i in range(ROUNDS):
                measure("put", lambda i=i: store.put(f"bench/{i}", io.BytesIO(body)))
                document_id = measure("upload", lambda: upload(sessions[0], upload_form))
                check(measure("get", lambda i=i: raw_get(f"bench/{i}")))
                check(measure("download", lambda d=document_id: download(d)))

    best = {key: min(values) for key, values in times.items()}
    concurrent_bytes = CONCURRENT * CONCURRENT_SIZE
    print(f"machine: {machine()}")
    print(
        f"{SIZE // MiB} MiB document, best of {ROUNDS} rounds (interleaved);"
        f" {CONCURRENT} × {CONCURRENT_SIZE // MiB} MiB at once, best of {ROUNDS}"
    )
    print(f"{'path':<44}{'MB/s':>8}{'÷ raw':>8}{'target':>9}  rounds (MB/s)")
    rows = (
        ("raw S3 PUT", "put", SIZE, None, None),
        ("upload through gateway and documents", "upload", SIZE, "put", "upload"),
        ("raw S3 GET", "get", SIZE, None, None),
        ("download through documents and gateway", "download", SIZE, "get", "download"),
        (f"{CONCURRENT} raw S3 PUTs at once", "cput", concurrent_bytes, None, None),
        (f"{CONCURRENT} uploads at once", "cupload", concurrent_bytes, "cput", "concurrent"),
        (f"{CONCURRENT} raw S3 GETs at once", "cget", concurrent_bytes, None, None),
        (f"{CONCURRENT} downloads at once", "cdownload", concurrent_bytes, "cget", None),
    )
    for name, key, size, raw, target in rows:
        rounds = " ".join(f"{rate(size, t):.0f}" for t in times[key])
        figure = f"{name:<44}{rate(size, best[key]):>8.1f}"
        if raw is None:
            print(f"{figure}{'':>8}{'':>9}  {rounds}")
            continue
        ratio = best[raw] / best[key]
        if target is None:  # measured, without a target of the issue's
            print(f"{figure}{ratio:>8.3f}{'':>9}  {rounds}")
            continue
        goal = TARGETS[target]
        print(f"{figure}{ratio:>8.3f}{'≥ ' + str(goal):>9}  {rounds}  {verdict(ratio, goal)}")
    if busy:
        print(f"uploads refused as busy and sent again: {len(busy)}")
    print(
        "resident memory, MiB: at the start, peak, growth over the run, and the largest"
        " growth within one transfer through the platform / one raw S3 transfer"
    )
    print(f"  {'process':<34}{'start':>7}{'peak':>7}{'growth':>8}{'platform':>10}{'raw':>7}")
    samples = sorted(memory.samples.values(), key=lambda s: s.name)
    for sample in samples:
        within = [sample.within.get(kind, 0) / MiB for kind in ("platform", "raw")]
        print(
            f"  {sample.name:<34}{sample.first / MiB:>7.1f}{sample.peak / MiB:>7.1f}"
            f"{sample.growth / MiB:>8.1f}{within[0]:>10.1f}{within[1]:>7.1f}"
        )
    for label, chosen in (
        ("any process", samples),
        ("the gateway and the services", [s for s in samples if s.name not in STORE]),
    ):
        worst = max(chosen, key=lambda s: s.growth)
        print(
            f"largest growth over the run, {label}: {worst.growth / MiB:.1f} MiB ({worst.name});"
            f" target ≤ {RSS_LIMIT // MiB}: {'met' if worst.growth <= RSS_LIMIT else 'NOT met'}"
        )
    print_cpu(cpu, times, rows)
    return 0


def print_cpu(cpu: CpuMeter, times: dict[str, list[float]], rows: tuple) -> None:
    """CPU seconds per round by spender, and what that cost allows the transfers at once.

    A round through the platform cannot take less than the machine's CPU seconds for it
    spread over every core; so the ratio to the raw round can be at most the raw round's
    time × cores ÷ the platform round's CPU seconds.
    """
    cores = os.cpu_count() or 1
    spenders = ["seaweedfs", "platform", *SERVERS, CLIENT, MACHINE]
    print(
        "CPU seconds per round (mean of the rounds), by who spent them: the object store,"
        " the gateway and the services, the machine's broker and database, this client,"
        f" and the whole machine ({cores} cores)"
    )
    print(f"  {'path':<42}" + "".join(f"{s:>10}" for s in spenders))
    # the platform: every process the sandbox started, but the object store
    others = {*STORE, *SERVERS, CLIENT, MACHINE}
    for name, key, *_ in rows:
        spent = cpu.per_window(key)
        spent["platform"] = sum(s for spender, s in spent.items() if spender not in others)
        print(f"  {name:<42}" + "".join(f"{spent.get(s, 0.0):>10.2f}" for s in spenders))
    for name, key, _, raw, _target in rows:
        if raw is None or not key.startswith("c"):
            continue
        raw_round = sum(times[raw]) / len(times[raw])
        bound = raw_round * cores / cpu.per_window(key)[MACHINE]
        print(f"{name}: for its CPU, at most {bound:.2f} of the raw rounds on {cores} cores")


if __name__ == "__main__":
    sys.exit(main())
