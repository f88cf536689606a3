"""A throw-away platform: its own vhost, broker users, databases, roles, bucket and ports.

The test suite and the benchmarks run on one of these, on the machine's RabbitMQ and
PostgreSQL, provisioned exactly as `make run` provisions a development platform: a user
per component with least-privilege permissions, an owner and a runtime role per database.
The services and the gateway run as separate processes, exactly as `make run` starts them.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

from ops import provision
from ops.platform import Platform, Ports, generate_secrets, port_in_use, running
from overdracht import config


def free_port_base() -> int:
    """Six free ports in a row whose SeaweedFS gRPC twins (+10000) are free too.

    All below Linux's ephemeral range (32768 on): a port there can be taken at any moment
    by the local end of an outgoing connection, and SeaweedFS then fails to listen.
    """
    for _ in range(200):
        base = random.randrange(10000, 22000)
        ports = [p for b in range(base, base + 6) for p in (b, b + 10000)]
        if all(_bindable(p) for p in ports):
            return base
    raise RuntimeError("no free ports for the test platform")


def _bindable(port: int) -> bool:
    """Nothing listens on port, nor uses it as its local end."""
    if port_in_use(port):
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def sandbox(var: Path, settings: dict[str, str] | None = None) -> Iterator[Platform]:
    """Start a whole platform in var/; remove its accounts, databases and bucket afterwards.

    While it runs, this process's environment holds its settings, so in-process code
    (the CLI's functions, direct database checks) talks to it too.
    """
    run_id = uuid.uuid4().hex[:8]
    ports = Ports.from_base(free_port_base())
    servers = {**config.DEFAULTS, **(settings or {})}  # another broker or database server?
    env = {
        **config.DEFAULTS,
        **generate_secrets(),
        **provision.generate(
            f"ovdtest{run_id}",
            servers["OVERDRACHT_AMQP_ADDRESS"],
            servers["OVERDRACHT_POSTGRES_ADMIN_URL"],
        ),
        **ports.settings(),
        "OVERDRACHT_ENV": "test",
        "OVERDRACHT_ENV_FILE": str(var / "no-env-file"),
        "OVERDRACHT_S3_BUCKET": f"overdracht-test-{run_id}",
        "OVERDRACHT_SMS_OUTBOX": str(var / "outbox" / "sms.jsonl"),
        "OVERDRACHT_MAIL_OUTBOX": str(var / "outbox" / "mail"),
        "OVERDRACHT_AUDIT_CHECKPOINT_DIR": str(var / "audit-checkpoints"),
        # file bodies must never reach local disk: give them a place to show up if they do
        "TMPDIR": str(var / "tmp"),
        "PATH": os.environ["PATH"],
        **(settings or {}),
    }
    (var / "tmp").mkdir(exist_ok=True)
    saved = dict(os.environ)
    os.environ.update(env)
    config._file_values.cache_clear()
    platform = Platform(env=dict(os.environ), var=var, ports=ports, log_dir=var / "log")
    try:
        with running(platform):
            yield platform
    finally:
        provision.remove(env)
        os.environ.clear()
        os.environ.update(saved)
        config._file_values.cache_clear()
