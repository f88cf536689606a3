"""Accounts a platform runs with: broker users, database roles and databases.

In production ops creates these once (README, "Production"): the broker from the
definitions file `overdracht bus definitions` prints, PostgreSQL with the statements
`overdracht db setup-sql` prints. `make run` and the tests do the same on this machine
with generated passwords, through the local admin accounts (`rabbitmqctl` and the
PostgreSQL superuser in OVERDRACHT_POSTGRES_ADMIN_URL).

Each service with data gets two roles: an owner, which owns the database and runs the
migrations, and a runtime role, which the service connects with. Neither is a superuser
or may create roles or databases; only these two may connect to the database. The
runtime role may use the tables, never alter them; audit's may only read and append.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql
from sqlalchemy.engine import URL, make_url

from overdracht import bus, config

SERVICES_WITH_DATABASE = ("auth", "clients", "documents", "audit")

#: Tables a runtime role may only read and append to; anything else it may also change.
APPEND_ONLY: dict[str, tuple[str, ...]] = {
    "audit": ("audit_records", "rejected_events", "client_lookups")
}
#: Tables a runtime role may only read (what the operator's purge wrote).
READ_ONLY: dict[str, tuple[str, ...]] = {"audit": ("audit_purges",)}

_ROLE_OPTIONS = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"


def generate(
    stack: str, amqp_address: str | None = None, postgres_admin_url: str | None = None
) -> dict[str, str]:
    """Settings with fresh credentials for a platform named stack (dev: `overdracht`).

    The broker and the database server are OVERDRACHT_AMQP_ADDRESS and the server of
    OVERDRACHT_POSTGRES_ADMIN_URL unless given.
    """
    amqp_host = amqp_address or config.get("OVERDRACHT_AMQP_ADDRESS")
    admin = make_url(postgres_admin_url or config.get("OVERDRACHT_POSTGRES_ADMIN_URL"))
    settings = {"OVERDRACHT_BUS_USER_PREFIX": f"{stack}-"}
    settings.update(bus.generate_uris(f"{stack}-", vhost=stack, host=amqp_host))
    base = stack.replace("-", "_")
    for service in SERVICES_WITH_DATABASE:
        database = f"{base}_{service}"
        for suffix, role in (("DB", database), ("OWNER_DB", f"{database}_owner")):
            settings[f"OVERDRACHT_{service.upper()}_{suffix}"] = URL.create(
                "postgresql+psycopg2",
                username=role,
                password=secrets.token_urlsafe(24),
                host=admin.host,
                port=admin.port or 5432,
                database=database,
            ).render_as_string(hide_password=False)
    return settings


def dsn(url: str | URL, database: str | None = None) -> str:
    """A libpq connection string for a SQLAlchemy URL (psycopg2 and psql take it)."""
    parsed = make_url(url)
    if database:
        parsed = parsed.set(database=database)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def _connect(admin_url: str, database: str | None = None) -> Iterator[psycopg2.extensions.cursor]:
    connection = psycopg2.connect(dsn(admin_url, database))
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            yield cursor
    finally:
        connection.close()


def _ensure_role(cursor, url: URL) -> None:
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (url.username,))
    verb = "ALTER" if cursor.fetchone() else "CREATE"
    cursor.execute(
        sql.SQL("{} ROLE {} " + _ROLE_OPTIONS + " PASSWORD {}").format(
            sql.SQL(verb), sql.Identifier(url.username), sql.Literal(url.password)
        )
    )


def setup_statements(runtime: URL, owner: URL) -> tuple[list[sql.Composed], list[sql.Composed]]:
    """Statements on the server, then inside the new database, that fence it in."""
    db, run, own = (sql.Identifier(x) for x in (runtime.database, runtime.username, owner.username))
    server = [
        sql.SQL("ALTER DATABASE {} OWNER TO {}").format(db, own),
        # nobody else may even connect: another service's role is refused at the door
        sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db),
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, run),
    ]
    inside = [
        sql.SQL("REVOKE ALL ON SCHEMA public FROM PUBLIC"),
        sql.SQL("ALTER SCHEMA public OWNER TO {}").format(own),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(run),
    ]
    return server, inside


def provision_database(admin_url: str, runtime_url: str, owner_url: str) -> None:
    """Create (or bring up to date) one service's roles and database; idempotent."""
    runtime, owner = make_url(runtime_url), make_url(owner_url)
    if runtime.database != owner.database or runtime.username == owner.username:
        raise ValueError("runtime and owner must be two roles on the same database")
    with _connect(admin_url) as cursor:
        _ensure_role(cursor, owner)
        _ensure_role(cursor, runtime)
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (runtime.database,))
        if not cursor.fetchone():
            cursor.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(runtime.database), sql.Identifier(owner.username)
                )
            )
        server, inside = setup_statements(runtime, owner)
        for statement in server:
            cursor.execute(statement)
    with _connect(admin_url, runtime.database) as cursor:
        for statement in inside:
            cursor.execute(statement)


def grant_statements(service: str, runtime_role: str) -> list[sql.Composed]:
    """What the runtime role may do with the tables the migrations made (run as owner)."""
    role = sql.Identifier(runtime_role)
    append_only = APPEND_ONLY.get(service)
    if append_only:
        tables = sql.SQL(", ").join(sql.Identifier(t) for t in append_only)
        statements = [sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(tables, role)]
        statements += [
            sql.SQL("GRANT SELECT ON {} TO {}").format(sql.Identifier(table), role)
            for table in READ_ONLY.get(service, ())
        ]
    else:
        statements = [
            sql.SQL(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}"
            ).format(role),
            sql.SQL("REVOKE ALL ON alembic_version FROM {}").format(role),
        ]
    statements.append(sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}").format(role))
    return statements


def grant_runtime(service: str, owner_url: str, runtime_url: str) -> None:
    """Apply grant_statements as the owner, after migrating."""
    with _connect(owner_url) as cursor:
        for statement in grant_statements(service, make_url(runtime_url).username):
            cursor.execute(statement)


def remove_database(admin_url: str, runtime_url: str, owner_url: str) -> None:
    """Drop one service's database and both its roles."""
    runtime, owner = make_url(runtime_url), make_url(owner_url)
    with _connect(admin_url) as cursor:
        cursor.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(runtime.database)
            )
        )
        for role in (runtime.username, owner.username):
            cursor.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def setup_sql(runtime_url: str, owner_url: str, admin_url: str) -> str:
    """The statements provision_database runs, as text for ops to review and run."""
    runtime, owner = make_url(runtime_url), make_url(owner_url)
    server, inside = setup_statements(runtime, owner)
    with _connect(admin_url) as cursor:
        lines = [
            cursor.mogrify(
                sql.SQL("CREATE ROLE {} " + _ROLE_OPTIONS + " PASSWORD {};").format(
                    sql.Identifier(url.username), sql.Literal(url.password)
                )
            ).decode()
            for url in (owner, runtime)
        ]
        lines.append(
            sql.SQL("CREATE DATABASE {} OWNER {};")
            .format(sql.Identifier(runtime.database), sql.Identifier(owner.username))
            .as_string(cursor)
        )
        lines += [s.as_string(cursor) + ";" for s in server]
        lines.append(f"\\connect {runtime.database}")
        lines += [s.as_string(cursor) + ";" for s in inside]
    return "\n".join(lines)


# --- a whole platform on this machine ---------------------------------------------------


def provision(settings: dict[str, str]) -> None:
    """Broker users, permissions and topology, then every service's database and roles."""
    bus.apply_definitions(
        bus.definitions(bus.component_uris(settings)), settings.get("OVERDRACHT_RABBITMQ_NODE")
    )
    for service in SERVICES_WITH_DATABASE:
        provision_database(
            settings["OVERDRACHT_POSTGRES_ADMIN_URL"],
            settings[f"OVERDRACHT_{service.upper()}_DB"],
            settings[f"OVERDRACHT_{service.upper()}_OWNER_DB"],
        )


def remove(settings: dict[str, str]) -> None:
    """Undo provision: the vhost, the broker users, the databases and their roles."""
    bus.remove_definitions(bus.component_uris(settings), settings.get("OVERDRACHT_RABBITMQ_NODE"))
    for service in SERVICES_WITH_DATABASE:
        runtime = settings.get(f"OVERDRACHT_{service.upper()}_DB")
        owner = settings.get(f"OVERDRACHT_{service.upper()}_OWNER_DB")
        if runtime and owner:
            remove_database(settings["OVERDRACHT_POSTGRES_ADMIN_URL"], runtime, owner)


# --- databases and migrations ------------------------------------------------------------


def migrations_dir(service: str) -> Path:
    return Path(__file__).resolve().parent.parent / "services" / service / "migrations"


def create_database(url: str) -> None:
    """Create the database named in url if it does not exist yet (a throw-away test database)."""
    database = make_url(url).database
    with _connect(url, "postgres") as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if not cursor.fetchone():
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def drop_database(url: str) -> None:
    database = make_url(url).database
    with _connect(url, "postgres") as cursor:
        cursor.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )


def alembic_config(service: str, url: str) -> Any:
    """Alembic's configuration for a service's migrations, run on the database at url."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir(service)))
    cfg.attributes["url"] = url
    return cfg


def migrate(service: str, url: str | None = None) -> None:
    """Bring the service's database to the newest revision as its owner; grant the runtime role.

    url, when given, is a database to migrate as is (a throw-away test database).
    """
    from alembic import command

    owner = url or config.database_owner_url(service)
    command.upgrade(alembic_config(service, owner), "head")
    if url is None:
        grant_runtime(service, owner, config.database_url(service))
