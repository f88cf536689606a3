"""What an operator reads: a user's mistakes leave one line each, no traceback."""

from __future__ import annotations

import time


def _log(platform, service: str) -> str:
    return (platform.log_dir / f"{service}.log").read_text(errors="replace")


def _lines_since(platform, service: str, mark: int) -> str:
    return _log(platform, service)[mark:]


def test_a_wrong_password_and_an_invalid_bsn_log_one_line_each(harness, platform):
    account = harness.account()
    api = harness.provider()
    marks = {s: len(_log(platform, s)) for s in ("auth", "clients")}

    wrong = harness.anonymous().post(
        "/login", json={"username": account.username, "password": "niet het wachtwoord"}
    )
    assert wrong.status_code == 401
    invalid = api.post("/clients/search", json={"birth_date": "1990-01-01", "bsn": "123456789"})
    assert invalid.status_code == 422
    time.sleep(1)  # the services write their logs as they go

    auth = _lines_since(platform, "auth", marks["auth"])
    clients = _lines_since(platform, "clients", marks["clients"])
    assert "auth.start_login refused: 401 login_failed" in auth
    assert "clients.search refused: 422 invalid_bsn" in clients
    assert "Traceback" not in auth + clients
    assert "123456789" not in clients  # nor what she typed
