"""The operator's command line: registering accounts, checking the audit chain."""

from __future__ import annotations

import json
import uuid

from tests.support import mobile


def add_args(username, role="zorgverlener", *extra):
    return [
        "provider",
        "add",
        "--username",
        username,
        "--full-name",
        "Anna de Wit",
        "--email",
        f"{username}@example.nl",
        "--phone",
        mobile(),
        "--region",
        "Regio Noord",
        "--role",
        role,
        *extra,
        "--password-stdin",
    ]


def test_provider_add_creates_an_account_that_can_log_in(harness):
    username = f"cli-{uuid.uuid4().hex[:8]}"
    args = add_args(username, "zorgverlener", "--profession", "verloskundige")
    result = harness.cli(*args, stdin="een heel geheim wachtwoord\n")
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["username"] == username
    assert created["role"] == "zorgverlener"
    assert "password" not in result.stdout and "geheim" not in result.stdout

    phone = args[args.index("--phone") + 1]
    api = harness.anonymous()
    challenge = api.post(
        "/login", json={"username": username, "password": "een heel geheim wachtwoord"}
    )
    assert challenge.status_code == 200
    code = harness.sms_code(phone)
    verified = api.post(
        "/login/verify", json={"challenge": challenge.json()["challenge"], "code": code}
    )
    assert verified.status_code == 200

    registered = harness.audit_until(
        lambda es: any(e["object"] and e["object"].get("username") == username for e in es),
        event="provider.registered",
    )
    assert any(e["object"]["username"] == username for e in registered)


def test_provider_add_refuses_bad_input(harness):
    taken = f"cli-{uuid.uuid4().hex[:8]}"
    assert (
        harness.cli(*add_args(taken, "auditor"), stdin="een heel geheim wachtwoord\n").returncode
        == 0
    )
    duplicate = harness.cli(*add_args(taken, "auditor"), stdin="een heel geheim wachtwoord\n")
    assert duplicate.returncode == 2 and "al in gebruik" in duplicate.stderr
    short = harness.cli(*add_args(f"cli-{uuid.uuid4().hex[:8]}", "auditor"), stdin="kort\n")
    assert short.returncode == 2 and "wachtwoord" in short.stderr
    no_profession = harness.cli(
        *add_args(f"cli-{uuid.uuid4().hex[:8]}"), stdin="een heel geheim wachtwoord\n"
    )
    assert no_profession.returncode == 2 and "beroep" in no_profession.stderr
    bad_role = harness.cli(*add_args(f"cli-{uuid.uuid4().hex[:8]}", "admin"), stdin="x\n")
    assert bad_role.returncode == 2


def test_audit_verify_checks_the_chain(harness):
    harness.provider()  # at least a few records
    result = harness.cli("audit", "verify")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["records"] > 0


def test_audit_purge_keeps_five_years_and_runs_as_the_owner(harness, platform):
    """Nothing on this platform is five years old: the purge removes nothing, and says so;
    a retention under five years is refused. (What a purge removes, and that the log
    still holds after it: tests/integration/test_audit_purge.py.)"""
    harness.provider()
    result = harness.cli("audit", "purge")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["removed"] == 0
    assert json.loads(harness.cli("audit", "verify").stdout)["ok"] is True

    kept = platform.env.get("OVERDRACHT_AUDIT_RETENTION_YEARS", "5")
    platform.env["OVERDRACHT_AUDIT_RETENTION_YEARS"] = "4"
    try:
        refused = harness.cli("audit", "purge")
    finally:
        platform.env["OVERDRACHT_AUDIT_RETENTION_YEARS"] = kept
    assert refused.returncode == 2
    assert "at least 5 years" in refused.stderr and "niets verwijderd" in refused.stderr
