"""A private RabbitMQ node and a private PostgreSQL cluster, on ports of their own.

The fault suite (`make faults`, tests/faults/) stops, kills and restarts these; the
machine's own broker and database are never touched. The platform is pointed at them
with exactly the settings an operator uses for any other servers (README,
"Other broker and database servers"): OVERDRACHT_AMQP_ADDRESS and
OVERDRACHT_RABBITMQ_NODE for the broker, OVERDRACHT_POSTGRES_ADMIN_URL for the database.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ops.platform import port_in_use


def _wait(check, what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up within {seconds:.0f} s")
        time.sleep(0.3)


@dataclass
class RabbitNode:
    node: str
    port: int
    home: Path

    def settings(self) -> dict[str, str]:
        return {
            "OVERDRACHT_AMQP_ADDRESS": f"127.0.0.1:{self.port}",
            "OVERDRACHT_RABBITMQ_NODE": self.node,
        }

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(  # noqa: S603 - our own arguments
            ["rabbitmqctl", "-q", "-n", self.node, *args],  # noqa: S607
            check=check,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def stop_app(self) -> None:
        """The broker goes away (connections cut, port closed); the node stays to return."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")
        _wait(lambda: port_in_use(self.port), "the private RabbitMQ node", 60)


@contextlib.contextmanager
def rabbitmq_node(port: int, dist_port: int, extra_config: str = "") -> Iterator[RabbitNode]:
    """Start a RabbitMQ node as the rabbitmq user; stop it and remove its files afterwards."""
    # not under pytest's tmp_path (0700): the rabbitmq user must be able to reach it
    home = Path(tempfile.mkdtemp(prefix="overdracht-rabbitmq-"))
    home.chmod(0o755)
    node = RabbitNode(f"ovd{uuid.uuid4().hex[:8]}@localhost", port, home)
    (home / "rabbitmq.conf").write_text(f"listeners.tcp.default = {port}\n{extra_config}")
    (home / "plugins").write_text("[].\n")
    for path in home.iterdir():
        path.chmod(0o644)
    for sub in ("mnesia", "log"):
        (home / sub).mkdir()
        shutil.chown(home / sub, "rabbitmq")
    env = {
        "HOME": "/var/lib/rabbitmq",
        "PATH": os.environ["PATH"],
        "RABBITMQ_NODENAME": node.node,
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq"),
        "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
        "RABBITMQ_LOG_BASE": str(home / "log"),
        "RABBITMQ_PID_FILE": str(home / "pid"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "plugins"),
    }
    subprocess.run(  # noqa: S603 - our own arguments
        ["runuser", "-u", "rabbitmq", "--", "env", *(f"{k}={v}" for k, v in env.items()),  # noqa: S607
         "rabbitmq-server", "-detached"],
        check=True,
    )  # fmt: skip
    try:
        # await_startup fails while the node is still booting: watch the port instead
        _wait(lambda: port_in_use(port), "the private RabbitMQ node", 90)
        yield node
    finally:
        node.ctl("stop", check=False)
        shutil.rmtree(home, ignore_errors=True)


@dataclass
class PostgresCluster:
    version: str
    name: str
    port: int

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def settings(self) -> dict[str, str]:
        return {"OVERDRACHT_POSTGRES_ADMIN_URL": self.admin_url}

    def _ctl(self, *args: str) -> None:
        subprocess.run(  # noqa: S603 - our own arguments
            ["pg_ctlcluster", "--skip-systemctl-redirect", self.version, self.name, *args],  # noqa: S607
            check=True,
            capture_output=True,
            timeout=120,
        )

    def crash(self) -> None:
        """Stop without a clean shutdown, as a crash would (`-m immediate`)."""
        self._ctl("stop", "-m", "immediate")

    def start(self) -> None:
        self._ctl("start")
        _wait(lambda: port_in_use(self.port), "the private PostgreSQL cluster", 60)


@contextlib.contextmanager
def postgres_cluster(port: int) -> Iterator[PostgresCluster]:
    """Create and start a cluster (trust auth on 127.0.0.1); drop it afterwards."""
    versions = sorted(Path(p).name for p in glob.glob("/etc/postgresql/*"))
    if not versions:
        raise RuntimeError("no PostgreSQL installation found under /etc/postgresql")
    cluster = PostgresCluster(versions[-1], f"ovd{uuid.uuid4().hex[:8]}", port)
    subprocess.run(  # noqa: S603 - our own arguments
        ["pg_createcluster", cluster.version, cluster.name, "--port", str(port),  # noqa: S607
         "--", "--auth=trust"],
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    try:
        cluster.start()
        yield cluster
    finally:
        subprocess.run(  # noqa: S603 - our own arguments
            ["pg_dropcluster", "--stop", cluster.version, cluster.name],  # noqa: S607
            check=False,
            capture_output=True,
            timeout=120,
        )
