"""PostgreSQL, attacked with a service's own database login: each role is fenced in.

A stolen runtime login must not reach another service's data, create roles or databases,
or rewrite history: audit's role may only read and append, so it cannot delete, update,
truncate, alter its table, switch its triggers off, or turn replication mode on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import pytest
from sqlalchemy.engine import make_url

from ops.provision import SERVICES_WITH_DATABASE, dsn

pytestmark = pytest.mark.usefixtures("platform")


def url(platform, service: str, owner: bool = False) -> str:
    return platform.env[f"OVERDRACHT_{service.upper()}_{'OWNER_' if owner else ''}DB"]


@contextmanager
def cursor(database_url: str, database: str | None = None) -> Iterator:
    connection = psycopg2.connect(dsn(database_url, database))
    connection.autocommit = True
    try:
        with connection.cursor() as cur:
            yield cur
    finally:
        connection.close()


@pytest.mark.parametrize("service", SERVICES_WITH_DATABASE)
@pytest.mark.parametrize("owner", [False, True], ids=["runtime", "owner"])
def test_no_service_role_is_privileged(platform, service, owner):
    with cursor(url(platform, service, owner)) as cur:
        cur.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls "
            "FROM pg_roles WHERE rolname = current_user"
        )
        assert cur.fetchone() == (False, False, False, False, False)


@pytest.mark.parametrize(
    ("service", "other"),
    [(s, o) for s in SERVICES_WITH_DATABASE for o in SERVICES_WITH_DATABASE if s != o],
)
def test_a_service_role_cannot_connect_to_another_services_database(platform, service, other):
    other_database = make_url(url(platform, other)).database
    with pytest.raises(psycopg2.OperationalError, match="permission denied"):
        psycopg2.connect(dsn(url(platform, service), other_database)).close()


@pytest.mark.parametrize("service", SERVICES_WITH_DATABASE)
def test_migrations_ran_as_the_owner_not_as_the_runtime_role(platform, service):
    owner = make_url(url(platform, service, owner=True)).username
    with cursor(url(platform, service)) as cur:
        cur.execute("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
        assert [row[0] for row in cur.fetchall()] == [owner]
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("CREATE TABLE planted (x int)")


ATTACKS = [
    "UPDATE audit_records SET outcome = 'x'",
    "DELETE FROM audit_records",
    "TRUNCATE audit_records",
    "ALTER TABLE audit_records DISABLE TRIGGER USER",
    "ALTER TABLE audit_records DISABLE TRIGGER ALL",
    "DROP TRIGGER audit_records_no_update_delete ON audit_records",
    "SET session_replication_role = replica",
    "DROP TABLE audit_records",
    "DELETE FROM rejected_events",
    # a purge's own switch (migration 0006) is for the owner: the role still cannot delete
    "SET overdracht.audit_purge_through = '999999'; DELETE FROM audit_records",
    "INSERT INTO audit_purges VALUES (999999, repeat('0', 64), 1, now(), now())",
    "DELETE FROM audit_purges",
]


@pytest.mark.parametrize("statement", ATTACKS)
def test_audits_runtime_role_can_only_read_and_append(harness, platform, statement):
    harness.provider()  # something to protect: a registration and its login are in the log
    harness.audit_until(lambda events: len(events) > 0)
    with cursor(url(platform, "audit")) as cur:
        cur.execute("SELECT count(*) FROM audit_records")
        before = cur.fetchone()[0]
        assert before > 0
        with pytest.raises((psycopg2.errors.InsufficientPrivilege, psycopg2.errors.RaiseException)):
            cur.execute(statement)
        cur.execute("SELECT count(*) FROM audit_records")
        assert cur.fetchone()[0] >= before
    assert harness.cli("audit", "verify").returncode == 0
