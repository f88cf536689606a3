"""Run the whole platform on one machine: object store, bus, databases, services, gateway.

`make run` uses this in the foreground; the test suite uses the same code with its own
vhost, databases, bucket and ports, so what the tests exercise is what a newcomer runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pika
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from overdracht.bus import SERVICES, queue_consumers

ROOT = Path(__file__).resolve().parent.parent
#: how long a process has between SIGTERM and SIGKILL: Ctrl-C ends everything within 10 s
STOP_SECONDS = 7


#: the most instances of one component OVERDRACHT_SCALE may ask for on one machine
MAX_INSTANCES = 8


def scale_of(setting: str) -> dict[str, int]:
    """Instances per component from OVERDRACHT_SCALE ("gateway=2 documents=2 clients=2").

    Components not named run once. A bad setting stops the start with a clear message.
    """
    components = (*SERVICES, "gateway")
    counts = dict.fromkeys(components, 1)
    for item in setting.replace(",", " ").split():
        name, _, count = item.partition("=")
        if name not in components or not count.isdigit() or not 1 <= int(count) <= MAX_INSTANCES:
            raise ValueError(
                f"OVERDRACHT_SCALE: {item!r} is not <component>=<1..{MAX_INSTANCES}> "
                f"for a component in {', '.join(components)}"
            )
        counts[name] = int(count)
    return counts


def instances(component: str, count: int) -> list[str]:
    """Process names of a component's instances: `clients`, then `clients-2`, `clients-3`."""
    return [component] + [f"{component}-{i}" for i in range(2, count + 1)]


def generate_secrets() -> dict[str, str]:
    """Fresh secrets for a development or test platform; production brings its own."""
    from overdracht.lookup import generate_lookup_keys
    from services.auth.sealing import generate_sealing_keyset
    from services.documents.crypto import generate_master_keys

    return {
        **_key_pair("OVERDRACHT_PRINCIPAL"),
        **_key_pair("OVERDRACHT_SYSTEM"),
        **_key_pair("OVERDRACHT_GATEWAY"),
        **_key_pair("OVERDRACHT_OPERATOR"),
        **_key_pair("OVERDRACHT_CLIENTS"),
        **_key_pair("OVERDRACHT_AUDIT_CHECKPOINT"),
        "OVERDRACHT_PEPPER": secrets.token_hex(32),
        "OVERDRACHT_SECRET_KEY": secrets.token_hex(32),
        "OVERDRACHT_S3_ACCESS_KEY": "overdracht" + secrets.token_hex(6),
        "OVERDRACHT_S3_SECRET_KEY": secrets.token_urlsafe(30),
        **generate_master_keys(),  # OVERDRACHT_MASTER_KEYS and _MASTER_KEY_ID
        **generate_lookup_keys(),  # the audit's client lookup: key pair and pepper
        **generate_sealing_keyset(),  # auth's authenticator secrets, sealed at rest
    }


def _key_pair(prefix: str) -> dict[str, str]:
    """An Ed25519 key pair as hex, for <prefix>_PRIVATE_KEY and <prefix>_PUBLIC_KEY."""
    key = Ed25519PrivateKey.generate()
    raw = serialization.Encoding.Raw
    private = key.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    public = key.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
    return {f"{prefix}_PRIVATE_KEY": private.hex(), f"{prefix}_PUBLIC_KEY": public.hex()}


def bin_path(name: str) -> str:
    """A console script of this virtualenv (weed, nameko, gunicorn)."""
    candidate = Path(sys.executable).parent / name
    found = candidate if candidate.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found; run `make install`")
    return str(found)


@dataclass
class Ports:
    gateway: int = 8000
    documents: int = 8001
    s3: int = 8333
    master: int = 9333
    volume: int = 8080
    filer: int = 8888

    @classmethod
    def from_base(cls, base: int) -> Ports:
        """Six consecutive ports (SeaweedFS also takes each of its ports + 10000)."""
        return cls(base, base + 1, base + 2, base + 3, base + 4, base + 5)

    def settings(self) -> dict[str, str]:
        """The configuration variables that name these ports."""
        return {
            "OVERDRACHT_GATEWAY_BIND": f"127.0.0.1:{self.gateway}",
            "OVERDRACHT_DOCUMENTS_BIND": f"127.0.0.1:{self.documents}",
            "OVERDRACHT_DOCUMENTS_URL": f"http://127.0.0.1:{self.documents}",
            "OVERDRACHT_S3_ENDPOINT": f"127.0.0.1:{self.s3}",
        }


#: gunicorn's access log line, without the query string, the referrer and the user agent
ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(L)ss'


@dataclass
class Platform:
    """Processes this platform started, stopped in reverse order."""

    env: dict[str, str]
    var: Path
    ports: Ports = field(default_factory=Ports)
    processes: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    commands: dict[str, tuple[list[str], Path | None]] = field(default_factory=dict)
    log_dir: Path | None = None
    #: False when the S3 endpoint is someone else's (MinIO in a container, production)
    embedded_object_store: bool = True
    #: supervision: when each process last started, how often it died since, when it is due
    _started_at: dict[str, float] = field(default_factory=dict)
    _failures: dict[str, int] = field(default_factory=dict)
    _due: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.var = self.var.resolve()  # children run in the repository, not in our cwd

    def check_ports_free(self) -> None:
        """Fail fast, and say why, when another platform still holds our ports."""
        p = self.ports
        for port in (p.gateway, p.documents, p.s3, p.master, p.volume, p.filer):
            if port_in_use(port):
                raise RuntimeError(
                    f"port {port} is in use: is Overdracht (or SeaweedFS) already running?"
                )

    # --- object store ---------------------------------------------------------------------

    def start_object_store(self) -> None:
        """SeaweedFS in one process: master, volume, filer and the S3 gateway.

        Only S3 with the platform's keys gets in: see overdracht/seaweedfs.py.
        """
        from ops.seaweedfs import write_security_config

        data = self.var / "seaweedfs"
        data.mkdir(parents=True, exist_ok=True)
        private = self.var / "seaweedfs-security"  # keys, certificates, s3.json, sockets
        private.mkdir(mode=0o700, parents=True, exist_ok=True)
        private.chmod(0o700)
        config_dir = write_security_config(private)
        s3_config = private / "s3.json"
        identity = {
            "name": "overdracht",
            "credentials": [
                {
                    "accessKey": self.env["OVERDRACHT_S3_ACCESS_KEY"],
                    "secretKey": self.env["OVERDRACHT_S3_SECRET_KEY"],
                }
            ],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        fd = os.open(s3_config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"identities": [identity]}, out)
        p = self.ports
        for port in (p.master, p.volume, p.filer, p.s3):  # stale sockets break a restart
            for sock in Path("/tmp").glob(  # noqa: S108 - where SeaweedFS keeps its sockets
                f"seaweedfs-*-{port}.sock"
            ):
                sock.unlink(missing_ok=True)
            for sock in Path("/tmp").glob(f"seaweedfs-*-grpc-{port + 10000}.sock"):  # noqa: S108
                sock.unlink(missing_ok=True)
        self.spawn(
            "seaweedfs",
            [
                bin_path("weed"),
                "-logtostderr",  # into our log file, not files of its own in TMPDIR
                f"-config_dir={config_dir}",  # security.toml: mutual TLS and JWT everywhere
                "server",
                f"-dir={data}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-master.port={p.master}",
                f"-volume.port={p.volume}",
                "-filer",
                f"-filer.port={p.filer}",
                "-s3",
                f"-s3.port={p.s3}",
                f"-s3.config={s3_config}",
                "-master.volumeSizeLimitMB=128",
                # no Iceberg or Lance endpoints (they take fixed ports), no telemetry
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-master.telemetry=false",
                "-volume.max=0",
                # no plain HTTP API on the master or the filer at all, and the filer's and
                # S3's unix sockets in our own directory rather than in /tmp
                "-disableHttp",
                f"-filer.localSocket={private / 'filer.sock'}",
                f"-s3.localSocket={private / 's3.sock'}",
            ],
            log=(self.log_dir or self.var / "log") / "seaweedfs.log",  # it is chatty
        )
        wait_for(
            lambda: self.check_alive() or 200 <= _http_status(f"http://127.0.0.1:{p.s3}/") < 500,
            "SeaweedFS S3",
            60,
        )

    def ensure_bucket(self) -> None:
        from services.documents.storage import BlobStore, make_client

        store = BlobStore(make_client(), self.env["OVERDRACHT_S3_BUCKET"])
        wait_for(lambda: _quietly(store.ensure_bucket), "the document bucket", 60)

    # --- bus and databases ----------------------------------------------------------------

    def prepare(self) -> None:
        """Provision broker users and database roles, then migrate every service database."""
        from ops.provision import SERVICES_WITH_DATABASE, migrate, provision

        provision(self.env)
        for service in SERVICES_WITH_DATABASE:
            migrate(service)

    # --- services -------------------------------------------------------------------------

    def start_services(self) -> None:
        config_file = str(ROOT / "deploy" / "nameko.yaml")
        for service in SERVICES:
            for name in instances(service, self.scale[service]):
                self.spawn(
                    name,
                    [
                        sys.executable,
                        "-m",
                        "overdracht.nameko_cli",
                        "run",
                        "--config",
                        config_file,
                        f"services.{service}.service",
                    ],
                )
        for name in instances("gateway", self.scale["gateway"]):
            self.spawn(name, self._gateway_command(name))
        wait_for(self._rpc_queues_ready, "the services", 60)
        wait_for(self._gateway_serves, "the gateway", 60)

    def _gateway_command(self, name: str) -> list[str]:
        """One gateway instance; every instance binds the same port (SO_REUSEPORT)."""
        return [
            bin_path("gunicorn"),
            "--bind",
            f"127.0.0.1:{self.ports.gateway}",
            "--reuse-port",
            # gthread whose loop gathers heads and small bodies and paces every read, so
            # slow senders hold no thread (gateway/worker.py); uploads may take 12 of the
            # 16 threads, the other 4 are kept for everything else
            "--worker-class",
            "gateway.worker.GatewayWorker",
            "--workers",
            "2",
            "--threads",
            "16",
            "--timeout",
            "300",
            "--graceful-timeout",
            "5",
            # longer than a client's pause between two requests: gunicorn's 2 s default
            # closes idle connections just as clients reuse them (POSTs then fail)
            "--keep-alive",
            "30",
            "--access-logfile",
            "-",
            # the path without its query: an activation link's token never reaches a log
            "--access-logformat",
            ACCESS_LOG_FORMAT,
            # its own control socket, not the one every gunicorn of this user shares
            "--control-socket",
            str(self.var / f"{name}.ctl"),
            "gateway.wsgi:app",
        ]

    @property
    def scale(self) -> dict[str, int]:
        return scale_of(self.env.get("OVERDRACHT_SCALE", ""))

    def _gateway_serves(self) -> bool:
        self.check_alive()
        return _http_status(f"http://127.0.0.1:{self.ports.gateway}/healthz") == 200

    def _rpc_queues_ready(self) -> bool:
        """Every instance of every service consumes its RPC queue (asked as the gateway)."""
        self.check_alive()
        uri = self.env["OVERDRACHT_GATEWAY_AMQP_URI"]
        return all(
            queue_consumers(uri, f"rpc-{service}") >= self.scale[service] for service in SERVICES
        )

    # --- processes ------------------------------------------------------------------------

    def spawn(self, name: str, argv: list[str], log: Path | None = None) -> subprocess.Popen:
        """Start a process in its own session; its output goes to log, or the log_dir, or ours."""
        self.commands[name] = (argv, log)
        if log is None and self.log_dir is not None:
            log = self.log_dir / f"{name}.log"
        out = None
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            out = open(log, "ab")  # noqa: SIM115 - closed below, the child keeps its copy
        try:
            process = subprocess.Popen(  # noqa: S603 - argv built here, no shell
                argv,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT if out else None,
                start_new_session=True,
            )
        finally:
            if out is not None:
                out.close()
        self.processes.append((name, process))
        self._started_at[name] = time.monotonic()
        return process

    def start_again(self, name: str) -> None:
        """Start a stopped service with the command it had, and wait until it serves."""
        argv, log = self.commands[name]
        self.spawn(name, argv, log)
        serves = self._gateway_serves if name.split("-")[0] == "gateway" else self._rpc_queues_ready
        wait_for(serves, name, 60)

    def send_signal(self, name: str, signum: int) -> None:
        """Signal a running component's processes (the fault tests hang one with SIGSTOP)."""
        for running_name, process in self.processes:
            if running_name == name and process.poll() is None:
                process.send_signal(signum)

    def check_alive(self) -> None:
        for name, process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with code {process.returncode}")

    def supervise(self, say=print) -> None:
        """Restart every process that exited, after a back-off that doubles while it keeps
        dying (1 s up to 30 s) and starts over once it stayed up a minute. Never stops."""
        now = time.monotonic()
        for name, process in list(self.processes):
            if process.poll() is None:
                continue
            # what it left behind goes too: gunicorn's workers outlive a master killed with
            # -9 and hold the port, and a new master could not bind it
            _signal(process, signal.SIGKILL)
            self.processes.remove((name, process))
            failures = (
                0 if now - self._started_at.get(name, now) > 60 else self._failures.get(name, 0)
            )
            delay = min(2**failures, 30)
            self._failures[name] = failures + 1
            self._due[name] = now + delay
            say(
                f"{name} is gestopt (code {process.returncode}); herstart over {delay} s",
                flush=True,
            )
        for name, due in list(self._due.items()):
            if due <= now:
                del self._due[name]
                argv, log = self.commands[name]
                self.spawn(name, argv, log)
                say(f"{name} herstart", flush=True)

    def stop(self, name: str | None = None, timeout: float = STOP_SECONDS) -> None:
        """SIGTERM, then SIGKILL what is still there; in reverse order of starting."""
        while True:
            try:
                return self._stop(name, timeout)
            except KeyboardInterrupt:
                continue  # a second Ctrl-C must not leave processes behind

    def _stop(self, name: str | None, timeout: float) -> None:
        chosen = [(n, p) for n, p in reversed(self.processes) if name in (None, n)]
        for _, process in chosen:
            _signal(process, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for _, process in chosen:
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                _signal(process, signal.SIGKILL)
                process.wait(5)
        self.processes = [(n, p) for n, p in self.processes if (n, p) not in chosen]


def _signal(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _http_status(url: str) -> int:
    """The status url answers with; 0 when nothing answers."""
    try:
        return requests.get(url, timeout=2).status_code
    except requests.RequestException:
        return 0


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _quietly(action) -> bool:
    try:
        action()
    except Exception:  # noqa: BLE001 - polled until it works or time runs out
        return False
    return True


def wait_for(check, what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (pika.exceptions.AMQPError, OSError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not come up within {seconds:.0f} s")


@contextlib.contextmanager
def supervised(platform: Platform, interval: float = 0.5) -> Iterator[Platform]:
    """Restart what exits, as `make run` does, from a thread (for the fault suite)."""
    done = threading.Event()

    def watch() -> None:
        while not done.wait(interval):
            platform.supervise()

    watcher = threading.Thread(target=watch, name="supervisor", daemon=True)
    watcher.start()
    try:
        yield platform
    finally:
        done.set()
        watcher.join()


@contextlib.contextmanager
def running(platform: Platform) -> Iterator[Platform]:
    """Start everything; stop everything on the way out, whatever happened."""
    try:
        platform.check_ports_free()
        if platform.embedded_object_store:
            platform.start_object_store()
        platform.ensure_bucket()
        platform.prepare()
        platform.start_services()
        yield platform
    finally:
        platform.stop()
