"""`make run`'s program: starts everything, prints how to log in, stops everything on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg2
import requests

from ops.platform import Ports
from ops.sandbox import free_port_base


def descendants(pid: int) -> set[int]:
    """Every process below pid, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start(env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "ops.devserver"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal gives `make run`
    )
    output, deadline = "", time.monotonic() + 120
    while "Stoppen: Ctrl-C" not in output:
        line = process.stdout.readline()
        assert line or process.poll() is None, output
        assert time.monotonic() < deadline, output
        output += line
    return process, output


def ctrl_c(process: subprocess.Popen) -> str:
    """Ctrl-C; returns what it printed from here on. Everything is gone within 10 s."""
    os.killpg(process.pid, signal.SIGINT)  # the terminal signals the whole foreground group
    began = time.monotonic()
    rest, _ = process.communicate(timeout=90)
    assert time.monotonic() - began < 10, rest
    return rest


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_make_run_starts_everything_and_ctrl_c_stops_all_of_it(tmp_path):
    run_id = uuid.uuid4().hex[:8]
    ports = Ports.from_base(free_port_base())
    var = tmp_path / "var"
    env = {
        "PATH": os.environ["PATH"],
        "OVERDRACHT_PORT_BASE": str(ports.gateway),
        "OVERDRACHT_ENV_FILE": str(var / "overdracht.env"),
        # a vhost, broker users, databases and roles of its own, as `make run` provisions them
        "OVERDRACHT_DEV_STACK": f"ovdrun{run_id}",
        "OVERDRACHT_S3_BUCKET": f"overdracht-run-{run_id}",
        "OVERDRACHT_SMS_OUTBOX": str(var / "outbox" / "sms.jsonl"),
    }
    try:
        process, output = start(env, tmp_path)
        try:
            assert f"http://127.0.0.1:{ports.gateway}" in output
            accounts = dict(re.findall(r"^\s+zorgverlener\s+(\S+)\s+(\S+)$", output, re.M))
            username, password = next(iter(accounts.items()))
            base = f"http://127.0.0.1:{ports.gateway}/api/v1"
            challenge = requests.post(
                f"{base}/login", json={"username": username, "password": password}, timeout=30
            ).json()["challenge"]
            last_sms = (var / "outbox" / "sms.jsonl").read_text().splitlines()[-1]
            code = re.search(r"\b\d{6}\b", json.loads(last_sms)["body"]).group()
            token = requests.post(
                f"{base}/login/verify", json={"challenge": challenge, "code": code}, timeout=30
            ).json()["token"]
            me = requests.get(
                f"{base}/me", headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            assert me.json()["username"] == username
            started = descendants(process.pid)
            assert len(started) >= 7  # SeaweedFS, five services, the gateway (+ its workers)

            # one part dies: it is started again, and the rest never stopped
            (clients,) = [p for p in started if "services.clients.service" in command_line(p)]
            os.kill(clients, signal.SIGKILL)
            search = {"birth_date": "1990-01-01", "bsn": "111222333"}
            headers = {"Authorization": f"Bearer {token}"}
            deadline = time.monotonic() + 60
            while True:
                found = requests.post(
                    f"{base}/clients/search", json=search, headers=headers, timeout=30
                )
                if found.status_code == 200:
                    break
                assert found.status_code == 503, found.text
                assert time.monotonic() < deadline, "clients did not come back"
                time.sleep(0.5)
            assert process.poll() is None
            started = descendants(process.pid)
        finally:
            said = ctrl_c(process)
        assert "clients is gestopt" in said and "clients herstart" in said
        assert not [pid for pid in started if alive(pid)]

        # a second start reuses the secrets and keeps the data: the same demo accounts
        process, again = start(env, tmp_path)
        try:
            assert dict(re.findall(r"^\s+zorgverlener\s+(\S+)\s+(\S+)$", again, re.M)) == accounts
            session = requests.get(
                f"{base}/me", headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            assert session.status_code == 200  # the session survived the restart
            restarted = descendants(process.pid)
        finally:
            ctrl_c(process)
        assert not [pid for pid in restarted if alive(pid)]

        # var/ deleted, the databases and the broker's share not: it starts afresh
        shutil.rmtree(var)
        process, afresh = start(env, tmp_path)
        try:
            renewed = dict(re.findall(r"^\s+zorgverlener\s+(\S+)\s+(\S+)$", afresh, re.M))
            assert renewed.keys() == accounts.keys() and renewed != accounts
            old_session = requests.get(
                f"{base}/me", headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            assert old_session.status_code == 401  # nothing of the earlier platform is left
        finally:
            ctrl_c(process)
    finally:
        # `make clean`'s first step: the broker's and the database server's share goes
        cleaned = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "ops.devserver", "clean"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert cleaned.returncode == 0, cleaned.stderr
        assert_nothing_left(run_id)


def assert_nothing_left(run_id: str) -> None:
    """After `clean`, a new `make run` starts from nothing: no vhost, users, databases, roles."""
    listed = (
        subprocess.run(
            ["rabbitmqctl", "-q", "list_users"], capture_output=True, text=True, check=True
        ).stdout
        + subprocess.run(
            ["rabbitmqctl", "-q", "list_vhosts"], capture_output=True, text=True, check=True
        ).stdout
    )
    assert f"ovdrun{run_id}" not in listed
    connection = psycopg2.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_roles WHERE rolname LIKE %s", (f"ovdrun{run_id}%",)
            )
            assert cursor.fetchone()[0] == 0
            cursor.execute(
                "SELECT count(*) FROM pg_database WHERE datname LIKE %s", (f"ovdrun{run_id}%",)
            )
            assert cursor.fetchone()[0] == 0
    finally:
        connection.close()
