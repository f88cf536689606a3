"""A throw-away platform: its own vhost, databases, bucket, ports and var/ directory.

The test suite and the benchmarks run on one of these. Where a Docker engine answers,
RabbitMQ, PostgreSQL and MinIO come from testcontainers; elsewhere the machine's RabbitMQ
and PostgreSQL are used (isolated by a vhost and databases of their own) and a SeaweedFS
is started. Either way the services and the gateway run as separate processes, exactly
as `make run` starts them.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from overdracht import config
from overdracht.platform import Platform, Ports, generate_secrets, port_in_use, running

LOCAL_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
LOCAL_POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432/"


@dataclass
class Infrastructure:
    amqp_uri: str
    postgres_url: str
    s3: dict[str, str] | None  # endpoint and keys of an external S3, or None for SeaweedFS


def free_port_base() -> int:
    """Six free ports in a row whose SeaweedFS gRPC twins (+10000) are free too."""
    for _ in range(200):
        base = random.randrange(20000, 30000)
        ports = [p for b in range(base, base + 6) for p in (b, b + 10000)]
        if not any(port_in_use(p) for p in ports):
            return base
    raise RuntimeError("no free ports for the test platform")


def _docker_available() -> bool:
    """A Docker engine answers on its socket (DOCKER_HOST or the default one)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return True  # a remote engine was named on purpose: let testcontainers use it
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(3)
        try:
            probe.connect(host.removeprefix("unix://"))
            probe.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return b" 200 " in probe.recv(64)
        except OSError:
            return False


@contextlib.contextmanager
def _containers() -> Iterator[Infrastructure]:
    from testcontainers.minio import MinioContainer
    from testcontainers.postgres import PostgresContainer
    from testcontainers.rabbitmq import RabbitMqContainer

    with (
        RabbitMqContainer("rabbitmq:3.13") as rabbit,
        PostgresContainer("postgres:15", driver="psycopg2") as pg,
        MinioContainer("minio/minio:RELEASE.2024-10-13T13-34-11Z") as minio,
    ):
        params = rabbit.get_connection_params()
        minio_config = minio.get_config()
        yield Infrastructure(
            amqp_uri=(
                f"amqp://{params.credentials.username}:{params.credentials.password}"
                f"@{params.host}:{params.port}/"
            ),
            postgres_url=pg.get_connection_url().rsplit("/", 1)[0] + "/",
            s3={
                "OVERDRACHT_S3_ENDPOINT": minio_config["endpoint"],
                "OVERDRACHT_S3_ACCESS_KEY": minio_config["access_key"],
                "OVERDRACHT_S3_SECRET_KEY": minio_config["secret_key"],
            },
        )


@contextlib.contextmanager
def local_infrastructure(run_id: str) -> Iterator[Infrastructure]:
    """The machine's broker and database server, isolated by a vhost of our own."""
    vhost = f"overdracht-test-{run_id}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield Infrastructure(amqp_uri=f"{LOCAL_AMQP}{vhost}", postgres_url=LOCAL_POSTGRES, s3=None)
    finally:
        _rabbitmqctl("delete_vhost", vhost, check=False)


def _rabbitmqctl(*args: str, check: bool = True) -> None:
    command = shutil.which("rabbitmqctl")
    if command is None:
        raise RuntimeError("rabbitmqctl not found: a local RabbitMQ is needed (see README)")
    subprocess.run([command, "-q", *args], check=check)  # noqa: S603 - our own arguments


@contextlib.contextmanager
def sandbox(var: Path, settings: dict[str, str] | None = None) -> Iterator[Platform]:
    """Start a whole platform in var/; remove its vhost, databases and bucket afterwards.

    While it runs, this process's environment holds its settings, so in-process code
    (the CLI's functions, direct database checks) talks to it too.
    """
    from overdracht.db import SERVICES_WITH_DATABASE, drop_database

    run_id = uuid.uuid4().hex[:8]
    infrastructure = _containers() if _docker_available() else local_infrastructure(run_id)
    with infrastructure as infra:
        ports = Ports.from_base(free_port_base())
        env = {
            **config.DEFAULTS,
            **generate_secrets(),
            **ports.settings(),
            **(infra.s3 or {}),
            "OVERDRACHT_ENV": "test",
            "OVERDRACHT_ENV_FILE": str(var / "no-env-file"),
            "OVERDRACHT_AMQP_URI": infra.amqp_uri,
            "OVERDRACHT_S3_BUCKET": f"overdracht-test-{run_id}",
            "OVERDRACHT_SMS_OUTBOX": str(var / "outbox" / "sms.jsonl"),
            # file bodies must never reach local disk: give them a place to show up if they do
            "TMPDIR": str(var / "tmp"),
            "PATH": os.environ["PATH"],
            **(settings or {}),
        }
        for service in SERVICES_WITH_DATABASE:
            env[f"OVERDRACHT_{service.upper()}_DB"] = (
                f"{infra.postgres_url}overdracht_test_{run_id}_{service}"
            )
        (var / "tmp").mkdir(exist_ok=True)
        saved = dict(os.environ)
        os.environ.update(env)
        config._file_values.cache_clear()
        platform = Platform(
            env=dict(os.environ),
            var=var,
            ports=ports,
            log_dir=var / "log",
            embedded_object_store=infra.s3 is None,
        )
        try:
            with running(platform):
                yield platform
        finally:
            for service in SERVICES_WITH_DATABASE:
                drop_database(env[f"OVERDRACHT_{service.upper()}_DB"])
            os.environ.clear()
            os.environ.update(saved)
            config._file_values.cache_clear()
