"""Upload and download throughput through the platform, against direct S3 in the same run.

`make bench` prints MB/s for each path and the ratio platform ÷ direct: the cost of the
gateway, the documents service and their checks on top of the object store itself.
"""

from __future__ import annotations

import hashlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

from ops.sandbox import sandbox
from overdracht import config
from services.documents.storage import BlobStore, make_client
from tests.support import Harness, pdf

MiB = 1024 * 1024
SIZE = 50 * MiB
ROUNDS = 5


def rate(seconds: list[float]) -> float:
    """MB/s from the median of the rounds."""
    return SIZE / statistics.median(seconds) / 1e6


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> int:
    body = pdf(SIZE)
    with tempfile.TemporaryDirectory() as var, sandbox(Path(var)) as platform:
        harness = Harness(platform)
        api = harness.provider()
        client = harness.new_client(api)
        store = BlobStore(make_client(), config.get("OVERDRACHT_S3_BUCKET"))

        direct_put = [
            timed(lambda i=i: store.put(f"bench/{i}", io.BytesIO(body))) for i in range(ROUNDS)
        ]
        direct_get = [timed(lambda i=i: b"".join(store.get(f"bench/{i}"))) for i in range(ROUNDS)]

        ids: list[str] = []

        def upload() -> None:
            response = harness.upload(api, client["id"], body, filename="bench.pdf")
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])

        def download(document_id: str) -> None:
            digest = hashlib.sha256()
            with api.get(f"/documents/{document_id}/content", stream=True) as response:
                for chunk in response.iter_content(MiB):
                    digest.update(chunk)
            assert digest.hexdigest() == hashlib.sha256(body).hexdigest()

        uploads = [timed(upload) for _ in range(ROUNDS)]
        downloads = [timed(lambda d=d: download(d)) for d in ids]

    print(f"{SIZE // MiB} MiB documents, median of {ROUNDS} rounds")
    print(f"{'path':<28}{'MB/s':>10}{'÷ direct S3':>14}")
    for name, platform_times, direct_times in (
        ("upload (gateway → S3)", uploads, direct_put),
        ("download (S3 → gateway)", downloads, direct_get),
    ):
        print(f"{'direct S3 ' + name.split()[0]:<28}{rate(direct_times):>10.1f}{1.0:>14.2f}")
        ratio = rate(platform_times) / rate(direct_times)
        print(f"{name:<28}{rate(platform_times):>10.1f}{ratio:>14.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
